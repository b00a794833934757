"""Jobs (simulation, synthesis, lint) of a project and their lifecycle on the record.

Access patterns:
- job by id: GetItem jobs[project_id, id] (the runner reads it strongly consistent)
- job by id alone (the live-updates socket's path names no project): Query jobs.by_id[id]
- jobs of a project, newest first: Query jobs[project_id] descending (ids are time-ordered)
- claim by a runner: UpdateItem with the condition
  `status = pending OR (status = running AND lease_expires_at < now)`
- lease renewal / finish: UpdateItem conditioned on `status = running AND runner_id = me AND
  attempts = the claim's` (a runner that took over its own lapsed claim fences the older one)
- cancel: UpdateItem conditioned on the status it expects (pending -> cancelled, or
  running -> cancel_requested)
- queued-or-running jobs of a user / of a project (quotas): Query the sparse GSIs
  active_by_user[user id] / active_by_project[project id] (Select COUNT); the attributes are
  set when a job is created and removed by the same write that ends it
- queue position of a pending job: Query the sparse GSI pending_queue["pending"] for
  created_at < its own (COUNT, capped); `queued` is removed when a job is claimed or ends

Structured results (inputs, steps, artifacts, tool versions, summary) are JSON attributes:
they are written once by the runner and read whole, never queried into.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.models.base import IdAttribute, Model, table_name

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
QUEUED = "pending"  # the one partition of pending_queue


class ActiveByUser(GlobalSecondaryIndex["Job"]):
    class Meta:
        index_name = "active_by_user"
        projection = KeysOnlyProjection()

    active_user = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ActiveByProject(GlobalSecondaryIndex["Job"]):
    class Meta:
        index_name = "active_by_project"
        projection = KeysOnlyProjection()

    active_project = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class PendingQueue(GlobalSecondaryIndex["Job"]):
    class Meta:
        index_name = "pending_queue"
        projection = KeysOnlyProjection()

    queued = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class JobsById(GlobalSecondaryIndex["Job"]):
    class Meta:
        index_name = "by_id"
        projection = KeysOnlyProjection()

    id = IdAttribute(hash_key=True)


class Job(Model):
    class Meta:
        table_name = table_name("jobs")

    project_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    job_type = UnicodeAttribute()
    status = UnicodeAttribute()
    config = JSONAttribute(default=dict)
    commit = UnicodeAttribute(null=True)
    # True when the request named the commit (else it is main's head at submit); every job
    # runs its commit's tree either way.
    commit_pinned = BooleanAttribute(null=True)
    created_by = IdAttribute()
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    exit_code = NumberAttribute(null=True)
    duration_s = NumberAttribute(null=True)
    # The runner that holds the job and until when (epoch seconds); a stale lease on a
    # `running` job lets the next delivery of its message claim it again.
    runner_id = UnicodeAttribute(null=True)
    lease_expires_at = NumberAttribute(null=True)
    attempts = NumberAttribute(default=0)
    cancel_requested = BooleanAttribute(null=True)
    inputs = JSONAttribute(null=True)
    steps = JSONAttribute(null=True)
    tool_versions = JSONAttribute(null=True)
    artifacts = JSONAttribute(null=True)
    summary = JSONAttribute(null=True)
    log_bytes = NumberAttribute(null=True)
    log_truncated = BooleanAttribute(null=True)
    # A pipeline's job: the pipeline and the job's name in it (services/pipelines).
    pipeline_id = IdAttribute(null=True)
    pipeline_job = UnicodeAttribute(null=True)
    no_cache = BooleanAttribute(null=True)  # run even when an identical run's result is cached
    # A graded job (services/assignments/grading.py): the student's tree plus hidden files.
    grading = JSONAttribute(null=True)
    by_id = JobsById()
    # Sparse index keys (see the access patterns above): present only while the job is active.
    active_user = UnicodeAttribute(null=True)
    active_project = UnicodeAttribute(null=True)
    queued = UnicodeAttribute(null=True)
    active_by_user = ActiveByUser()
    active_by_project = ActiveByProject()
    pending_queue = PendingQueue()
