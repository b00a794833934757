"""A fork reads the cache of the project it was forked from (services/pipelines/forks.py).

Jobs are completed as a runner completes them (claim, finish with the key stamped on the
summary: the same completion path, services/job_lifecycle.py), on a private queue nobody polls;
the fork is copied by an in-process runner (tests/fork_support.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api, UserCtx, add_member, make_file
from tests.fork_support import fork
from tests.jobs_support import api_queue, make_queues
from tests.pipelines.test_pipelines import PIPELINE, _p, _pipelines, _project_with_design

VERSIONS = {"iverilog": "fork-cache-test", "vvp": "fork-cache-test", "yosys": "fork-cache-test"}


@pytest.fixture(scope="module")
def queue(emulator: Any) -> Iterator[Any]:
    """A private queue nobody polls: the pipelines' jobs stay pending until the test ends them."""
    from chalicelib.services.pipelines import instant

    instant.publish_toolchain(VERSIONS)
    q = make_queues()
    with api_queue(q.url):
        yield q


def _complete(pid: int, job_id: int, log: bytes) -> str:
    """Complete a pending pipeline job as a runner does (its key stamped, its log stored);
    its key."""
    from chalicelib import storage
    from chalicelib.services import job_lifecycle
    from chalicelib.services.pipelines import cache as keys
    from chalicelib.services.pipelines import instant
    from chalicelib.services.pipelines.runs import _commit_tree

    job = job_lifecycle.load(pid, job_id)
    assert job is not None and job.commit is not None
    reader = instant.TreeReader(*_commit_tree(pid, job.commit))
    versions = {n: VERSIONS[n] for n in keys.tools_of(job.job_type, dict(job.config)) or []}
    key = keys.cache_key(job.job_type, dict(job.config), versions, reader.paths, reader.read)
    assert key is not None
    assert job_lifecycle.claim(job, "fork-cache-test", 60)
    storage.put_bytes(storage.job_log_key(pid, job_id, 1), log, "text/plain")
    assert job_lifecycle.finish(job, "fork-cache-test", job_lifecycle.JobResult(
        status="completed", error_message=None, exit_code=0, duration_s=0.1, inputs=[],
        steps=[], tool_versions=dict(VERSIONS), artifacts=[],
        summary={"ran_in": pid, "cache": {"hit": False, "key": key}},
        log_bytes=len(log), log_truncated=False))
    return key


def _passed_source(api: Api, owner: UserCtx, visibility: str) -> tuple[int, dict[str, str]]:
    """A project whose pipeline passed (both jobs run), and its jobs' keys by name."""
    pid = _project_with_design(api, owner, visibility)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    found: dict[str, str] = {}
    for name in ("sim", "synth"):
        [pipeline] = _pipelines(api, owner, pid)
        entry = next(e for e in pipeline["jobs"] if e["name"] == name)
        found[name] = _complete(pid, entry["job_id"], f"{name} of {pid}\n".encode())
    [pipeline] = _pipelines(api, owner, pid)
    assert pipeline["status"] == "passed", pipeline
    return pid, found


def _fork(api: Api, user: UserCtx, pid: int) -> int:
    reply = fork(api, user, pid, {"name": f"fork of {pid}", "visibility": "private"})
    assert reply.status == 202, reply.body
    fid = int(reply.json["id"])
    assert api.get(_p(fid), token=user.token).json["import_status"] == "completed"
    return fid


def _job(api: Api, user: UserCtx, pid: int, job_id: int) -> dict[str, Any]:
    reply = api.get(f"{_p(pid)}/jobs/{job_id}", token=user.token)
    assert reply.status == 200, reply.body
    return dict(reply.json)


