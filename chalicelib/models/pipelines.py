"""Pipelines (one per commit that moved main and holds `.a6hub.yml`) and the job result cache.

Access patterns:
- pipelines of a project, newest first: Query pipelines[project_id] descending (ids are
  time-ordered); `?ref=` narrows with a filter on `ref` (every pipeline today is main's)
- the pipelines of one commit (status on git/commits): Query pipelines.by_commit[commit_key]
  (`<project_id>:<sha>`) descending, newest first
- a job ends: GetItem pipelines[project_id, pipeline_id] (the job records both), then a
  PutItem conditioned on the version read (VersionAttribute): two jobs ending at once never
  lose each other's outcome, and a dependant job is started by exactly one of them
- pipelines with entries waiting for a job slot, of one owner, oldest first: Query the sparse
  GSI pipelines.waiting_by_owner[owner id] (a job of that owner ended in any project)
- cached result of a job: GetItem jobcache[key]; written by every completed run (the newest
  run with a key is kept); the item `toolchain` holds the tool versions runners last published

Each pipeline's jobs are a JSON list on the item (at most spec.MAX_JOBS entries, read whole).
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.models.base import IdAttribute, Model, table_name


class PipelinesByCommit(GlobalSecondaryIndex["Pipeline"]):
    class Meta:
        index_name = "by_commit"
        projection = AllProjection()

    commit_key = UnicodeAttribute(hash_key=True)
    id = IdAttribute(range_key=True)


class PipelinesWaitingByOwner(GlobalSecondaryIndex["Pipeline"]):
    class Meta:
        index_name = "waiting_by_owner"
        projection = KeysOnlyProjection()

    waiting_owner = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)


class Pipeline(Model):
    class Meta:
        table_name = table_name("pipelines")

    project_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    commit = UnicodeAttribute()
    commit_key = UnicodeAttribute()
    ref = UnicodeAttribute()
    # pending | running | passed | failed | cancelled, derived from `jobs` on every write.
    status = UnicodeAttribute()
    # [{name, job_type, config, needs, no_cache, job_id, status, error, started}] in file order.
    jobs = JSONAttribute(default=list)
    errors = JSONAttribute(null=True)  # the pipeline file's faults: "line N: ..." (no jobs ran)
    cancel_previous = BooleanAttribute(default=False)
    created_by = IdAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()
    grading = JSONAttribute(null=True)  # a graded pipeline (services/assignments/grading.py)
    by_commit = PipelinesByCommit()
    # Sparse: the owner (created_by) while an entry waits for a job slot, for the wake-up when
    # a job of that owner ends in any project (runs.resume_waiting); absent otherwise.
    waiting_owner = IdAttribute(null=True)
    waiting_by_owner = PipelinesWaitingByOwner()


class JobCache(Model):
    """What a run with one cache key produced (services/pipelines/cache.py builds the key)."""

    class Meta:
        table_name = table_name("jobcache")

    key = UnicodeAttribute(hash_key=True)
    project_id = IdAttribute()
    job_id = IdAttribute()
    created_at = UnicodeAttribute()
    versions = JSONAttribute(null=True)  # the `toolchain` item: tool -> version line
    # What a hit is built from (steps, summary, artifacts, ... of the completed run), written
    # once the run's completion is recorded (runs.on_job_ended); absent on older items and for
    # results over cache.MAX_RESULT_BYTES, whose run is then read.
    result = JSONAttribute(null=True)
