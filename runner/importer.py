"""The runner's `import` and `fork` jobs: our own code (dulwich's client, S3 copies), run in the
runner, not the sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from chalicelib.models.jobs import CANCELLED, COMPLETED, FAILED, Job
from chalicelib.services.git import forks
from chalicelib.services.git import imports as gitimport
from chalicelib.services.job_lifecycle import JobResult

JOB_TYPE = gitimport.JOB_TYPE
JOB_TYPES = (gitimport.JOB_TYPE, forks.JOB_TYPE)


def _result(status: str, error: str | None, duration: float,
            summary: dict[str, object]) -> JobResult:
    return JobResult(
        status=status, error_message=error, exit_code=None, duration_s=duration, inputs=[],
        steps=[], tool_versions={}, artifacts=[], summary=summary, log_bytes=0,
        log_truncated=False)


def run_import(job: Job, say: Callable[[str], None],
               cancelled: threading.Event) -> JobResult:
    """Fetch the job's URL into its project (or copy the forked project into it, for a `fork`
    job); infrastructure errors propagate (the job is retried)."""
    if job.job_type == forks.JOB_TYPE:
        return run_fork(job, say, cancelled)
    config = dict(job.config or {})
    started = time.monotonic()
    try:
        done = gitimport.fetch_into(job.project_id, str(config.get("url", "")),
                                    config.get("branch") or None, say, cancelled)
    except gitimport.ImportCancelled:
        say("import cancelled")
        gitimport.mark(job.project_id, gitimport.FAILED)
        return _result(CANCELLED, "import cancelled", time.monotonic() - started, {})
    except gitimport.ImportFailed as e:
        say(f"import failed: {e}")
        gitimport.mark(job.project_id, gitimport.FAILED)
        return _result(FAILED, str(e)[:1000], time.monotonic() - started, {})
    except (BotoCoreError, ClientError, PynamoDBException):
        raise  # storage trouble: the worker gives the job back and it is retried
    except Exception:
        gitimport.mark(job.project_id, gitimport.FAILED)  # the worker fails the job with the error
        raise
    gitimport.mark(job.project_id, gitimport.COMPLETED)
    return _result(COMPLETED, None, time.monotonic() - started, {"import": {
        "head": done.head, "pack_bytes": done.pack_bytes, "objects": done.objects,
        "files": done.files, "total_bytes": done.total_bytes,
        "other_refs": done.refs}})


def run_fork(job: Job, say: Callable[[str], None],
             cancelled: threading.Event) -> JobResult:
    """Copy the source project's history into the job's project (`forks.copy_into`)."""
    started = time.monotonic()
    try:
        done = forks.copy_into(job.project_id, int(dict(job.config or {})["source"]), say,
                               cancelled)
    except forks.ForkCancelled:
        say("fork cancelled")
        gitimport.mark(job.project_id, gitimport.FAILED)
        return _result(CANCELLED, "fork cancelled", time.monotonic() - started, {})
    except forks.ForkFailed as e:
        say(f"fork failed: {e}")
        gitimport.mark(job.project_id, gitimport.FAILED)
        return _result(FAILED, str(e)[:1000], time.monotonic() - started, {})
    except (BotoCoreError, ClientError, PynamoDBException):
        raise
    except Exception:
        gitimport.mark(job.project_id, gitimport.FAILED)
        raise
    gitimport.mark(job.project_id, gitimport.COMPLETED)
    say(f"copied {done.objects} objects in {done.seconds_copy:.1f} s "
        f"(history walked in {done.seconds_walk:.1f} s)")
    return _result(COMPLETED, None, time.monotonic() - started, {"fork": {
        "objects": done.objects, "refs": done.refs, "walk_s": round(done.seconds_walk, 3),
        "copy_s": round(done.seconds_copy, 3)}})
