"""Running pipelines: one per commit that moves main, jobs started as their needs pass.

Two entry points are called from elsewhere, and neither ever raises into its caller (a ref
that moved stays moved; a job that ended stays ended; a failure here is logged):

- `on_main_moved(project_id, sha)`: main now points at `sha` (push, files-API edit, restore,
  import). When the commit's tree holds `.a6hub.yml`, a pipeline is recorded for it and the
  jobs without `needs` are submitted, pinned to that commit, as the project owner.
- `on_job_ended(job)`: a job reached completed/failed/cancelled. Its pipeline entry takes the
  outcome; entries whose needs all passed are started; entries with a need that failed or was
  cancelled become `cancelled` (transitively) with the reason.

Pipeline jobs hold the same queued-or-running caps as jobs submitted by hand
(services/job_quotas.py, counted for the project owner and the project): a job that would pass
a cap is not created but marked `waiting` (pending, no job), and the project's waiting entries
are tried again whenever one of its jobs ends. Without this, one commit of a 50-job file
queued 50 jobs, and every further move of main 50 more, past the caps of 5 and 10.

Every change to a pipeline item is a read, a change and a write conditioned on the version read
(`_change`), retried on a conflict; an entry is marked `started` by that write before its job
is created, so concurrent endings never start a job twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import PutError

from chalicelib import hooks
from chalicelib.errors import Unprocessable
from chalicelib.ids import with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import id_taken, utcnow_iso
from chalicelib.models.jobs import CANCELLED, COMPLETED, FAILED, PENDING, QUEUED, RUNNING, Job
from chalicelib.models.pipelines import Pipeline
from chalicelib.services.pipelines import instant
from chalicelib.services.pipelines.spec import (
    PIPELINE_FILE,
    PipelineFileError,
    PipelineSpec,
    parse_pipeline,
)

logger = Logger(service=SERVICE, child=True)

MAIN = "refs/heads/main"
PASSED = "passed"
TERMINAL = frozenset({PASSED, FAILED, CANCELLED})
MAX_CHANGE_ATTEMPTS = 20
RECENT_FOR_CANCEL = 20  # pipelines looked at when a file says cancel_previous


def commit_key(project_id: int, sha: str) -> str:
    return f"{project_id}:{sha}"


# --- reading the pipeline file of a commit -------------------------------------------------------


def _commit_tree(project_id: int, sha: str) -> tuple[Any, Any]:
    """(object store, tree) of a commit; KeyError when the commit is not stored."""
    from dulwich.objects import Commit

    from chalicelib.services.git.store import open_repo

    store = open_repo(project_id).object_store
    commit = store[sha.encode()]
    if not isinstance(commit, Commit):
        raise KeyError(sha)
    return store, store[commit.tree]


def file_in_tree(store: Any, tree: Any, path: str) -> bytes | None:
    """The bytes of a regular file at `path` of a tree, or None."""
    import stat

    from dulwich.errors import NotTreeError
    from dulwich.object_store import tree_lookup_path
    from dulwich.objects import Blob

    try:
        mode, sha = tree_lookup_path(store.__getitem__, tree.id, path.encode())
    except (KeyError, NotTreeError):
        return None
    if not stat.S_ISREG(mode):
        return None
    blob = store[sha]
    return bytes(blob.data) if isinstance(blob, Blob) else None


def pipeline_file_problems(store: Any, tree_id: bytes) -> list[str]:
    """What is wrong with the tree's pipeline file ([] when it is fine or absent): a push of
    main is refused with these (services/githttp.py)."""
    data = file_in_tree(store, store[tree_id], PIPELINE_FILE)
    if data is None:
        return []
    try:
        parse_pipeline(data)
    except PipelineFileError as e:
        return [f"{PIPELINE_FILE}: {error}" for error in e.errors]
    return []


# --- status -------------------------------------------------------------------------------------


def job_outcome(status: str) -> str:
    """A job's status in a pipeline's words: completed -> passed; the rest as they are."""
    return PASSED if status == COMPLETED else status


def derive_status(entries: list[dict[str, Any]], errors: list[str] | None) -> str:
    """A pipeline's status: failed/cancelled/passed once every job ended (failed wins over
    cancelled), else running once any job started, else pending. A refused file is failed."""
    if errors or not entries:
        return FAILED
    states = [str(e["status"]) for e in entries]
    if all(s in TERMINAL for s in states):
        if FAILED in states:
            return FAILED
        return CANCELLED if CANCELLED in states else PASSED
    started = any(s == RUNNING or s in TERMINAL for s in states)
    return RUNNING if started else PENDING


# --- changing a pipeline ------------------------------------------------------------------------


def _change(project_id: int, pipeline_id: int,
            edit: Callable[[Pipeline], list[str]]) -> tuple[Pipeline, list[str]]:
    """Apply `edit` to the current item and write it if nobody wrote meanwhile; returns the
    written item and the job names `edit` marked to start."""
    for _ in range(MAX_CHANGE_ATTEMPTS):
        pipeline = Pipeline.get(project_id, pipeline_id, consistent_read=True)
        before = pipeline.status
        entries = [dict(e) for e in pipeline.jobs or []]
        pipeline.jobs = entries
        to_start = edit(pipeline)
        to_start += _advance(entries)
        pipeline.status = derive_status(entries, pipeline.errors)
        pipeline.updated_at = utcnow_iso()
        try:
            pipeline.save()  # conditioned on the version read (VersionAttribute)
        except PutError as e:
            if e.cause_response_code == "ConditionalCheckFailedException":
                continue
            raise
        if before not in TERMINAL and pipeline.status in TERMINAL:  # one writer ends it
            hooks.pipeline_ended(pipeline)
        return pipeline, to_start
    raise RuntimeError(f"pipeline {pipeline_id} kept changing; gave up after "
                       f"{MAX_CHANGE_ATTEMPTS} attempts")


def _advance(entries: list[dict[str, Any]]) -> list[str]:
    """Mark the entries whose needs all passed as started (returned), and cancel the ones with a
    need that failed or was cancelled, until nothing changes."""
    by_name = {str(e["name"]): e for e in entries}
    starting: list[str] = []
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry["status"] != PENDING or entry.get("started") or entry.get("waiting"):
                continue
            needs = [by_name[n] for n in entry.get("needs") or []]
            blocked = [str(n["name"]) for n in needs if n["status"] in (FAILED, CANCELLED)]
            if blocked:
                entry["status"] = CANCELLED
                entry["error"] = f"not run: {', '.join(blocked)} did not pass"
                changed = True
            elif all(n["status"] == PASSED for n in needs):
                entry["started"] = True
                starting.append(str(entry["name"]))
    return starting


def _start(project_id: int, pipeline_id: int, names: list[str]) -> None:
    """Create and queue the jobs of `names` (already marked started), then record their ids;
    a job that cannot be created fails its entry (and so cancels its dependants)."""
    from chalicelib.services.job_quotas import active_slot_problem
    from chalicelib.services.jobs import enqueue, resolve_testbench

    while names:
        pipeline = Pipeline.get(project_id, pipeline_id, consistent_read=True)
        entries = {str(e["name"]): e for e in pipeline.jobs or []}
        store, tree = _commit_tree(project_id, pipeline.commit)
        reader = instant.TreeReader(store, tree)
        created: dict[str, int] = {}
        passed: dict[str, int] = {}
        refused: dict[str, str] = {}
        waiting: dict[str, str] = {}
        for name in names:
            entry = entries[name]
            config = dict(entry["config"])
            try:
                if entry["job_type"] == "simulation":
                    config = resolve_testbench(config, reader.paths)
            except Unprocessable as e:
                refused[name] = str(e.detail)
                continue
            hit = instant.try_hit(pipeline, entry, config, reader)
            if hit is not None:
                passed[name] = hit.id
                continue
            full = active_slot_problem(pipeline.created_by, project_id)
            if full is not None:
                waiting[name] = f"waiting for a job slot: {full}"
                continue
            job = _create_job(pipeline, entry, config)
            created[name] = job.id
            try:
                enqueue(job)
            except Exception as e:  # noqa: BLE001 - a job no message will start must end now
                from chalicelib.services import job_lifecycle

                logger.warning("pipeline job not queued", extra={"job_id": job.id,
                                                                 "error": str(e)})
                job_lifecycle.fail_unstarted(job, "the job queue was unavailable; the job was "
                                                  "not started")
        _, names = _change(project_id, pipeline_id,
                           functools.partial(_record_started, created, passed, refused, waiting))


def _record_started(created: dict[str, int], passed: dict[str, int], refused: dict[str, str],
                    waiting: dict[str, str], p: Pipeline) -> list[str]:
    for entry in p.jobs:
        name = str(entry["name"])
        if name in waiting and entry["status"] == PENDING and entry.get("job_id") is None:
            entry["started"], entry["waiting"], entry["error"] = False, True, waiting[name]
        if name in created and entry.get("job_id") is None:
            entry["job_id"] = created[name]
        if name in passed:  # born completed from the cache (instant.py)
            entry["job_id"], entry["status"], entry["error"] = passed[name], PASSED, None
        if name in refused:
            entry["status"], entry["error"] = FAILED, refused[name]
    return []


def _create_job(pipeline: Pipeline, entry: dict[str, Any], config: dict[str, Any]) -> Job:
    def create(job_id: int) -> Job:
        job = Job(pipeline.project_id, job_id, job_type=str(entry["job_type"]), status=PENDING,
                  config=config, commit=pipeline.commit, commit_pinned=True,
                  created_by=pipeline.created_by, created_at=utcnow_iso(), attempts=0,
                  active_user=str(pipeline.created_by), active_project=str(pipeline.project_id),
                  queued=QUEUED, pipeline_id=pipeline.id, pipeline_job=str(entry["name"]),
                  no_cache=bool(entry.get("no_cache")) or None)
        job.save(condition=Job.id.does_not_exist())
        return job

    return with_new_id(create, id_taken)


# --- the two hooks ------------------------------------------------------------------------------


def on_main_moved(project_id: int, sha: bytes | str) -> None:
    """Start the pipeline of the commit main now points at (no pipeline file: nothing)."""
    commit = sha.decode("ascii") if isinstance(sha, bytes) else sha
    try:
        start_pipeline(project_id, commit)
    except Exception:  # noqa: BLE001 - the ref moved; the pipeline's absence is logged
        logger.exception("pipeline not started", extra={"project_id": project_id,
                                                        "commit": commit})


def start_pipeline(project_id: int, commit: str) -> Pipeline | None:
    """Record and start the pipeline of `commit` (None when its tree has no pipeline file)."""
    from chalicelib.models.projects import Project

    store, tree = _commit_tree(project_id, commit)
    data = file_in_tree(store, tree, PIPELINE_FILE)
    if data is None:
        return None
    spec: PipelineSpec | None = None
    errors: list[str] | None = None
    try:
        spec = parse_pipeline(data)
    except PipelineFileError as e:
        errors = e.errors
    owner = Project.get(project_id).owner_id
    entries = [{"name": j.name, "job_type": j.job_type, "config": j.config, "needs": list(j.needs),
                "no_cache": j.no_cache, "job_id": None, "status": PENDING, "error": None}
               for j in (spec.jobs if spec else ())]
    to_start = _advance(entries)
    now = utcnow_iso()

    def create(pipeline_id: int) -> Pipeline:
        pipeline = Pipeline(project_id, pipeline_id, commit=commit,
                            commit_key=commit_key(project_id, commit), ref=MAIN,
                            status=derive_status(entries, errors), jobs=entries, errors=errors,
                            cancel_previous=bool(spec and spec.cancel_previous),
                            created_by=owner, created_at=now, updated_at=now)
        pipeline.save(condition=Pipeline.id.does_not_exist())
        return pipeline

    pipeline = with_new_id(create, id_taken)
    if pipeline.status in TERMINAL:  # a refused pipeline file: failed at birth
        hooks.pipeline_ended(pipeline)
    if spec is not None and spec.cancel_previous:
        cancel_older(project_id, pipeline.id, f"superseded by commit {commit[:12]}")
    if to_start:
        _start(project_id, pipeline.id, to_start)
    return Pipeline.get(project_id, pipeline.id, consistent_read=True)


def on_job_ended(job: Job) -> None:
    """Record a pipeline job's outcome and move its pipeline on, then start the project's
    pipeline jobs that wait for a slot (any job's end frees one)."""
    try:
        if job.pipeline_id is not None and job.pipeline_job is not None:
            job_ended(job)
        resume_waiting(job.project_id)
    except Exception:  # noqa: BLE001 - the job's own outcome is written already
        logger.exception("pipeline not advanced", extra={"job_id": job.id,
                                                         "pipeline_id": job.pipeline_id})


def resume_waiting(project_id: int) -> None:
    """Try again the entries of the project's recent unfinished pipelines that wait for a job
    slot, oldest pipeline first; those still over a cap wait again."""
    recent = list(Pipeline.query(project_id, scan_index_forward=False, limit=RECENT_FOR_CANCEL))
    for pipeline in reversed(recent):
        if pipeline.status in TERMINAL or not any(e.get("waiting") for e in pipeline.jobs or []):
            continue
        _, to_start = _change(project_id, pipeline.id, _stop_waiting)
        if to_start:
            _start(project_id, pipeline.id, to_start)


def _stop_waiting(p: Pipeline) -> list[str]:
    for entry in p.jobs:
        if entry.get("waiting"):
            entry["waiting"], entry["error"] = False, None
    return []


def job_ended(job: Job) -> None:
    assert job.pipeline_id is not None
    outcome = job_outcome(job.status)

    def record(p: Pipeline) -> list[str]:
        for entry in p.jobs:
            if entry["name"] == job.pipeline_job:
                entry["job_id"] = job.id
                entry["status"] = outcome
                entry["error"] = job.error_message if outcome != PASSED else None
        return []

    _, to_start = _change(job.project_id, job.pipeline_id, record)
    if to_start:
        _start(job.project_id, job.pipeline_id, to_start)


def cancel_older(project_id: int, newer_id: int, reason: str) -> int:
    """Cancel the unfinished jobs of the project's earlier pipelines; returns how many pipelines."""
    from chalicelib.services import job_lifecycle

    cancelled = 0
    for older in Pipeline.query(project_id, Pipeline.id < newer_id, scan_index_forward=False,
                                limit=RECENT_FOR_CANCEL):
        if older.status in TERMINAL:
            continue
        cancelled += 1
        running: list[int] = []
        _change(project_id, older.id, functools.partial(_stop_unstarted, reason, running))
        for job_id in running:
            job = job_lifecycle.load(project_id, job_id)
            if job is None:
                continue
            if not job_lifecycle.cancel_pending(job, reason):
                job_lifecycle.request_cancel(job)
    return cancelled


def _stop_unstarted(reason: str, running: list[int], p: Pipeline) -> list[str]:
    """Cancel the entries without a job; collect the job ids of the others into `running`."""
    running.clear()
    for entry in p.jobs:
        if entry["status"] in TERMINAL:
            continue
        if entry.get("job_id") is not None:
            running.append(int(entry["job_id"]))
        else:
            entry["status"], entry["error"], entry["started"] = CANCELLED, reason, True
    return []
