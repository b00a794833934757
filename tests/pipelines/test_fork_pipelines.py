"""A fork's main is a new commit on main: the fork job starts the pipeline of the fork's head.

The fork is copied by an in-process runner (tests/fork_support.py) on a private queue nobody
else polls; the fork's pipeline jobs are queued there and stay pending.
"""

from __future__ import annotations

from typing import Any

from bench.jobs import COUNTER
from bench.jobs import COUNTER_TB as TB
from tests.conftest import Api, UserCtx, make_file, make_project
from tests.fork_support import fork
from tests.pipelines.test_pipelines import PIPELINE


def _p(pid: int) -> str:
    return f"/api/v1/projects/{pid}"


def _pipelines(api: Api, user: UserCtx, pid: int) -> list[dict[str, Any]]:
    reply = api.get(f"{_p(pid)}/pipelines", token=user.token)
    assert reply.status == 200, reply.body
    return list(reply.json)


def test_a_fork_starts_the_pipeline_of_its_head_as_the_forks_owner(
        api: Api, owner: UserCtx, stranger: UserCtx) -> None:
    # GIVEN a public project whose main holds a design and a pipeline file
    pid = int(make_project(api, owner, visibility="public")["id"])
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    make_file(api, owner, pid, "tb/tb.v", TB)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    head = api.get(f"{_p(pid)}/git/commits/HEAD", token=owner.token).json["id"]
    # WHEN someone else forks it and a runner copies the history
    reply = fork(api, stranger, pid, {"name": "counter fork"})
    assert reply.status == 202, reply.body
    fid = int(reply.json["id"])
    forked = api.get(_p(fid), token=stranger.token).json
    assert forked["import_status"] == "completed", forked
    # THEN the fork's head (the source's head) has a pipeline of its own, in the fork
    [pipeline] = _pipelines(api, stranger, fid)
    assert pipeline["commit"] == head
    sim, synth = pipeline["jobs"]
    assert sim["job_id"] is not None and synth["job_id"] is None
    # AND its first job belongs to the fork, pinned to that commit, run as the fork's owner
    job = api.get(f"{_p(fid)}/jobs/{sim['job_id']}", token=stranger.token).json
    assert job["commit"] == head and job["commit_pinned"] is True
    assert job["created_by"] == stranger.id
    # AND git/commits of the fork shows it
    fork_head = api.get(f"{_p(fid)}/git/commits/HEAD", token=stranger.token).json
    assert fork_head["pipeline"]["id"] == pipeline["id"]


def test_a_fork_without_a_pipeline_file_starts_nothing(
        api: Api, owner: UserCtx, stranger: UserCtx) -> None:
    pid = int(make_project(api, owner, visibility="public")["id"])
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    reply = fork(api, stranger, pid, {"name": "plain fork"})
    assert reply.status == 202, reply.body
    fid = int(reply.json["id"])
    assert api.get(_p(fid), token=stranger.token).json["import_status"] == "completed"
    assert _pipelines(api, stranger, fid) == []
