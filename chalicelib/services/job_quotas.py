"""What one user or project may hold of the job system: queued + running jobs, submissions per
minute, artifact storage; and where a pending job stands in the queue.

Each job may hold a runner for its whole wall limit and store artifacts, so an unbounded
submitter could queue everyone else out (25 jobs were accepted in 1.8 s).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.config import get_settings
from chalicelib.errors import TooManyRequests
from chalicelib.models.base import (
    cancelled_by_condition,
    condition_failed,
    first_condition_failed,
    lost_transaction_race,
    transaction_connection,
)
from chalicelib.models.jobs import QUEUED, Job
from chalicelib.models.projects import Project
from chalicelib.services import ratelimit

RETRY_AFTER_SECONDS = 30  # jobs end within their wall limit; look again in a while
MAX_POSITION = 1000  # a queue position is counted up to here (one Query page of keys)


def _count(index_query: Iterable[Any]) -> int:
    return sum(1 for _ in index_query)


@functools.lru_cache(maxsize=1)
def read_pool() -> ThreadPoolExecutor:
    """The process's threads for a job POST's reads that need not wait for one another (the two
    counts of `active_counts`; services/jobs.py's queue position beside the SendMessage)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="job-read")


def active_counts(user_id: int, project_id: int) -> Callable[[], tuple[int, int]]:
    """Start counting the user's and the project's queued + running jobs (two Queries at once,
    each capped at its limit); the returned function waits for (user's, project's)."""
    settings = get_settings()
    per_user, per_project = (settings.jobs_max_active_per_user,
                             settings.jobs_max_active_per_project)
    user = read_pool().submit(lambda: _count(Job.active_by_user.query(str(user_id), limit=per_user)))
    project = read_pool().submit(
        lambda: _count(Job.active_by_project.query(str(project_id), limit=per_project)))
    return lambda: (user.result(), project.result())


def check_can_submit(user_id: int, project_id: int,
                     counts: Callable[[], tuple[int, int]] | None = None) -> None:
    """Raise TooManyRequests (with Retry-After) when the user or the project already has the
    maximum of queued + running jobs.

    `counts`: the `active_counts` started earlier for this user and project (started here
    otherwise). The counts come from sparse GSIs (eventually consistent: a burst within their
    replication lag could pass the cap); the per-minute window (`submit_window`, counted in the
    job's own write by `save_counted`) is a conditional counter and bounds bursts strictly.
    """
    settings = get_settings()
    per_user = settings.jobs_max_active_per_user
    per_project = settings.jobs_max_active_per_project
    users, projects = (counts or active_counts(user_id, project_id))()
    if users >= per_user:
        raise TooManyRequests(f"You already have {per_user} queued or running jobs; wait for "
                              "one to end", retry_after=RETRY_AFTER_SECONDS)
    if projects >= per_project:
        raise TooManyRequests(f"This project already has {per_project} queued or running jobs; "
                              "wait for one to end", retry_after=RETRY_AFTER_SECONDS)


def submit_window(user_id: int) -> ratelimit.Window:
    """The user's submissions per minute (A6HUB_JOBS_MAX_SUBMITS_PER_MINUTE)."""
    return ratelimit.Window(f"jobs#user#{user_id}", get_settings().jobs_max_submits_per_minute, 60)


CONFLICT_RETRIES = 5


def save_counted(job: Job, window: ratelimit.Window) -> None:
    """Store a new job and count it in `window`, in one TransactWriteItems: both or neither.

    Raises TooManyRequests (nothing written) when the window is full; TransactWriteError when
    the job's id exists (`id_collided` tells) or DynamoDB refused otherwise. A transaction that
    only lost a race with another on the same counter (the user's concurrent submissions:
    TransactionConflict) is tried again, up to CONFLICT_RETRIES times.
    """
    for attempt in range(CONFLICT_RETRIES):
        at = time.time()
        try:
            with TransactWrite(connection=transaction_connection()) as tx:
                tx.save(job, condition=Job.id.does_not_exist())
                wait = ratelimit.count_in(tx, window, at)
            return
        except TransactWriteError as e:
            # the request's items: the put (the job), then the update (the counter)
            failed = cancelled_by_condition(e)
            if len(failed) > 1 and failed[1]:
                raise TooManyRequests("Too many jobs submitted in the last minute",
                                      retry_after=wait) from None
            if not lost_transaction_race(e) or any(failed) or attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


#: `save_counted` failed because the job's drawn id exists (with_new_id's predicate).
id_collided = first_condition_failed


def active_slot_problem(user_id: int, project_id: int) -> str | None:
    """Why the user or the project may not hold one more queued or running job now (the caps of
    `check_can_submit`, without its per-minute window), or None. For jobs nobody submitted by
    hand (pipelines), which wait for a slot instead of being refused."""
    settings = get_settings()
    per_user = settings.jobs_max_active_per_user
    if _count(Job.active_by_user.query(str(user_id), limit=per_user)) >= per_user:
        return f"the project owner already has {per_user} queued or running jobs"
    per_project = settings.jobs_max_active_per_project
    if _count(Job.active_by_project.query(str(project_id), limit=per_project)) >= per_project:
        return f"the project already has {per_project} queued or running jobs"
    return None


def queue_position(job: Job) -> int | None:
    """1 + the number of pending jobs (of anyone) submitted before this one, up to MAX_POSITION;
    None unless the job is pending."""
    if job.queued != QUEUED:
        return None
    ahead = Job.pending_queue.query(QUEUED, Job.created_at < job.created_at,
                                    limit=MAX_POSITION - 1)
    return 1 + _count(ahead)


def reserve_artifact_bytes(project_id: int, size: int) -> bool:
    """Add `size` to the project's artifact storage if it stays within the quota
    (A6HUB_MAX_ARTIFACT_BYTES_PER_PROJECT); False, nothing added, if it would not."""
    quota = get_settings().max_artifact_bytes_per_project
    if size > quota:
        return False
    try:
        Project(project_id).update(
            actions=[Project.artifact_bytes.add(size)],
            condition=Project.id.exists() & (Project.artifact_bytes.does_not_exist()
                                             | (Project.artifact_bytes <= quota - size)))
    except UpdateError as e:
        if condition_failed(e):
            return False
        raise
    return True
