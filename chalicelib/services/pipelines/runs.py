"""Running pipelines: one per commit that moves main, jobs started as their needs pass.

Two entry points are called from elsewhere, and neither ever raises into its caller (a ref
that moved stays moved; a job that ended stays ended; a failure here is logged):

- `on_main_moved(project_id, sha)`: main now points at `sha` (push, files-API edit, restore,
  import). When the commit's tree holds `.a6hub.yml`, a pipeline is recorded for it and the
  jobs without `needs` are submitted, pinned to that commit, as the project owner. Jobs whose
  key a completed run of the project stored are born completed instead (instant.py), and so
  are the dependants those hits make ready: a tree built before is written whole, pipeline and
  jobs, in one transaction.
- `on_job_ended(job)`: a job reached completed/failed/cancelled. Its pipeline entry takes the
  outcome; entries whose needs all passed are started; entries with a need that failed or was
  cancelled become `cancelled` (transitively) with the reason.

Pipeline jobs hold the same queued-or-running caps as jobs submitted by hand
(services/job_quotas.py, counted for the project owner and the project): a job that would pass
a cap is not created but marked `waiting` (pending, no job), and waiting entries are tried
again whenever a job ends in their project or of their owner in any project (the sparse index
waiting_by_owner). Without this, one commit of a 50-job file
queued 50 jobs, and every further move of main 50 more, past the caps of 5 and 10.

Every change to a pipeline item is a read, a change and a write conditioned on the version read
(`_change`), retried on a conflict; an entry is marked `started` by that write before its job
is created, so concurrent endings never start a job twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import PutError

from chalicelib import hooks
from chalicelib.errors import Unprocessable
from chalicelib.ids import ID_ATTEMPTS, distinct_number_id, with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import condition_failed, fetch_many, id_taken, utcnow_iso
from chalicelib.models.jobs import CANCELLED, COMPLETED, FAILED, PENDING, QUEUED, RUNNING, Job
from chalicelib.models.pipelines import Pipeline
from chalicelib.services.pipelines import cache as keys
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


@functools.lru_cache(maxsize=1)
def _reads() -> ThreadPoolExecutor:
    """Threads for a read that need not wait for the one before it."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="pipeline-read")


@functools.lru_cache(maxsize=64)
def _parsed(data: bytes) -> tuple[PipelineSpec | None, list[str] | None]:
    """(spec, None) or (None, errors) of a pipeline file's bytes, kept per process: every commit
    that leaves the file alone (most of them) parses the same bytes. Callers copy what they
    change (the spec's configs end up deep-copied into the pipeline's entries)."""
    try:
        return parse_pipeline(data), None
    except PipelineFileError as e:
        return None, list(e.errors)


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
        pipeline.waiting_owner = pipeline.created_by if _has_waiting(entries) else None
        pipeline.updated_at = utcnow_iso()
        try:
            pipeline.save()  # conditioned on the version read (VersionAttribute)
        except PutError as e:
            if condition_failed(e):
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


@dataclass
class _Plan:
    """What a pipeline's unstarted entries will do, learnt before anything is written: configs
    resolved in the commit's tree, refusals, and the cached runs found for them."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    hits: dict[str, instant.Hit] = field(default_factory=dict)


def _plan(project_id: int, entries: list[dict[str, Any]], reader: instant.TreeReader,
          published: instant.Published | Callable[[], instant.Published],
          fork: instant.Fork = None) -> _Plan:
    """Resolve every unstarted entry's config and look all their keys up at once (the hits of a
    job whose needs may not pass are found and left unused: one BatchGetItem whatever the
    pipeline's depth, two when a cache item lacks its result, against a lookup per job and a
    wave of writes per level of `needs`). `fork`: the project, for a fork's lookups in its
    source's cache (instant.find_hits)."""
    from chalicelib.services.jobs import resolve_testbench

    plan = _Plan()
    for entry in entries:
        if entry["status"] != PENDING or entry.get("job_id") is not None:
            continue
        name, config = str(entry["name"]), dict(entry["config"])
        try:
            if entry["job_type"] == "simulation":
                config = resolve_testbench(config, reader.paths)
        except Unprocessable as e:
            plan.refused[name] = str(e.detail)
            continue
        plan.configs[name] = config
    wanted = {n: (str(e["job_type"]), plan.configs[n]) for e in entries
              if (n := str(e["name"])) in plan.configs and not e.get("no_cache")}
    plan.hits = instant.find_hits(project_id, wanted, published, reader, fork)
    return plan


