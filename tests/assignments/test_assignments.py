"""Assignments without a runner: making one, accepting it (a private copy without the hidden
files), and the graded pipeline a copy's commit starts in the assignment's project.

The graded jobs are queued on a private queue nobody polls (tests/assignments/test_leaks.py
runs them with the real runner and tools).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api, UserCtx, make_file, make_project, make_user
from tests.jobs_support import api_queue, make_queues

pytestmark = pytest.mark.api

MARKER = "HIDDEN_MARKER_7f3a9c_only_in_the_hidden_testbench"
COUNTER = """\
module counter(input clk, input rst, output reg [3:0] count);
  always @(posedge clk) count <= rst ? 4'd0 : count + 4'd1;
endmodule
"""
HIDDEN_TB = f"""\
module tb;
  reg clk = 0, rst = 1;
  wire [3:0] count;
  counter dut(.clk(clk), .rst(rst), .count(count));
  always #1 clk = ~clk;
  initial begin
    $display("{MARKER}");
    #4 rst = 0; #20
    if (count !== 4'd10) $fatal(1, "count is %0d, expected 10 ({MARKER})", count);
    $finish;
  end
endmodule
"""
PIPELINE = """\
jobs:
  sim:
    type: simulation
    config: {testbench: hidden/tb.v}
"""
A = "/api/v1/assignments"


def _p(pid: int) -> str:
    return f"/api/v1/projects/{pid}"


@pytest.fixture(scope="module")
def queue(emulator: Any) -> Iterator[Any]:
    q = make_queues()
    with api_queue(q.url):
        yield q


def make_assignment(api: Api, instructor: UserCtx, *, deadline: str | None = None,
                    pipeline: str = PIPELINE, hidden_tb: str = HIDDEN_TB,
                    extra: dict[str, str] | None = None,
                    student_messages: str | None = None) -> dict[str, Any]:
    """An instructor's private project (design skeleton, pipeline, hidden testbench) made an
    assignment with hidden_paths ["hidden/"]."""
    pid = int(make_project(api, instructor)["id"])
    make_file(api, instructor, pid, "rtl/counter.v", COUNTER)
    make_file(api, instructor, pid, "hidden/tb.v", hidden_tb)
    for path, content in (extra or {}).items():
        make_file(api, instructor, pid, path, content)
    make_file(api, instructor, pid, ".a6hub.yml", pipeline)
    body: dict[str, Any] = {"project_id": pid, "title": "Counter", "hidden_paths": ["hidden/"]}
    if deadline:
        body["deadline"] = deadline
    if student_messages:
        body["student_messages"] = student_messages
    reply = api.post(A, token=instructor.token, json_body=body)
    assert reply.status == 201, reply.body
    return dict(reply.json)


def accept(api: Api, student: UserCtx, assignment: dict[str, Any]) -> int:
    reply = api.post(f"{A}/{assignment['id']}/accept", token=student.token,
                     json_body={"code": assignment["invite_code"]})
    assert reply.status == 201, reply.body
    return int(reply.json["copy_project_id"])


def test_a_public_project_or_someone_elses_cannot_be_an_assignment(api: Api) -> None:
    instructor, other = make_user(api), make_user(api)
    public = int(make_project(api, instructor, visibility="public")["id"])
    reply = api.post(A, token=instructor.token, json_body={
        "project_id": public, "title": "x", "hidden_paths": ["hidden/"]})
    assert reply.status == 422 and "private" in reply.json["detail"]
    private = int(make_project(api, instructor)["id"])
    reply = api.post(A, token=other.token, json_body={
        "project_id": private, "title": "x", "hidden_paths": ["hidden/"]})
    assert reply.status == 404  # a private project an outsider cannot see
    for bad in (["../x"], ["/abs"], [], ["a//b"], ["hidden/", 3]):
        reply = api.post(A, token=instructor.token, json_body={
            "project_id": private, "title": "x", "hidden_paths": bad})
        assert reply.status in (400, 422), (bad, reply.body)
    reply = api.post(A, token=instructor.token, json_body={
        "project_id": private, "title": "x", "hidden_paths": ["h/"], "deadline": "tomorrow"})
    assert reply.status in (400, 422)
    reply = api.post(A, token=instructor.token, json_body={
        "project_id": private, "title": "x", "hidden_paths": ["h/"],
        "deadline": "2026-12-01T12:00:00"})
    assert reply.status in (400, 422) and "time zone" in reply.body.decode()
    reply = api.post(A, token=instructor.token, json_body={
        "project_id": private, "title": "x", "hidden_paths": ["h/"], "student_messages": "all"})
    assert reply.status in (400, 422)
    # AND nothing was stored from any refused request: neither project is an assignment
    from chalicelib.models.assignments import Assignment

    assert [list(Assignment.by_project.query(pid)) for pid in (public, private)] == [[], []]


def test_accepting_gives_a_private_copy_without_the_hidden_files(
        api: Api, queue: Any) -> None:
    # GIVEN an assignment with a hidden testbench
    instructor, student = make_user(api), make_user(api)
    assignment = make_assignment(api, instructor)
    # WHEN a student accepts it without the code, then with it
    wrong = api.post(f"{A}/{assignment['id']}/accept", token=student.token,
                     json_body={"code": "nope"})
    assert wrong.status == 404
    copy = accept(api, student, assignment)
    # THEN the copy is the student's, private, and holds everything but hidden/
    project = api.get(_p(copy), token=student.token).json
    assert project["owner_id"] == student.id and project["visibility"] == "private"
    files = {f["filepath"] for f in api.get(f"{_p(copy)}/files", token=student.token).json}
    assert files == {"rtl/counter.v", ".a6hub.yml"}
    [commit] = api.get(f"{_p(copy)}/git/commits", token=student.token).json
    assert commit["parents"] == []  # one commit: no history that ever held the hidden files
    # AND the assignment's project cannot be made public any more
    publish = api.put(_p(assignment["project_id"]), token=instructor.token,
                      json_body={"visibility": "public"})
    assert publish.status == 422 and "hidden tests" in publish.json["detail"]
    # AND a second accept is refused
    again = api.post(f"{A}/{assignment['id']}/accept", token=student.token,
                     json_body={"code": assignment["invite_code"]})
    assert again.status == 409
    # AND the instructor reads the copy as a viewer; the student cannot publish it
    assert api.get(_p(copy), token=instructor.token).status == 200
    [top] = [f for f in api.get(f"{_p(copy)}/files", token=instructor.token).json
             if f["filepath"] == "rtl/counter.v"]
    assert api.put(f"{_p(copy)}/files/{top['id']}", token=instructor.token,
                   json_body={"content": "x"}).status == 403
    publish = api.put(_p(copy), token=student.token, json_body={"visibility": "public"})
    assert publish.status == 403
    # AND the student sees the assignment without where its tests live
    seen = api.get(f"{A}/{assignment['id']}", token=student.token).json
    assert seen["copy_project_id"] == copy
    assert seen["hidden_paths"] is None and seen["project_id"] is None
    assert seen["invite_code"] is None
    assert seen["student_messages"] == "outcome"  # the default: no tool text for students


def test_a_student_cannot_change_who_is_on_their_copy(api: Api, queue: Any) -> None:
    # GIVEN a student's copy, on which the instructor is a viewer
    instructor, student, friend = make_user(api), make_user(api), make_user(api)
    copy = accept(api, student, make_assignment(api, instructor))
    members = f"{_p(copy)}/members"
    # WHEN the student drops the instructor, changes their role, or adds a friend to push
    dropped = api.delete(f"{members}/{instructor.id}", token=student.token)
    changed = api.put(f"{members}/{instructor.id}", token=student.token,
                      json_body={"role": "editor"})
    added = api.post(members, token=student.token,
                     json_body={"username": friend.username, "role": "editor"})
    # THEN each is refused and the members are still the student and the instructor (viewer)
    assert [r.status for r in (dropped, changed, added)] == [403, 403, 403], \
        [r.body for r in (dropped, changed, added)]
    roles = {m["user_id"]: m["role"] for m in api.get(members, token=student.token).json}
    assert roles == {student.id: "owner", instructor.id: "viewer"}
    # AND the instructor may still leave on their own
    assert api.delete(f"{members}/{instructor.id}", token=instructor.token).status == 204


def test_a_copy_commit_starts_the_assignments_pipeline_in_the_assignments_project(
        api: Api, queue: Any) -> None:
    # GIVEN a student's copy
    instructor, student = make_user(api), make_user(api)
    assignment = make_assignment(api, instructor, deadline="2020-01-01T00:00:00Z")
    apid = assignment["project_id"]
    copy = accept(api, student, assignment)
    # WHEN the student edits their pipeline file away and commits a change
    [pfile] = [f for f in api.get(f"{_p(copy)}/files", token=student.token).json
               if f["filepath"] == ".a6hub.yml"]
    assert api.delete(f"{_p(copy)}/files/{pfile['id']}", token=student.token).status == 204
    head = api.get(f"{_p(copy)}/git/commits/HEAD", token=student.token).json["id"]
    # THEN the instructor's grades name that commit, late (the deadline passed), graded by the
    # assignment's pipeline (sim), whose job lives in the assignment's project
    [row] = api.get(f"{A}/{assignment['id']}/grades", token=instructor.token).json
    assert (row["student_id"], row["commit"], row["late"]) == (student.id, head, True)
    assert set(row["jobs"]) == {"sim"}
    pipelines = api.get(f"{_p(apid)}/pipelines", token=instructor.token).json
    graded = next(p for p in pipelines if p["id"] == row["pipeline_id"])
    assert graded["commit"] == head and graded["ref"] == f"refs/grading/{copy}"
    job_id = graded["jobs"][0]["job_id"]
    job = api.get(f"{_p(apid)}/jobs/{job_id}", token=instructor.token).json
    assert job["commit"] == head and job["config"]["testbench"] == "hidden/tb.v"
    # AND the student cannot read that job, and main's views of the assignment skip it
    assert api.get(f"{_p(apid)}/jobs/{job_id}", token=student.token).status == 404
    main_only = api.get(f"{_p(apid)}/pipelines?ref=main", token=instructor.token).json
    assert all(p["ref"] == "refs/heads/main" for p in main_only)
    # AND the student's results list their commits (newest first), late, without job ids
    results = api.get(f"{A}/{assignment['id']}/results", token=student.token).json
    assert [r["commit"] for r in results][0] == head and len(results) == 2
    assert all(r["late"] for r in results)
    assert "job_id" not in str(results)


def test_who_may_do_what_on_the_assignment_routes(api: Api, queue: Any) -> None:
    # GIVEN an assignment, a student and another student who accepted it, and a stranger
    instructor, student, other, stranger = (make_user(api) for _ in range(4))
    assignment = make_assignment(api, instructor)
    aid, code = assignment["id"], assignment["invite_code"]
    accept(api, student, assignment)
    accept(api, other, assignment)
    tokens = {"instructor": instructor.token, "student": student.token,
              "other student": other.token, "stranger": stranger.token, "anonymous": None}
    expected = {
        # (method, path, body): status per caller
        ("GET", f"{A}/{aid}", None): {"instructor": 200, "student": 200,
                                      "other student": 200, "stranger": 404, "anonymous": 401},
        ("GET", f"{A}/{aid}/grades", None): {"instructor": 200, "student": 404,
                                             "other student": 404, "stranger": 404,
                                             "anonymous": 401},
        ("GET", f"{A}/{aid}/results", None): {"instructor": 404, "student": 200,
                                              "other student": 200, "stranger": 404,
                                              "anonymous": 401},
        ("POST", f"{A}/{aid}/accept", "code"): {"instructor": 422, "student": 409,
                                                "other student": 409, "stranger": 201,
                                                "anonymous": 401},
        ("POST", A, "create"): {"instructor": 201, "student": 404,
                                "other student": 404, "stranger": 404, "anonymous": 401},
    }
    for (method, path, body), statuses in expected.items():
        for who, status in statuses.items():
            payload: Any = None
            if body == "code":
                payload = {"code": code}
            elif body == "create":  # the instructor's assignment project, once more
                payload = {"project_id": assignment["project_id"], "title": "again",
                           "hidden_paths": ["hidden/"]}
            reply = api.request(method, path, token=tokens[who], json_body=payload)
            assert reply.status == status, (method, path, who, reply.body)
    # THEN each student's results are their own: the other student's copy is not in them
    mine = api.get(f"{A}/{aid}/results", token=student.token).json
    theirs = api.get(f"{A}/{aid}/results", token=other.token).json
    assert {r["id"] for r in mine}.isdisjoint({r["id"] for r in theirs})
    grades = api.get(f"{A}/{aid}/grades", token=instructor.token).json
    assert {g["student_id"] for g in grades} == {student.id, other.id, stranger.id}
