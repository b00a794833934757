"""The jobs routes: who may do what, the record written on submit, send failure, cancel of pending."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from tests.conftest import Api, UserCtx, add_member, make_file, make_project
from tests.jobs_support import Queues, api_queue, make_queues

LINT = {"job_type": "lint", "config": {}}


@pytest.fixture(scope="module")
def queues(emulator: Any) -> Iterator[Queues]:
    q = make_queues()
    with api_queue(q.url):
        yield q


@pytest.fixture(scope="module")
def projects(api: Api, queues: Queues, owner: UserCtx, editor: UserCtx,
             viewer: UserCtx) -> dict[str, dict[str, Any]]:
    """A private and a public project, each with an editor, a viewer, a file and one job."""
    made = {}
    for visibility in ("private", "public"):
        project = make_project(api, owner, visibility=visibility)
        add_member(api, owner, project["id"], editor, "editor")
        add_member(api, owner, project["id"], viewer, "viewer")
        make_file(api, owner, project["id"])
        job = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token, json_body=LINT)
        assert job.status == 201, job.body
        made[visibility] = {**project, "job": job.json}
    return made


def _token(who: str, users: dict[str, UserCtx]) -> str | None:
    return None if who == "anonymous" else users[who].token


@pytest.fixture
def users(owner: UserCtx, editor: UserCtx, viewer: UserCtx, stranger: UserCtx) -> dict[str, UserCtx]:
    return {"owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger}


READ = {  # (who, visibility) -> status for GET list/job/logs
    ("owner", "private"): 200, ("editor", "private"): 200, ("viewer", "private"): 200,
    ("stranger", "private"): 404, ("anonymous", "private"): 404,
    ("owner", "public"): 200, ("editor", "public"): 200, ("viewer", "public"): 200,
    ("stranger", "public"): 200, ("anonymous", "public"): 200,
}
WRITE = {  # (who, visibility) -> status for POST / DELETE
    ("owner", "private"): 201, ("editor", "private"): 201, ("viewer", "private"): 403,
    ("stranger", "private"): 404, ("anonymous", "private"): 401,
    ("owner", "public"): 201, ("editor", "public"): 201, ("viewer", "public"): 403,
    ("stranger", "public"): 403, ("anonymous", "public"): 401,
}


@pytest.mark.parametrize(("who", "visibility"), sorted(READ))
def test_read_routes_follow_project_access(api: Api, projects: dict[str, Any],
                                           users: dict[str, UserCtx], who: str,
                                           visibility: str) -> None:
    # GIVEN a project with one job, and a caller with some relation to it
    project = projects[visibility]
    base = f"/api/v1/projects/{project['id']}/jobs"
    token = _token(who, users)
    # WHEN the caller lists, reads, and reads the logs of the job
    replies = [api.get(base, token=token), api.get(f"{base}/{project['job']['id']}", token=token),
               api.get(f"{base}/{project['job']['id']}/logs", token=token)]
    # THEN each answers as the access matrix says (private projects are 404 to outsiders)
    assert [r.status for r in replies] == [READ[(who, visibility)]] * 3, [r.body for r in replies]
    if READ[(who, visibility)] == 200:
        assert project["job"]["id"] in [j["id"] for j in replies[0].json]
        assert replies[2].json["job_id"] == project["job"]["id"]


@pytest.mark.parametrize(("who", "visibility"), sorted(WRITE))
def test_submit_and_cancel_need_write_access(api: Api, projects: dict[str, Any],
                                             users: dict[str, UserCtx], who: str,
                                             visibility: str) -> None:
    # GIVEN a project and a caller
    project = projects[visibility]
    base = f"/api/v1/projects/{project['id']}/jobs"
    token = _token(who, users)
    # WHEN the caller submits a job
    submitted = api.post(base, token=token, json_body=LINT)
    # THEN only editors and owners may
    assert submitted.status == WRITE[(who, visibility)], submitted.body
    # AND the same holds for cancelling one (the owner's own job when the caller could not submit)
    job_id = submitted.json["id"] if submitted.status == 201 else \
        api.post(base, token=users["owner"].token, json_body=LINT).json["id"]
    cancelled = api.delete(f"{base}/{job_id}", token=token)
    expected = 200 if WRITE[(who, visibility)] == 201 else WRITE[(who, visibility)]
    assert cancelled.status == expected, cancelled.body


def test_submit_records_a_pending_job_and_queues_one_message(api: Api, owner: UserCtx,
                                                             queues: Queues) -> None:
    # GIVEN a project with a file
    project = make_project(api, owner)
    make_file(api, owner, project["id"])
    before = queues.depth()
    # WHEN the owner submits a simulation with a testbench given by module name
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": "simulation", "config": {"testbench": "top"}})
    # THEN the job is pending with its normalised config, and one message waits in the queue
    assert reply.status == 201, reply.body
    job = reply.json
    assert job["status"] == "pending" and job["job_type"] == "simulation"
    assert job["config"]["testbench"] == "top" and job["config"]["simulator"] == "icarus"
    assert job["created_by"] == owner.id and job["attempts"] == 0
    assert queues.depth() == before + 1
    got = api.get(f"/api/v1/projects/{project['id']}/jobs/{job['id']}", token=owner.token)
    assert got.json["status"] == "pending"


@pytest.mark.parametrize(("body", "needle"), [
    ({"job_type": "simulation", "config": {"testbench": "tb.v", "simulator": "modelsim"}},
     "supported simulators"),
    ({"job_type": "bake"}, "job_type"),
    ({"job_type": "lint", "config": {"files": ["../etc/passwd.v"]}}, "files"),
    ({"job_type": "lint", "surprise": 1}, "surprise"),
])
def test_invalid_requests_are_422_and_store_nothing(api: Api, owner: UserCtx, body: dict[str, Any],
                                                     needle: str) -> None:
    # GIVEN a project without jobs
    project = make_project(api, owner)
    # WHEN a bad job request arrives
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token, json_body=body)
    # THEN it is refused with a detail naming the fault, and no job exists
    assert reply.status == 422, reply.body
    assert needle in reply.body.decode()
    assert api.get(f"/api/v1/projects/{project['id']}/jobs", token=owner.token).json == []


class FailingSqs:
    """An SQS client whose sends fail the way an unreachable endpoint does."""

    def send_message(self, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://sqs.invalid")


def test_send_failure_answers_503_and_leaves_no_pending_job(api: Api, owner: UserCtx,
                                                            queues: Queues) -> None:
    from chalicelib import aws

    # GIVEN a queue that cannot be reached
    project = make_project(api, owner)
    aws.set_client("sqs", FailingSqs())
    try:
        # WHEN a job is submitted
        reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                         json_body=LINT)
    finally:
        aws.set_client("sqs", boto3.client("sqs"))
    # THEN the client is told to retry later
    assert reply.status == 503, reply.body
    assert reply.header("Retry-After")
    # AND the job that was written is failed with the reason, not pending
    jobs = api.get(f"/api/v1/projects/{project['id']}/jobs", token=owner.token).json
    assert len(jobs) == 1
    assert jobs[0]["status"] == "failed"
    assert "queue" in jobs[0]["error_message"]


def test_cancel_pending_marks_it_cancelled_and_a_second_cancel_conflicts(
        api: Api, editor: UserCtx, projects: dict[str, Any]) -> None:
    # GIVEN a pending job
    base = f"/api/v1/projects/{projects['private']['id']}/jobs"
    job = api.post(base, token=editor.token, json_body=LINT).json
    # WHEN an editor cancels it
    reply = api.delete(f"{base}/{job['id']}", token=editor.token)
    # THEN it is cancelled at once, with who did it
    assert reply.status == 200, reply.body
    assert reply.json["status"] == "cancelled"
    assert editor.username in reply.json["error_message"]
    assert reply.json["completed_at"]
    # AND cancelling again is a conflict
    assert api.delete(f"{base}/{job['id']}", token=editor.token).status == 409


def test_list_is_newest_first_and_paged(api: Api, owner: UserCtx, queues: Queues) -> None:
    # GIVEN a project with three jobs
    project = make_project(api, owner)
    base = f"/api/v1/projects/{project['id']}/jobs"
    ids = [api.post(base, token=owner.token, json_body=LINT).json["id"] for _ in range(3)]
    # WHEN they are listed two at a time
    first = api.get(f"{base}?limit=2", token=owner.token)
    link = first.header("Link")
    assert link and 'rel="next"' in link
    cursor = link.split("cursor=")[1].split(">")[0].split("&")[0]
    second = api.get(f"{base}?limit=2&cursor={cursor}", token=owner.token)
    # THEN the newest comes first and the pages join up
    assert [j["id"] for j in first.json + second.json] == list(reversed(ids))


def test_unknown_job_and_artifact_are_404(api: Api, owner: UserCtx,
                                          projects: dict[str, Any]) -> None:
    base = f"/api/v1/projects/{projects['private']['id']}/jobs"
    assert api.get(f"{base}/01ARZ3NDEKTSV4RRFFQ69G5FAV", token=owner.token).status == 404
    assert api.get(f"{base}/not-an-id/logs", token=owner.token).status == 404
    job_id = projects["private"]["job"]["id"]
    assert api.get(f"{base}/{job_id}/artifacts/waves.vcd", token=owner.token).status == 404


def test_logs_offset_must_be_a_non_negative_integer(api: Api, owner: UserCtx,
                                                    projects: dict[str, Any]) -> None:
    job = projects["private"]["job"]
    base = f"/api/v1/projects/{projects['private']['id']}/jobs/{job['id']}/logs"
    assert api.get(f"{base}?offset=-1", token=owner.token).status == 422
    assert api.get(f"{base}?offset=abc", token=owner.token).status == 422
    empty = api.get(base, token=owner.token).json
    assert empty == {"job_id": job["id"], "status": "pending", "logs": "", "offset": 0,
                     "next_offset": 0, "size_bytes": 0, "truncated": False, "complete": False}
