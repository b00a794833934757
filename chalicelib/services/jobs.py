"""Jobs as the API sees them: submit (record + queue message), list, read, logs, cancel, artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import jobqueue, metrics, storage
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from chalicelib.ids import is_number_id, with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import utcnow_iso
from chalicelib.models.jobs import PENDING, QUEUED, RUNNING, TERMINAL, Job
from chalicelib.schemas.jobs import (
    ArtifactLink,
    ArtifactPublic,
    InputFilePublic,
    JobCreate,
    JobLogs,
    JobPublic,
    StepPublic,
)
from chalicelib.services import job_lifecycle, job_quotas
from chalicelib.services.cocotb_modules import resolve_test_modules
from chalicelib.services.git import job_commits
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, page_of
from chalicelib.services.projects import Need, authorize

logger = Logger(service=SERVICE, child=True)

MAX_LOG_CHUNK = 1024 * 1024  # bytes one logs response carries at most
INLINE_ARTIFACT_BYTES = 64 * 1024  # small text artifacts are answered inline
PRESIGN_SECONDS = 300
_INLINE_TYPES = ("text/", "application/json")


def job_public(job: Job, with_position: bool = False, position: int | None = None) -> JobPublic:
    """The job as the API shows it; `with_position`: count its place in the queue (one Query,
    pending jobs only), or `position`: that count, made already."""
    return JobPublic(
        id=job.id, project_id=job.project_id, job_type=job.job_type,
        status=job.status,  # type: ignore[arg-type]
        config=dict(job.config or {}), commit=job.commit,
        commit_pinned=bool(job.commit_pinned), created_by=job.created_by,
        user_id=job.created_by, created_at=job.created_at,
        updated_at=job.completed_at or job.started_at or job.created_at,
        started_at=job.started_at, completed_at=job.completed_at,
        duration_s=float(job.duration_s) if job.duration_s is not None else None,
        error_message=job.error_message,
        exit_code=int(job.exit_code) if job.exit_code is not None else None,
        attempts=int(job.attempts or 0), cancel_requested=bool(job.cancel_requested),
        inputs=[InputFilePublic(**i) for i in job.inputs or []],
        steps=[StepPublic(**s) for s in job.steps or []],
        tool_versions=dict(job.tool_versions or {}),
        artifacts=[ArtifactPublic(**a) for a in job.artifacts or []],
        # cocotb's per-test results are kept in the summary and shown as `tests`.
        summary={k: v for k, v in (job.summary or {}).items() if k != "tests"},
        tests=(job.summary or {}).get("tests"),
        log_bytes=int(job.log_bytes or 0),
        log_truncated=bool(job.log_truncated),
        queue_position=job_quotas.queue_position(job) if with_position else position,
    )


def resolve_testbench(config: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """The config with a bare testbench file name ("testbench.v") replaced by the one project
    path whose file name it is ("src/testbench.v"): the web client names files by name and
    creates them under src/. A path that exists as given is kept. 422 when no file or several
    files have that name (naming them); module names and paths with '/' are left as they are.
    """
    from chalicelib.schemas.job_configs import HDL_SUFFIXES

    testbench = config.get("testbench")
    if not isinstance(testbench, str) or "/" in testbench or not testbench.endswith(HDL_SUFFIXES):
        return config
    if testbench in paths:
        return config
    matches = sorted(p for p in paths if p.rsplit("/", 1)[-1] == testbench)
    if not matches:
        raise Unprocessable(f"config.testbench: no project file is named {testbench!r}")
    if len(matches) > 1:
        raise Unprocessable(f"config.testbench: several project files are named {testbench!r} "
                            f"({', '.join(matches)}); give its path")
    return {**config, "testbench": matches[0]}


def check_constraints(config: dict[str, Any], paths: list[str]) -> None:
    """422 when a build's `constraints` is not a file of the commit it runs on (the runner would
    fail it after queueing: 'constraint file not found in the project')."""
    if config["constraints"] not in paths:
        raise Unprocessable(f"config.constraints: {config['constraints']!r} is not a file of the "
                            "project at the job's commit")


def _project_paths(project_id: int, commit: str | None) -> list[str]:
    """The paths a job will read: its commit's tree (none before the project's first commit)."""
    if not commit:
        return []
    from chalicelib.services.git.store import open_repo

    store = open_repo(project_id).object_store
    tree = store[store[commit.encode()].tree]  # type: ignore[attr-defined]
    return [entry.path.decode("utf-8", "replace") for entry in store.iter_tree_contents(tree.id)]


def _validated_config(job_type: str, config: dict[str, Any]) -> dict[str, Any]:
    from chalicelib.schemas.job_configs import parse_job_config

    parsed = parse_job_config(job_type, config)
    normalised: dict[str, Any] = parsed.model_dump(mode="json")
    return normalised


def _load(project_id: int, job_id: int) -> Job:
    if not is_number_id(job_id):
        raise NotFound("Job not found")
    try:
        return Job.get(project_id, job_id)
    except Job.DoesNotExist as e:
        raise NotFound("Job not found") from e


def authorized_job(caller: Caller | None, project_id: int, job_id: int, need: Need = "read",
                   consistent: bool = False) -> Job:
    """The job, for a caller who needs `need` on its project: the project, the caller's
    membership (and user record) and the job in one BatchGetItem (`consistent`: a strongly
    consistent one). The authorisation is decided first (its 401/403/404 whatever the job);
    then NotFound when the job id is not a number or no such job exists."""
    if not is_number_id(job_id):
        authorize(caller, project_id, need)
        raise NotFound("Job not found")
    job = authorize(caller, project_id, need, also=Job(project_id, job_id),
                    consistent=consistent).also
    if job is None:
        raise NotFound("Job not found")
    return job


def enqueue(job: Job) -> None:
    jobqueue.send_job(get_settings().jobs_queue_url, job.project_id, job.id, job.commit)


def submit_job(caller: Caller, project_id: int, data: JobCreate) -> JobPublic:
    """Validate, check the caps, store the pending job and queue its message.

    Round trips in order (each waits for the one before): the authorisation's BatchGetItem,
    which also reads main's ref when no commit is asked for, with the two active-job counts
    beside it (the commit's tree after it, when the job type needs its paths); the job's
    PutItem and the per-minute window's count in one TransactWriteItems; then SendMessage and
    the queue position's Query at once. The counts are started for the token's claimed user
    before the authorisation decides, and read only once it passed: a refused caller's request
    costs their two Queries (each at most its cap's keys) and answers as before (401/403/404,
    then 422, then 429). Nothing is written before the caps pass, nor unless the window has
    room; a job whose message cannot be sent ends failed.
    """
    counts = job_quotas.active_counts(caller.claimed_id, project_id)
    main_ref = None if data.commit else job_commits.main_ref_key(project_id)
    access = authorize(caller, project_id, "write", also=main_ref, consistent=True)
    config = _validated_config(data.job_type, data.config)
    commit = (job_commits.resolve(project_id, data.commit) if data.commit
              else job_commits.target_of(access.also))
    if data.job_type == "simulation":
        config = resolve_testbench(config, _project_paths(project_id, commit))
    elif data.job_type == "cocotb":
        resolve_test_modules(config["test_modules"], _project_paths(project_id, commit))
    elif data.job_type == "build":
        check_constraints(config, _project_paths(project_id, commit))
    job_quotas.check_can_submit(caller.id, project_id, counts)
    window = job_quotas.submit_window(caller.id)

    def create(job_id: int) -> Job:
        job = Job(project_id, job_id, job_type=data.job_type, status=PENDING, config=config,
                  commit=commit, commit_pinned=bool(data.commit) or None,
                  created_by=caller.id, created_at=utcnow_iso(), attempts=0,
                  active_user=str(caller.id), active_project=str(project_id), queued=QUEUED,
                  no_cache=data.no_cache or None)
        job_quotas.save_counted(job, window)
        return job

    job = with_new_id(create, job_quotas.id_collided)
    position = job_quotas.read_pool().submit(job_quotas.queue_position, job)
    try:
        enqueue(job)
    except (BotoCoreError, ClientError) as e:
        # Never leave a job pending that no message will ever start: end it with the reason.
        logger.warning("job queue send failed", extra={"job_id": job.id, "error": str(e)})
        reason = "the job queue was unavailable; the job was not started"
        if not job_lifecycle.fail_unstarted(job, reason):
            logger.error("could not mark an unqueued job failed", extra={"job_id": job.id})
        raise ServiceUnavailable(f"{reason} (job {job.id}); try again",
                                 headers={"Retry-After": "5"}) from e
    metrics.job_submitted(job.job_type)
    return job_public(job, position=position.result())


def list_jobs(caller: Caller | None, project_id: int, limit: int,
              cursor: str | None) -> Page[JobPublic]:
    authorize(caller, project_id, "read")
    start = decode_cursor(cursor, {"project_id": project_id})
    result = Job.query(project_id, scan_index_forward=False, limit=limit, page_size=limit,
                       last_evaluated_key=start)
    return page_of(result, (job_public(j) for j in result))


def get_job(caller: Caller | None, project_id: int, job_id: int) -> JobPublic:
    return job_public(authorized_job(caller, project_id, job_id), with_position=True)


def stored_as(project_id: int, job_id: int, attempt: int,
              summary: dict[str, Any] | None) -> tuple[int, int, int]:
    """storage.job_stored_as, checked: a fork's cache hit whose source project (the run it
    reuses) was deleted since has no bytes left, a 404 saying so (one GetItem, only then)."""
    from chalicelib.models.projects import Project

    stored = storage.job_stored_as(project_id, job_id, attempt, summary)
    if stored[0] != project_id:
        try:
            Project.get(stored[0])
        except Project.DoesNotExist:
            raise NotFound("This job was served from the cache of the project this one was "
                           "forked from, which has been deleted: its log and artifacts are "
                           "gone") from None
    return stored


def get_logs(caller: Caller | None, project_id: int, job_id: int, offset: int) -> JobLogs:
    if offset < 0:
        authorize(caller, project_id, "read")
        raise Unprocessable("offset must be a non-negative integer")
    job = authorized_job(caller, project_id, job_id)
    # The log of the latest attempt (a retried job starts a new one).
    key = storage.job_log_key(*stored_as(project_id, job_id, int(job.attempts or 0),
                                         job.summary))
    data, total = storage.get_range(key, offset, MAX_LOG_CHUNK) if job.attempts else (b"", 0)
    start = min(offset, total) if total else 0
    next_offset = start + len(data)
    return JobLogs(
        job_id=job.id, status=job.status,  # type: ignore[arg-type]
        logs=data.decode("utf-8", errors="replace"), offset=start, next_offset=next_offset,
        size_bytes=total, truncated=bool(job.log_truncated),
        complete=job.status in TERMINAL and next_offset >= total,
    )


def cancel_job(caller: Caller, project_id: int, job_id: int) -> JobPublic:
    """Pending jobs end `cancelled` at once; running ones are flagged and the runner stops them."""
    job = authorized_job(caller, project_id, job_id, "write")
    for _ in range(3):  # the status may move under us (claimed, finished): re-read and retry
        if job.status in TERMINAL:
            raise Conflict(f"the job has already ended ({job.status})")
        if job.status == PENDING and job_lifecycle.cancel_pending(
                job, f"cancelled by {caller.user.username}"):
            return job_public(job)
        if job.status == RUNNING and job_lifecycle.request_cancel(job):
            return job_public(job)
        job = _load(project_id, job_id)
    raise Conflict("the job changed meanwhile; retry")


@dataclass(frozen=True)
class InlineArtifact:
    body: str
    mime_type: str


def get_artifact(caller: Caller | None, project_id: int, job_id: int, name: str,
                 presign: bool) -> ArtifactLink | InlineArtifact:
    job = authorized_job(caller, project_id, job_id)
    found = next((a for a in job.artifacts or [] if a.get("name") == name), None)
    if found is None:
        raise NotFound("Artifact not found")
    key = storage.job_artifact_key(*stored_as(project_id, job_id, int(job.attempts or 0),
                                              job.summary), found["name"])
    mime, size = str(found["mime_type"]), int(found["size_bytes"])
    if not presign and size <= INLINE_ARTIFACT_BYTES and mime.startswith(_INLINE_TYPES):
        return InlineArtifact(storage.get_bytes(key).decode("utf-8", errors="replace"), mime)
    url = storage.presign_download(key, found["name"], expires=PRESIGN_SECONDS)
    return ArtifactLink(name=found["name"], url=url, expires_in=PRESIGN_SECONDS,
                        size_bytes=size, mime_type=mime)