def _walk(pipeline: Pipeline, entries: list[dict[str, Any]], ready: list[str], plan: _Plan,
          drawn: set[int]) -> tuple[list[Job], list[str]]:
    """Settle `ready` (marked started) and every entry they make ready, in memory: a refused
    config fails its entry, a hit passes it with a completed job (unsaved, returned), anything
    else is returned to be queued. Dependants of a failure are cancelled by _advance."""
    by_name = {str(e["name"]): e for e in entries}
    served: list[Job] = []
    to_run: list[str] = []
    while ready:
        for name in ready:
            entry = by_name[name]
            if name in plan.refused:
                entry["status"], entry["error"] = FAILED, plan.refused[name]
            elif name in plan.hits:
                job = instant.cached_job(pipeline, entry, plan.configs[name], plan.hits[name],
                                         distinct_number_id(drawn))
                entry["job_id"], entry["status"], entry["error"] = job.id, PASSED, None
                served.append(job)
            else:
                to_run.append(name)
        ready = _advance(entries)
    return served, to_run


def _write(jobs: list[Job], pipeline: Pipeline | None = None) -> None:
    """Create the jobs (and the new pipeline) in one transaction, each on the condition that its
    id is new; TransactWriteError when one collided. A transaction DynamoDB refuses for its
    size (4 MB, 100 items) is written item by item instead, with the same conditions."""
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.transactions import TransactWrite

    from chalicelib.models.base import transaction_connection

    items: list[Job | Pipeline] = [*([pipeline] if pipeline is not None else []), *jobs]
    if not items:
        return
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            for item in items:
                tx.save(item, condition=type(item).id.does_not_exist())
        return
    except TransactWriteError as e:
        if any(r is not None and r.code == "ConditionalCheckFailed"
               for r in e.cancellation_reasons or []):
            raise
        logger.warning("pipeline items written one by one", extra={"error": str(e)})
    for item in items:
        item.save(condition=type(item).id.does_not_exist())


def _id_collided(e: Exception) -> bool:
    from pynamodb.exceptions import TransactWriteError

    return isinstance(e, TransactWriteError | PutError) and (
        id_taken(e) or any(r is not None and r.code == "ConditionalCheckFailed"
                           for r in getattr(e, "cancellation_reasons", None) or []))


def _start(project_id: int, pipeline_id: int, names: list[str],
           reader: instant.TreeReader | None = None) -> None:
    """Settle the entries of `names` (already marked started) and those their cache hits make
    ready (_walk), create and queue the jobs to run, then record it all; a job that cannot be
    created fails its entry (and so cancels its dependants)."""
    import copy

    from chalicelib.models.projects import Project
    from chalicelib.services.job_quotas import active_slot_problem
    from chalicelib.services.jobs import enqueue

    project, toolchain = fetch_many(Project(project_id), instant.toolchain_key())
    published = instant.toolchain_of(toolchain)
    while names:
        pipeline = Pipeline.get(project_id, pipeline_id, consistent_read=True)
        if reader is None:
            reader = _reader(pipeline)
        entries = copy.deepcopy(list(pipeline.jobs or []))
        plan = _plan(project_id, entries, reader, published,
                     None if pipeline.grading else project)
        for attempt in range(ID_ATTEMPTS):
            walked = copy.deepcopy(entries)
            served, to_run = _walk(pipeline, walked, names, plan, set())
            try:
                _write(served)
                break
            except Exception as e:  # noqa: BLE001 - classified: an id collision draws again
                if not _id_collided(e) or attempt == ID_ATTEMPTS - 1:
                    raise
        by_name = {str(e["name"]): e for e in walked}
        passed = {str(j.pipeline_job): j.id for j in served}
        refused = {n: str(by_name[n]["error"]) for n in plan.refused
                   if by_name[n]["status"] == FAILED}
        created: dict[str, int] = {}
        waiting: dict[str, str] = {}
        for name in to_run:
            full = active_slot_problem(pipeline.created_by, project_id)
            if full is not None:
                waiting[name] = f"waiting for a job slot: {full}"
                continue
            job = _create_job(pipeline, by_name[name], plan.configs[name])
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
                           functools.partial(_record_started, created, passed, refused, waiting,
                                             set(to_run)))


def _reader(pipeline: Pipeline) -> Any:
    """The files the pipeline's jobs read: its commit's tree, or for a graded pipeline the
    student's tree with the assignment's hidden files over it (services/assignments)."""
    if pipeline.grading:
        from chalicelib.services.assignments.hidden import GradedTree

        return GradedTree(dict(pipeline.grading), pipeline.commit)
    store, tree = _commit_tree(pipeline.project_id, pipeline.commit)
    return instant.TreeReader(store, tree)


