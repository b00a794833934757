"""The transitions of a job record, each a conditional write, shared by the API and the runner.

pending --claim--> running --finish--> completed | failed | cancelled
pending --cancel--> cancelled          running --release--> pending (runner shutting down)
running with a stale lease --claim--> running (another runner takes over a crashed one)
pending | running with a stale lease --dead_letter--> failed
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib import hooks
from chalicelib.models.base import condition_failed, utcnow_iso
from chalicelib.models.jobs import CANCELLED, FAILED, PENDING, QUEUED, RUNNING, Job
from chalicelib.schemas.jobs import ArtifactPublic, InputFilePublic, StepPublic


def _ended() -> list[Action]:
    """A job that ends leaves the quota and queue indexes (sparse GSIs; see models/jobs.py)."""
    return [Job.active_user.remove(), Job.active_project.remove(), Job.queued.remove()]


def _ended_hook(job: Job) -> None:
    """A job ended: its pipeline (if any) records the outcome and starts what needed it, and
    pipeline jobs waiting for the queued-or-running slot it held (any job holds one) start."""
    hooks.job_ended(job)


def _update_if(job: Job, actions: list[Action], condition: Condition) -> bool:
    """Apply `actions` to the job's item when `condition` holds; False (nothing written) when it
    does not. Other DynamoDB errors are raised."""
    try:
        job.update(actions=actions, condition=condition)
    except UpdateError as e:
        if condition_failed(e):
            return False
        raise
    return True


def load(project_id: int, job_id: int) -> Job | None:
    try:
        return Job.get(project_id, job_id, consistent_read=True)
    except Job.DoesNotExist:
        return None


def lease_is_live(job: Job, now: float | None = None) -> bool:
    return job.status == RUNNING and float(job.lease_expires_at or 0) > (now or time.time())


def claim(job: Job, runner_id: str, lease_seconds: float) -> bool:
    """Take the job for `runner_id`; False when it is not claimable (anyone else's, finished)."""
    now = time.time()
    claimable = (Job.status == PENDING) | (
        (Job.status == RUNNING) & (Job.lease_expires_at < now))
    return _update_if(job, [
        Job.status.set(RUNNING), Job.runner_id.set(runner_id),
        Job.lease_expires_at.set(now + lease_seconds), Job.started_at.set(utcnow_iso()),
        Job.attempts.add(1), Job.queued.remove(),
    ], claimable)


def _mine(job: Job, runner_id: str) -> Any:
    """The job is still running under this claim: ours (`runner_id`) and the same attempt. The
    attempt matters where one runner takes over its own lapsed claim (a redelivered message in
    another of its slots): the runner id is the same, and only the attempt tells the two apart,
    so the older one can no longer renew, log or finish over the newer."""
    return ((Job.status == RUNNING) & (Job.runner_id == runner_id)
            & (Job.attempts == int(job.attempts or 0)))


def renew_lease(job: Job, runner_id: str, lease_seconds: float) -> bool:
    """Extend our lease; False when the job is no longer ours (taken over, even by another slot
    of this runner, or gone). `job` is the claimed one: its `attempts` names the claim."""
    return _update_if(job, [Job.lease_expires_at.set(time.time() + lease_seconds)],
                      _mine(job, runner_id))


def record_log_progress(job: Job, runner_id: str, size: int) -> None:
    """Record how much of the log is in storage (`log_bytes`) while the job runs: the change on
    the job's stream is what pushes the new lines to live-update sockets (services/live.py).
    A separate instance, so the caller's (used by another thread) is not refreshed under it."""
    _update_if(Job(job.project_id, job.id), [Job.log_bytes.set(size)], _mine(job, runner_id))


def mark_log_truncated(job: Job, runner_id: str) -> None:
    _update_if(job, [Job.log_truncated.set(True)], _mine(job, runner_id))


@dataclass
class JobResult:
    """What a finished run writes on its job: the shared public models (chalicelib/schemas/jobs),
    stored as JSON attributes and read back into the same models by `job_public`."""

    status: str
    error_message: str | None
    exit_code: int | None
    duration_s: float
    inputs: list[InputFilePublic]
    steps: list[StepPublic]
    tool_versions: dict[str, str]
    artifacts: list[ArtifactPublic]
    summary: dict[str, Any]
    log_bytes: int
    log_truncated: bool


def finish(job: Job, runner_id: str, result: JobResult) -> bool:
    """Write the outcome; False when the job stopped being ours meanwhile (result discarded)."""
    actions: list[Action] = [
        Job.status.set(result.status), Job.completed_at.set(utcnow_iso()),
        Job.duration_s.set(round(result.duration_s, 3)), Job.inputs.set(_dumped(result.inputs)),
        Job.steps.set(_dumped(result.steps)), Job.tool_versions.set(result.tool_versions),
        Job.artifacts.set(_dumped(result.artifacts)), Job.summary.set(result.summary),
        Job.log_bytes.set(result.log_bytes), Job.log_truncated.set(result.log_truncated),
        Job.lease_expires_at.remove(), *_ended(),
    ]
    actions.append(Job.error_message.set(result.error_message) if result.error_message
                   else Job.error_message.remove())
    actions.append(Job.exit_code.set(result.exit_code) if result.exit_code is not None
                   else Job.exit_code.remove())
    if not _update_if(job, actions, _mine(job, runner_id)):
        return False
    _ended_hook(job)
    return True


def _dumped(models: list[InputFilePublic] | list[StepPublic] | list[ArtifactPublic]
            ) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json") for m in models]


def release(job: Job, runner_id: str) -> bool:
    """Give a running job back to the queue (runner stopping); the next claim runs it afresh."""
    return _update_if(job, [
        Job.status.set(PENDING), Job.runner_id.remove(), Job.lease_expires_at.remove(),
        Job.started_at.remove(), Job.queued.set(QUEUED),
    ], _mine(job, runner_id))


def cancel_pending(job: Job, reason: str) -> bool:
    if not _update_if(job, [
        Job.status.set(CANCELLED), Job.completed_at.set(utcnow_iso()),
        Job.error_message.set(reason), *_ended(),
    ], Job.status == PENDING):
        return False
    _ended_hook(job)
    return True


def request_cancel(job: Job) -> bool:
    return _update_if(job, [Job.cancel_requested.set(True)], Job.status == RUNNING)


def fail_unstarted(job: Job, reason: str) -> bool:
    """End a job nobody is working on: pending, or running under a lease that has expired."""
    now = time.time()
    abandoned = (Job.status == PENDING) | (
        (Job.status == RUNNING) & (Job.lease_expires_at < now))
    if not _update_if(job, [
        Job.status.set(FAILED), Job.completed_at.set(utcnow_iso()),
        Job.error_message.set(reason), Job.lease_expires_at.remove(), *_ended(),
    ], abandoned):
        return False
    _ended_hook(job)
    return True
