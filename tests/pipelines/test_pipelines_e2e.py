"""End to end: the real `git` client pushes a pipeline file, a `python -m runner` runs it with the
real tools, and git/commits and the badge show the outcome.

The API server and the runner of this module share a private queue, so no other test's jobs
run here and these jobs run nowhere else.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Api, UserCtx, make_project
from tests.git.test_git_http import Git, api_token, commit_all, remote
from tests.jobs_support import Queues, make_queues, wait_for
from tests.pipelines.test_pipelines import COUNTER, PIPELINE
from tests.runner.test_jobs_e2e import RunnerProcess
from tests.stack_support import api_on, push, runner_on, write_counter_project

BROKEN_COUNTER = COUNTER.replace("q + 1;", "q + ;")  # a syntax error
assert BROKEN_COUNTER != COUNTER

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="the git client is not installed"),
]

TERMINAL = {"passed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def queues(emulator: Any) -> Queues:
    return make_queues(max_receives=3, visibility=10)


@pytest.fixture(scope="module")
def server(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m devstack serve` enqueueing on this module's queue."""
    with api_on(queues, tmp_path_factory, "pipeline") as url:
        yield url


@pytest.fixture(scope="module")
def runner(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    with runner_on(queues, tmp_path_factory, "pipeline") as process:
        yield process


def _get(server: str, path: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{server}{path}", headers=headers, timeout=30)


def _head_pipeline(server: str, pid: int, token: str, sha: str) -> dict[str, Any] | None:
    [newest, *_] = _get(server, f"/api/v1/projects/{pid}/git/commits", token).json()
    assert newest["id"] == sha
    pipeline = newest["pipeline"]
    return pipeline if pipeline and pipeline["status"] in TERMINAL else None


def _wait_pipeline(server: str, pid: int, token: str, sha: str,
                   runner: RunnerProcess) -> dict[str, Any]:
    try:
        found: dict[str, Any] = wait_for(lambda: _head_pipeline(server, pid, token, sha),
                                         timeout=180, every=0.5, what=f"the pipeline of {sha}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nrunner output:\n{runner.output()[-4000:]}") from e
    return found



def test_a_pushed_pipeline_runs_and_its_status_shows_on_commits_and_the_badge(
        api: Api, owner: UserCtx, server: str, runner: RunnerProcess, tmp_path: Path) -> None:
    # GIVEN a public project cloned with the real git client
    pid = int(make_project(api, owner, visibility="public")["id"])
    git = Git(tmp_path / "home")
    git.run("clone", "-q", remote(server, str(pid), api_token(api, owner)), "work")
    work = git.home / "work"
    write_counter_project(work, PIPELINE)

    # WHEN the design and its pipeline file are pushed
    sha = push(git, work, "counter with a pipeline")

    # THEN the pipeline runs both jobs, the synthesis after the simulation, and passes
    pipeline = _wait_pipeline(server, pid, owner.token, sha, runner)
    assert pipeline["status"] == "passed", pipeline
    sim, synth = pipeline["jobs"]
    assert (sim["status"], synth["status"]) == ("passed", "passed"), pipeline
    assert synth["summary"]["synthesis"]["flip_flops"] == 4
    jobs = {j["id"]: j for j in _get(server, f"/api/v1/projects/{pid}/jobs", owner.token).json()}
    assert jobs[synth["job_id"]]["started_at"] >= jobs[sim["job_id"]]["completed_at"]
    assert {jobs[sim["job_id"]]["commit"], jobs[synth["job_id"]]["commit"]} == {sha}
    # AND the badge of the public project, read without a token, says passing
    badge = _get(server, f"/api/v1/projects/{pid}/badge.svg?ref=main")
    assert badge.status_code == 200 and "pipeline: passing" in badge.text

    assert not sim["cached"] and not synth["cached"]
    first_sim, first_synth = sim["job_id"], synth["job_id"]

    # WHEN only the README changes
    (work / "README.md").write_text("# counter\n")
    readme = push(git, work, "docs")
    # THEN the new commit's jobs complete from the cache: no tool ran, the source is named
    pipeline = _wait_pipeline(server, pid, owner.token, readme, runner)
    assert pipeline["status"] == "passed", pipeline
    hits = {j["name"]: j for j in pipeline["jobs"]}
    assert hits["sim"]["cached"] and hits["sim"]["cached_from"] == sim["job_id"]
    assert hits["synth"]["cached"] and hits["synth"]["cached_from"] == synth["job_id"]
    assert hits["synth"]["summary"]["synthesis"]["flip_flops"] == 4
    cached_sim = _get(server, f"/api/v1/projects/{pid}/jobs/{hits['sim']['job_id']}",
                      owner.token).json()
    assert cached_sim["status"] == "completed" and cached_sim["steps"]  # the source's steps
    # served when the pipeline started (the runner published its tool versions): no queue
    assert cached_sim["summary"]["cache"]["served"] == "pipeline"
    assert cached_sim["created_at"] == cached_sim["started_at"]
    # its log and artifacts are the cached run's own objects, not copies
    assert cached_sim["summary"]["cache"]["stored_as"] == {
        "project_id": pid, "job_id": sim["job_id"], "attempt": 1}
    log = _get(server, f"/api/v1/projects/{pid}/jobs/{cached_sim['id']}/logs",
               owner.token).json()["logs"]
    source_log = _get(server, f"/api/v1/projects/{pid}/jobs/{sim['job_id']}/logs",
                      owner.token).json()["logs"]
    assert log == source_log  # the cached run's own output
    assert re.search(r"^q=\d+$", log, re.M)  # (counter_tb's line)
    artifacts = {a["name"] for a in _get(server, f"/api/v1/projects/{pid}/jobs/"
                                                 f"{hits['synth']['job_id']}", owner.token
                                         ).json()["artifacts"]}
    assert "stat.json" in artifacts
    stat = _get(server, f"/api/v1/projects/{pid}/jobs/{hits['synth']['job_id']}/artifacts/"
                        "stat.json", owner.token)
    assert stat.status_code == 200  # read from the cached run's keys

    # WHEN a change that breaks the design is pushed
    (work / "rtl" / "counter.v").write_text(BROKEN_COUNTER)
    broken = push(git, work, "break the counter")

    # THEN its pipeline fails at the simulation, the synthesis is not run, the badge says so
    pipeline = _wait_pipeline(server, pid, owner.token, broken, runner)
    sim, synth = pipeline["jobs"]
    assert (pipeline["status"], sim["status"], synth["status"]) == (
        "failed", "failed", "cancelled"), pipeline
    assert synth["job_id"] is None and synth["error"] == "not run: sim did not pass"
    assert "pipeline: failing" in _get(server, f"/api/v1/projects/{pid}/badge.svg").text
    # AND compare names what changed between the commits, with the synthesis figures
    same = _get(server, f"/api/v1/projects/{pid}/pipelines/compare?base={sha}&head={readme}",
                owner.token).json()
    assert [(j["name"], j["changed"]) for j in same["jobs"]] == [("sim", False), ("synth", False)]
    assert same["jobs"][1]["figures"]["flip_flops"] == {"base": 4.0, "head": 4.0, "delta": 0.0}
    worse = _get(server, f"/api/v1/projects/{pid}/pipelines/compare?base={sha}&head={broken}",
                 owner.token).json()
    assert [(j["name"], j["base_status"], j["head_status"], j["changed"])
            for j in worse["jobs"]] == [("sim", "passed", "failed", True),
                                        ("synth", "passed", "cancelled", True)]
    assert worse["jobs"][1]["figures"]["flip_flops"] == {"base": 4.0, "head": None, "delta": None}

    # WHEN the break is reverted, the tree read by the jobs is the first one again
    (work / "rtl" / "counter.v").write_text(COUNTER)
    fixed = push(git, work, "fix the counter")
    pipeline = _wait_pipeline(server, pid, owner.token, fixed, runner)
    # THEN both jobs are cache hits of the first runs
    assert pipeline["status"] == "passed", pipeline
    assert [(j["cached"], j["cached_from"]) for j in pipeline["jobs"]] == [
        (True, first_sim), (True, first_synth)]
    # AND the earlier commit keeps its own status
    commits = {c["id"]: c for c in _get(server, f"/api/v1/projects/{pid}/git/commits",
                                         owner.token).json()}
    assert commits[sha]["pipeline"]["status"] == "passed"


def test_a_push_with_a_bad_pipeline_file_is_refused_with_its_lines(
        api: Api, owner: UserCtx, server: str, tmp_path: Path) -> None:
    pid = int(make_project(api, owner)["id"])
    git = Git(tmp_path / "home")
    git.run("clone", "-q", remote(server, str(pid), api_token(api, owner)), "work")
    work = git.home / "work"
    (work / "top.v").write_text(COUNTER)
    (work / ".a6hub.yml").write_text("jobs:\n  lint:\n    type: lint\n    needs: [synth]\n")
    commit_all(git, work, "a pipeline that needs a job it lacks")
    pushed = git.run("push", "origin", "main", cwd=work, check=False)
    assert pushed.returncode != 0
    assert ("remote: error: refs/heads/main: .a6hub.yml: line 4: jobs.lint.needs: needs "
            "'synth', which is not a job of this file") in pushed.stderr, pushed.stderr
    assert _get(server, f"/api/v1/projects/{pid}/git/commits", owner.token).json() == []
    assert _get(server, f"/api/v1/projects/{pid}/pipelines", owner.token).json() == []