def _record_started(created: dict[str, int], passed: dict[str, int], refused: dict[str, str],
                    waiting: dict[str, str], started: set[str], p: Pipeline) -> list[str]:
    for entry in p.jobs:
        name = str(entry["name"])
        if name in started and entry["status"] == PENDING and not entry.get("waiting"):
            entry["started"] = True  # made ready by this round's hits
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
                  no_cache=bool(entry.get("no_cache")) or None, grading=pipeline.grading)
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
    """Record and start the pipeline of `commit` (None when its tree has no pipeline file).

    The jobs served from the cache (all of them, when the same tree was built before) are
    settled before anything is written, and written with the pipeline in one transaction: a
    commit whose every job hits costs the tree read (the process's object cache), the owner's
    and the tool versions (one BatchGetItem, read while the files each job reads are worked
    out), one BatchGetItem of the cache items (which hold their runs' results) and that one
    write.
    """
    import copy

    from chalicelib.models.projects import Project

    store, tree = _commit_tree(project_id, commit)
    data = file_in_tree(store, tree, PIPELINE_FILE)
    if data is None:
        return None
    spec, errors = _parsed(data)
    # the owner and the tool versions, read while the files each job reads are worked out
    first = _reads().submit(fetch_many, Project(project_id), instant.toolchain_key())
    entries = [{"name": j.name, "job_type": j.job_type, "config": j.config, "needs": list(j.needs),
                "no_cache": j.no_cache, "job_id": None, "status": PENDING, "error": None}
               for j in (spec.jobs if spec else ())]
    reader = instant.TreeReader(store, tree)
    plan = _plan(project_id, entries, reader,
                 lambda: instant.toolchain_of(first.result()[1]), lambda: first.result()[0])
    project, _ = first.result()
    if project is None:
        raise KeyError(f"project {project_id} is gone")
    for attempt in range(ID_ATTEMPTS):
        drawn: set[int] = set()
        walked = copy.deepcopy(entries)
        ready = _advance(walked)
        now = utcnow_iso()
        pipeline = Pipeline(project_id, distinct_number_id(drawn), commit=commit,
                            commit_key=commit_key(project_id, commit), ref=MAIN,
                            status=PENDING, jobs=walked, errors=list(errors) if errors else None,
                            cancel_previous=bool(spec and spec.cancel_previous),
                            created_by=project.owner_id, created_at=now, updated_at=now)
        served, to_run = _walk(pipeline, walked, ready, plan, drawn)
        pipeline.status = derive_status(walked, errors)
        try:
            _write(served, pipeline)
            break
        except Exception as e:  # noqa: BLE001 - classified: an id collision draws again
            if not _id_collided(e) or attempt == ID_ATTEMPTS - 1:
                raise
    if pipeline.status in TERMINAL:  # failed at birth (a refused pipeline file) or all cached
        hooks.pipeline_ended(pipeline)
    if spec is not None and spec.cancel_previous:
        cancel_older(project_id, pipeline.id, f"superseded by commit {commit[:12]}")
    if to_run:
        _start(project_id, pipeline.id, to_run, reader)
        return Pipeline.get(project_id, pipeline.id, consistent_read=True)
    return pipeline


def on_job_ended(job: Job) -> None:
    """Record a pipeline job's outcome and move its pipeline on, then start pipeline jobs that
    wait for the slots its end freed: the project's (per-project cap) and those of the job's
    user in any of their projects (per-user cap; a pipeline's jobs count for its owner)."""
    try:
        _remember_result(job)
        if job.pipeline_id is not None and job.pipeline_job is not None:
            job_ended(job)
        resume_waiting(job.project_id, job.created_by)
    except Exception:  # noqa: BLE001 - the job's own outcome is written already
        logger.exception("pipeline not advanced", extra={"job_id": job.id,
                                                         "pipeline_id": job.pipeline_id})


def _remember_result(job: Job) -> None:
    """A completed run whose key the runner stamped: store the key again with the result, now
    that the completion is recorded (instant.py then builds hits without reading the run)."""
    key = keys.key_of_run(job) if job.status == COMPLETED else None
    if key is not None:
        keys.remember(key, job.project_id, job.id, keys.result_of(job))


def resume_waiting(project_id: int, user_id: int | None = None) -> None:
    """Try again the entries that wait for a job slot, oldest pipeline first: those of the
    project's recent unfinished pipelines, and those of `user_id`'s pipelines in any project
    (the sparse index waiting_by_owner, RECENT_FOR_CANCEL oldest). A pipeline whose owner or
    project is still at a cap is left waiting without a write; entries that lose the race for a
    slot wait again."""
    from chalicelib.services.job_quotas import active_slot_problem

    found: dict[tuple[int, int], int | None] = {}
    for pipeline in Pipeline.query(project_id, scan_index_forward=False, limit=RECENT_FOR_CANCEL,
                                   filter_condition=Pipeline.waiting_owner.exists(),
                                   attributes_to_get=["project_id", "id", "waiting_owner"]):
        found[(project_id, pipeline.id)] = pipeline.waiting_owner
    if user_id is not None:
        for key in Pipeline.waiting_by_owner.query(user_id, limit=RECENT_FOR_CANCEL):
            found.setdefault((key.project_id, key.id), user_id)
    for (pid, pipeline_id), owner in sorted(found.items(), key=lambda kv: kv[0][1]):
        if owner is not None and active_slot_problem(owner, pid) is not None:
            continue
        _, to_start = _change(pid, pipeline_id, _stop_waiting)
        if to_start:
            _start(pid, pipeline_id, to_start)


def _has_waiting(entries: list[dict[str, Any]]) -> bool:
    return any(e.get("waiting") and e["status"] == PENDING for e in entries)


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
        if older.status in TERMINAL or older.ref != MAIN:  # a graded pipeline is a student's
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