def test_a_fork_of_a_passed_pipeline_gets_every_job_from_the_sources_cache(
        api: Api, owner: UserCtx, stranger: UserCtx, queue: Any) -> None:
    from chalicelib.services.pipelines import forks

    # GIVEN a public project whose pipeline passed
    pid, found = _passed_source(api, owner, "public")
    # WHEN a stranger forks it
    fid = _fork(api, stranger, pid)
    # THEN the fork's pipeline passed at once, every job served from the source's runs
    [pipeline] = _pipelines(api, stranger, fid)
    assert pipeline["status"] == "passed", pipeline
    for entry in pipeline["jobs"]:
        job = _job(api, stranger, fid, entry["job_id"])
        cache = job["summary"]["cache"]
        assert job["status"] == "completed" and cache["hit"] is True
        assert cache["key"] == found[entry["name"]] and cache["project_id"] == pid
        assert cache["stored_as"]["project_id"] == pid
        assert job["summary"]["ran_in"] == pid
        # AND its log (the source's run's own object) is readable by the fork's owner
        logs = api.get(f"{_p(fid)}/jobs/{job['id']}/logs", token=stranger.token)
        assert logs.status == 200 and logs.json["logs"] == f"{entry['name']} of {pid}\n"
    # AND a runner's lookup for the fork finds the source's run too
    source_sim = forks.lookup(pid, found["sim"])
    assert source_sim is not None and forks.lookup(fid, found["sim"]) == source_sim
    # AND once the source is deleted, the hit's log is a clear 404, not a 500
    sim_id = pipeline["jobs"][0]["job_id"]
    assert api.delete(_p(pid), token=owner.token).status in (200, 204)
    gone = api.get(f"{_p(fid)}/jobs/{sim_id}/logs", token=stranger.token)
    assert gone.status == 404 and "deleted" in gone.json["detail"]


def test_a_fork_whose_owner_lost_access_to_the_private_source_runs_its_tools(
        api: Api, owner: UserCtx, stranger: UserCtx, queue: Any) -> None:
    from chalicelib.services.pipelines import forks

    # GIVEN a private project whose pipeline passed, forked by a member
    pid, found = _passed_source(api, owner, "private")
    add_member(api, owner, pid, stranger, "viewer")
    fid = _fork(api, stranger, pid)
    [first] = _pipelines(api, stranger, fid)
    assert first["status"] == "passed"  # a member's fork is served from the source
    # WHEN the member is removed and the fork commits a change the jobs do not read
    assert api.delete(f"{_p(pid)}/members/{stranger.id}", token=owner.token).status in (200, 204)
    make_file(api, stranger, fid, "README.md", "notes\n")
    # THEN the fork's new pipeline runs its tools: its sim is queued, not served
    newest = max(_pipelines(api, stranger, fid), key=lambda p: p["id"])
    sim = _job(api, stranger, fid, newest["jobs"][0]["job_id"])
    assert sim["status"] == "pending" and "cache" not in (sim.get("summary") or {})
    # AND the runner's lookup misses too
    assert forks.lookup(fid, found["sim"]) is None


def test_the_source_never_gets_a_hit_from_a_forks_run(
        api: Api, owner: UserCtx, stranger: UserCtx, queue: Any) -> None:
    from chalicelib.services.pipelines import forks

    # GIVEN a public project whose pipeline has not run, and a fork that ran the same jobs
    pid = _project_with_design(api, owner, "public")
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    fid = _fork(api, stranger, pid)
    [theirs] = _pipelines(api, stranger, fid)
    key = _complete(fid, theirs["jobs"][0]["job_id"], b"the fork's run\n")
    # WHEN the source commits a change its jobs do not read
    make_file(api, owner, pid, "README.md", "notes\n")
    # THEN its sim is queued to run, not served the fork's result
    newest = max(_pipelines(api, owner, pid), key=lambda p: p["id"])
    sim = _job(api, owner, pid, newest["jobs"][0]["job_id"])
    assert sim["status"] == "pending" and "cache" not in (sim.get("summary") or {})
    assert forks.lookup(pid, key) is None
    # AND the fork's own next commit is served from its own run
    make_file(api, stranger, fid, "README.md", "fork notes\n")
    mine = max(_pipelines(api, stranger, fid), key=lambda p: p["id"])
    hit = _job(api, stranger, fid, mine["jobs"][0]["job_id"])
    assert hit["status"] == "completed" and hit["summary"]["cache"]["project_id"] == fid
