"""The long-poll form of GET /projects/{id}/jobs/{job_id}?wait=S: who may wait, bad values, and
that it answers on the first read that sees the status move, backs off while it does not, and
never waits for a job that has ended or already differs from since_status.

The waiting is driven by a fake clock (services/job_wait.wait_for_job takes `sleep` and `clock`)
while every read goes to the emulator's DynamoDB, so no assertion depends on the machine's speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.errors import NotFound
from chalicelib.services import identity, job_wait
from tests.conftest import Api, UserCtx, add_member, make_file, make_project
from tests.jobs_support import Queues, queues_fixture

LINT = {"job_type": "lint", "config": {}}


queues = queues_fixture()


def _pending_job(api: Api, owner: UserCtx, visibility: str = "private") -> tuple[int, int]:
    project = make_project(api, owner, visibility=visibility)
    make_file(api, owner, project["id"])
    job = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token, json_body=LINT)
    assert job.status == 201 and job.json["status"] == "pending", job.body
    return project["id"], job.json["id"]


class FakeTime:
    """A clock that moves only when slept on; `on_sleep(n)` runs before the n-th sleep returns."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a pause of zero would be a busy loop"
        self.sleeps.append(seconds)
        self.now += seconds
        if self._on_sleep:
            self._on_sleep(len(self.sleeps))


def _never_sleep(seconds: float) -> None:
    raise AssertionError(f"waited {seconds} s where the answer was known at once")


def _caller(user: UserCtx | None) -> Any:
    if user is None:
        return None
    return identity.authenticate(f"Bearer {user.token}", required=True)


def test_answers_on_the_first_read_that_sees_the_status_move(api: Api, queues: Queues,
                                                             owner: UserCtx) -> None:
    # GIVEN a pending job, and a clock under which the owner cancels it during the third pause
    project_id, job_id = _pending_job(api, owner)

    def cancel_on_third(n: int) -> None:
        if n == 3:
            reply = api.delete(f"/api/v1/projects/{project_id}/jobs/{job_id}", token=owner.token)
            assert reply.status == 200, reply.body

    fake = FakeTime(cancel_on_third)
    # WHEN a reader long-polls it for 20 s
    job = job_wait.wait_for_job(_caller(owner), project_id, job_id, 20, sleep=fake.sleep,
                                clock=fake.clock)
    # THEN the answer is the cancelled job, given right after the read that followed the change
    assert job.status == "cancelled"
    assert len(fake.sleeps) == 3
    assert fake.now - 1000.0 < 1.0


def test_an_unchanged_job_is_answered_at_the_deadline_after_a_bounded_number_of_reads(
        api: Api, queues: Queues, owner: UserCtx) -> None:
    # GIVEN a pending job nobody runs
    project_id, job_id = _pending_job(api, owner)
    fake = FakeTime()
    # WHEN it is long-polled for the longest wait
    job = job_wait.wait_for_job(_caller(owner), project_id, job_id, job_wait.MAX_WAIT_SECONDS,
                                sleep=fake.sleep, clock=fake.clock)
    # THEN it comes back pending exactly at the deadline, after pauses that grew (a backoff,
    # not a busy loop): at most ~60 reads in 25 s, the late pauses a second apart
    assert job.status == "pending"
    assert fake.now - 1000.0 == pytest.approx(job_wait.MAX_WAIT_SECONDS)
    assert len(fake.sleeps) <= 60, len(fake.sleeps)
    assert max(fake.sleeps) == job_wait.MAX_POLL_SECONDS
    assert fake.sleeps == sorted(fake.sleeps[:-1]) + fake.sleeps[-1:]  # the last pause is cut


def test_a_job_that_ended_or_already_differs_is_answered_without_waiting(
        api: Api, queues: Queues, owner: UserCtx) -> None:
    # GIVEN a pending job and a cancelled one
    pending_project, pending = _pending_job(api, owner)
    ended_project, ended = _pending_job(api, owner)
    assert api.delete(f"/api/v1/projects/{ended_project}/jobs/{ended}", token=owner.token).status == 200
    caller = _caller(owner)
    # WHEN the caller waits on a status the pending one no longer has, and on the ended one
    moved = job_wait.wait_for_job(caller, pending_project, pending, 20, "running",
                                  sleep=_never_sleep)
    done = job_wait.wait_for_job(caller, ended_project, ended, 20, sleep=_never_sleep)
    # THEN both answer at once (an ended job's status never moves again)
    assert (moved.status, done.status) == ("pending", "cancelled")


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
def test_outsiders_are_refused_before_any_wait(api: Api, queues: Queues, owner: UserCtx,
                                               stranger: UserCtx, who: str) -> None:
    # GIVEN a private project's pending job
    project_id, job_id = _pending_job(api, owner)
    caller = _caller(stranger if who == "stranger" else None)
    # WHEN an outsider long-polls it THEN it is 404 at once, as for a plain GET
    with pytest.raises(NotFound):
        job_wait.wait_for_job(caller, project_id, job_id, 20, sleep=_never_sleep)


READ = {("owner", "private"): 200, ("viewer", "private"): 200, ("stranger", "private"): 404,
        ("anonymous", "private"): 404, ("owner", "public"): 200, ("viewer", "public"): 200,
        ("stranger", "public"): 200, ("anonymous", "public"): 200}


@pytest.mark.parametrize(("who", "visibility"), sorted(READ))
def test_the_route_follows_read_access(api: Api, queues: Queues, owner: UserCtx,
                                       viewer: UserCtx, stranger: UserCtx, who: str,
                                       visibility: str) -> None:
    # GIVEN a pending job in a project with a viewer
    project_id, job_id = _pending_job(api, owner, visibility)
    add_member(api, owner, project_id, viewer, "viewer")
    token = {"owner": owner.token, "viewer": viewer.token, "stranger": stranger.token}.get(who)
    # WHEN the caller long-polls it through the route for a short while
    reply = api.get(f"/api/v1/projects/{project_id}/jobs/{job_id}?wait=0.05", token=token)
    # THEN readers get the job (still pending), others the plain GET's refusal with a detail
    assert reply.status == READ[(who, visibility)], reply.body
    if reply.status == 200:
        assert (reply.json["id"], reply.json["status"]) == (job_id, "pending")
    else:
        assert reply.json["detail"]


@pytest.mark.parametrize("query", ["wait=0", "wait=-1", "wait=25.5", "wait=abc", "wait=nan",
                                   "wait=inf", "wait=5&since_status=done",
                                   "since_status=pending"])
def test_bad_wait_values_are_422(api: Api, queues: Queues, owner: UserCtx, query: str) -> None:
    # GIVEN a pending job
    project_id, job_id = _pending_job(api, owner)
    # WHEN it is read with a bad long-poll parameter
    reply = api.get(f"/api/v1/projects/{project_id}/jobs/{job_id}?{query}", token=owner.token)
    # THEN the answer is 422 naming the parameter, and the job is untouched
    assert reply.status == 422, reply.body
    assert ("wait" in reply.json["detail"]) or ("since_status" in reply.json["detail"])
    plain = api.get(f"/api/v1/projects/{project_id}/jobs/{job_id}", token=owner.token)
    assert plain.json["status"] == "pending" and plain.json["attempts"] == 0
