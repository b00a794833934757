"""The jobs routes: the record written on submit, send failure, cancel of pending, paging, bad input.

Who may call each jobs route is in the authorisation matrix (tests/api/test_authz_matrix.py)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from tests.conftest import Api, UserCtx, make_file, make_project, make_shared_project
from tests.jobs_support import Queues, queues_fixture

LINT = {"job_type": "lint", "config": {}}


queues = queues_fixture()


@pytest.fixture(scope="module")
def projects(api: Api, queues: Queues, owner: UserCtx, editor: UserCtx,
             viewer: UserCtx) -> dict[str, dict[str, Any]]:
    """A private and a public project, each with an editor, a viewer, a file and one job."""
    made = {}
    for visibility in ("private", "public"):
        project = make_shared_project(api, owner, visibility, editor, viewer)
        job = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token, json_body=LINT)
        assert job.status == 201, job.body
        made[visibility] = {**project, "job": job.json}
    return made


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
