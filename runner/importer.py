"""The runner's `import` and `fork` jobs: our own code (dulwich's client, S3 copies), run in the
runner, not the sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

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
    return _copy_job(
        job, say, "import",
        lambda: gitimport.fetch_into(job.project_id, str(config.get("url", "")),
                                     config.get("branch") or None, say, cancelled),
        gitimport.ImportCancelled, gitimport.ImportFailed, _import_summary)


def run_fork(job: Job, say: Callable[[str], None],
             cancelled: threading.Event) -> JobResult:
    """Copy the source project's history into the job's project (`forks.copy_into`)."""
    source = int(dict(job.config or {})["source"])
    return _copy_job(job, say, "fork",
                     lambda: forks.copy_into(job.project_id, source, say, cancelled),
                     forks.ForkCancelled, forks.ForkFailed, _fork_summary)


def _copy_job(job: Job, say: Callable[[str], None], kind: str, work: Callable[[], Any],
              cancelled_error: type[Exception], failed_error: type[Exception],
              summary: Callable[[Any, Callable[[str], None]], dict[str, object]]) -> JobResult:
    """Run an import or fork's `work`: cancelled and failed (the error's text) end the job;
    storage errors propagate so the worker gives the job back (retried); any other error
    propagates and the worker fails the job with it. The project's import status follows the
    job's recorded end (`imports.on_job_ended`), not this attempt's: an attempt that lost the job
    or is being released must not mark it."""
    started = time.monotonic()
    try:
        done = work()
    except cancelled_error:
        say(f"{kind} cancelled")
        return _result(CANCELLED, f"{kind} cancelled", time.monotonic() - started, {})
    except failed_error as e:
        say(f"{kind} failed: {e}")
        return _result(FAILED, str(e)[:1000], time.monotonic() - started, {})
    return _result(COMPLETED, None, time.monotonic() - started, summary(done, say))


def _import_summary(done: Any, say: Callable[[str], None]) -> dict[str, object]:
    return {"import": {"head": done.head, "pack_bytes": done.pack_bytes, "objects": done.objects,
                       "files": done.files, "total_bytes": done.total_bytes,
                       "other_refs": done.refs}}


def _fork_summary(done: Any, say: Callable[[str], None]) -> dict[str, object]:
    say(f"copied {done.objects} objects in {done.seconds_copy:.1f} s "
        f"(history walked in {done.seconds_walk:.1f} s)")
    return {"fork": {"objects": done.objects, "refs": done.refs,
                     "walk_s": round(done.seconds_walk, 3), "copy_s": round(done.seconds_copy, 3)}}
