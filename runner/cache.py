"""Cached runs: a job whose cache key an earlier completed run stored ends at once with its result.

The key (chalicelib/services/pipelines/cache.py) is computed from the materialised files, the
versions of this runner's tools and the job's normalised config. On a hit no tool runs: the
earlier run's steps, tool versions, summary, log and artifacts (copied to this job's keys, so
they live and are deleted with it) become this job's, with `summary.cache = {hit: true, key,
job_id, project_id}`. The run is the project's own or, for a fork that misses, one of the
project it was forked from while the fork's owner can read it (services/pipelines/forks.py).
A job with `no_cache` runs anyway; every completed run stores its key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools import Logger

from chalicelib import storage
from chalicelib.logs import SERVICE
from chalicelib.models.jobs import COMPLETED, Job
from chalicelib.schemas.jobs import ArtifactPublic, InputFilePublic, StepPublic
from chalicelib.services import job_lifecycle, job_quotas
from chalicelib.services.job_lifecycle import JobResult
from chalicelib.services.pipelines import cache as keys
from chalicelib.services.pipelines import forks, instant
from runner.logstream import LogStream

logger = Logger(service=SERVICE, child=True)
TOOLS = ("iverilog", "vvp", "yosys", "verilator")


@dataclass
class Lookup:
    """What the runner learnt before running: the key (None: uncacheable) and a hit's result."""

    key: str | None
    result: JobResult | None = None
    pending: Future[str | None] | None = None  # no_cache: the key, computed beside the tools


Defer = Callable[..., "Future[str | None]"]  # submit(fn, *args) on the runner's thread pool


def key_for(job: Job, src: Path) -> str | None:
    """The job's cache key over the files materialised under `src`."""
    from runner import tools

    config = dict(job.config or {})
    names = keys.tools_of(job.job_type, config)
    if names is None:
        return None
    paths = tools.project_paths(src)
    _publish_toolchain()
    versions = {name: tools.tool_version(name) for name in names}
    read = tools.project_reader(src, paths)
    shared = tools.shared_models(src)  # the plan's models: the HDL is parsed once per job
    with shared.lock if shared is not None else nullcontext():
        reads = keys.files_read(job.job_type, config, paths, read,
                                shared.by_options if shared is not None else None)
    return None if reads is None else keys.key_of(job.job_type, config, versions, reads, read)


@functools.cache
def _publish_toolchain() -> None:
    """Tell the API which tool versions runners run (chalicelib/services/pipelines/instant.py),
    once per process; failing only costs the server-side hits."""
    from runner import tools

    try:
        instant.publish_toolchain({name: tools.tool_version(name) for name in TOOLS})
    except Exception:  # noqa: BLE001
        logger.exception("tool versions not published")


def before_run(job: Job, src: Path, inputs: list[InputFilePublic], log: LogStream,
               defer: Defer | None = None) -> Lookup:
    """Compute the key and, unless the job says no_cache, take an earlier run's result.

    A no_cache job needs its key only to store it after the run: with `defer`, the key is
    computed on another thread while the tools run (`src` is read-only to them), and
    `settle(lookup, log)` collects it; call that before `src` is removed."""
    if job.no_cache and defer is not None:
        log.line("no_cache: running the tools even if an identical run is cached")
        return Lookup(None, pending=defer(_key_or_none, job, src))
    key = _key_or_none(job, src)
    if key is None:
        return Lookup(None)
    log.line(f"cache key {key}")
    if job.no_cache:
        log.line("no_cache: running the tools even if an identical run is cached")
        return Lookup(key)
    found = forks.lookup(job.project_id, key, grading=bool(job.grading))
    source = job_lifecycle.load(*found) if found else None
    if (source is None or source.status != COMPLETED
            or (source.project_id, source.id) == (job.project_id, job.id)):
        return Lookup(key)
    log.line(f"cache hit: the result of job {source.id} (same files read, tools and config); "
             "no tool ran")
    return Lookup(key, _result_from(job, source, key, inputs, log))


def _key_or_none(job: Job, src: Path) -> str | None:
    try:
        return key_for(job, src)
    except Exception:  # noqa: BLE001 - no key only costs a run
        logger.exception("cache key not computed", extra={"job_id": job.id})
        return None


def settle(lookup: Lookup, log: LogStream) -> Lookup:
    """The lookup with a deferred key collected (waits for it); others unchanged."""
    if lookup.pending is None:
        return lookup
    key = lookup.pending.result()
    if key is not None:
        log.line(f"cache key {key}")
    return Lookup(key)


def after_run(lookup: Lookup, job: Job, status: str) -> None:
    """Store the key of a run whose tools completed (not of a cache hit, which names its source)
    as the project's run for it; logs its failures, raises nothing. Called once the tools ended,
    beside the log's last PUT: a hit needs the run's record to say completed (`before_run`), so
    an entry stored before the finish only serves once the finish is written."""
    if lookup.key is None or lookup.result is not None or status != COMPLETED:
        return
    try:
        keys.remember(lookup.key, job.project_id, job.id)
    except Exception:  # noqa: BLE001 - an unstored key only costs a later run
        logger.exception("cache key not stored", extra={"job_id": job.id})


def stamp(lookup: Lookup, result: JobResult) -> None:
    """Stamp the key on a completed run (`summary.cache = {hit: false, key}`): once the run's
    completion is recorded, its pipeline hook stores the key again with the result
    (services/pipelines/runs.py), so hits served when a pipeline starts need not read the run."""
    if lookup.key is None or lookup.result is not None or result.status != COMPLETED:
        return
    result.summary = {**result.summary, "cache": {"hit": False, "key": lookup.key}}


def _result_from(job: Job, source: Job, key: str, inputs: list[InputFilePublic],
                 log: LogStream) -> JobResult:
    attempt, source_attempt = int(job.attempts or 1), int(source.attempts or 1)
    try:
        log.write(storage.get_bytes(storage.job_log_key(source.project_id, source.id,
                                                        source_attempt)))
    except Exception:  # noqa: BLE001 - the log is a courtesy; the result stands without it
        log.line("(the cached run's log could not be read)")
    artifacts: list[ArtifactPublic] = []
    for artifact in source.artifacts or []:
        size = int(artifact.get("size_bytes") or 0)
        if not job_quotas.reserve_artifact_bytes(job.project_id, size):
            log.line(f"artifact {artifact['name']!r} not copied: the project's artifact storage "
                     "quota is used up")
            continue
        name = str(artifact["name"])
        storage.copy_object(
            storage.job_artifact_key(source.project_id, source.id, source_attempt, name),
            storage.job_artifact_key(job.project_id, job.id, attempt, name))
        artifacts.append(ArtifactPublic.model_validate(artifact))
    summary = {k: v for k, v in dict(source.summary or {}).items() if k != "runner"}
    summary["cache"] = {"hit": True, "key": key, "job_id": source.id,
                        "project_id": source.project_id}
    return JobResult(
        status=COMPLETED, error_message=None,
        exit_code=int(source.exit_code) if source.exit_code is not None else None,
        duration_s=0.0, inputs=inputs,
        steps=[StepPublic.model_validate(s) for s in source.steps or []],
        tool_versions=dict(source.tool_versions or {}), artifacts=artifacts, summary=summary,
        log_bytes=0, log_truncated=False)
