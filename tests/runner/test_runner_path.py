"""The runner's work around the tools, with a real in-process runner, the emulator and the real
tools: the HDL of a job is parsed once (its cache key and its plan share the project model)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api, UserCtx, make_file, make_project
from tests.jobs_support import api_queue, make_queues

TB = 'module tb; initial begin $display("parsed %0d", 3); $finish; end endmodule\n'


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The files of each project model parsed in this process (the runner's and the key's)."""
    import chalicelib.hdl.project as project
    import runner.tools as tools

    seen: list[str] = []
    original = project.load_project

    def counted(paths: Any, *args: Any, **kwargs: Any) -> Any:
        paths = list(paths)
        seen.append(",".join(sorted(paths)))
        return original(paths, *args, **kwargs)

    monkeypatch.setattr(project, "load_project", counted)
    monkeypatch.setattr(tools, "load_project", counted)
    yield seen


def run_one(api: Api, user: UserCtx, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Submit a job on a private queue and let an in-process runner run it; the job's record."""
    from runner.worker import RunnerSettings, Worker

    queues = make_queues(max_receives=2, visibility=30)
    with api_queue(queues.url):
        reply = api.post(f"/api/v1/projects/{project_id}/jobs", token=user.token, json_body=body)
        assert reply.status == 201, reply.body
        settings = dataclasses.replace(RunnerSettings.from_queue(queues.url), wait_seconds=1,
                                       log_flush_seconds=0.2, cancel_poll_seconds=0.2)
        assert Worker(settings).poll_once(wait_seconds=1) == 1
    job = api.get(f"/api/v1/projects/{project_id}/jobs/{reply.json['id']}", token=user.token)
    return dict(job.json)


@pytest.mark.parametrize("no_cache", [False, True], ids=["cached", "no_cache"])
def test_a_job_parses_its_hdl_once_for_its_key_and_its_plan(
        api: Api, owner: UserCtx, parses: list[str], no_cache: bool) -> None:
    # GIVEN a project with a testbench (the key is computed before the tools, or beside them)
    project = make_project(api, owner, name=f"parse once {no_cache}")
    make_file(api, owner, project["id"], "tb.v", TB)
    config = {"testbench": "tb.v", "defines": {"WIDTH": 4}}
    # WHEN a runner runs a simulation of it
    job = run_one(api, owner, project["id"],
                  {"job_type": "simulation", "config": config, "no_cache": no_cache})
    # THEN it completed with its cache key, and the project was parsed once, not twice
    assert job["status"] == "completed", job
    assert job["summary"]["cache"] == {"hit": False, "key": job["summary"]["cache"]["key"]}
    assert parses == ["tb.v"], parses
    # AND the key is the one a later identical job finds (the shared model keys the same files)
    parses.clear()
    again = run_one(api, owner, project["id"], {"job_type": "simulation", "config": config})
    assert again["summary"]["cache"]["hit"] is True and again["summary"]["cache"]["job_id"] == job["id"]


def test_a_line_logged_after_the_tools_end_is_in_the_stored_log(
        api: Api, owner: UserCtx) -> None:
    from runner.worker import RunnerSettings, Worker
    from tests.jobs_support import FakeArtifact, FakeExecute, FakeOutcome

    class SkippedArtifact(FakeExecute):
        """The fake tool, plus an artifact the upload refuses (its note comes after the tools)."""

        def __call__(self, *args: Any) -> FakeOutcome:
            outcome = super().__call__(*args)
            outcome.artifacts.append(FakeArtifact("../escape", outcome.artifacts[0].path,
                                                  "report", "application/json"))
            return outcome

    # GIVEN a job whose tools end with an artifact the runner will skip
    project = make_project(api, owner, name="late log line")
    make_file(api, owner, project["id"], "top.v", "module top; endmodule\n")
    queues = make_queues(max_receives=2, visibility=30)
    with api_queue(queues.url):
        reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                         json_body={"job_type": "lint", "config": {}})
        assert reply.status == 201, reply.body
        settings = dataclasses.replace(RunnerSettings.from_queue(queues.url), wait_seconds=1,
                                       log_flush_seconds=0.2, cancel_poll_seconds=0.2)
        # WHEN a runner runs it (the log's last PUT starts as soon as the tools end)
        assert Worker(settings, execute=SkippedArtifact()).poll_once(wait_seconds=1) == 1
    base = f"/api/v1/projects/{project['id']}/jobs/{reply.json['id']}"
    job = api.get(base, token=owner.token).json
    logs = api.get(f"{base}/logs", token=owner.token).json
    # THEN the stored log holds the note written after that PUT, and is the whole log
    assert job["status"] == "completed", job
    assert "artifact '../escape' skipped" in logs["logs"], logs["logs"]
    assert logs["complete"] and logs["size_bytes"] == job["log_bytes"]


def test_a_warmed_runner_makes_no_aws_client_for_its_job(
        api: Api, owner: UserCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.session

    from runner import clients

    # GIVEN a runner process whose job tables have no client yet, warmed as `check_ready` does
    project = make_project(api, owner, name="warm clients")
    make_file(api, owner, project["id"], "tb.v", TB)
    for model in clients.MODELS:
        monkeypatch.setattr(model, "_connection", None)
    assert clients.warm() == len(clients.MODELS)
    # THEN those clients come from one botocore session (the service model is parsed once)
    made = [model._get_connection().connection.client for model in clients.MODELS]
    assert len({id(client._loader) for client in made}) == 1
    # AND a second warm-up makes nothing
    assert clients.warm() == 0
    # WHEN the runner runs a job (a cached run, then a hit: every table of a job's path)
    from runner.worker import Worker

    created: list[str] = []
    running: list[bool] = []  # the runner's own part (the test's queues make their own client)
    original, poll_once = botocore.session.Session.create_client, Worker.poll_once

    def counted(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        if running:
            created.append(service)
        return original(self, service, *args, **kwargs)

    def polling(worker: Worker, *args: Any, **kwargs: Any) -> int:
        running.append(True)
        try:
            return poll_once(worker, *args, **kwargs)
        finally:
            running.clear()

    monkeypatch.setattr(botocore.session.Session, "create_client", counted)
    monkeypatch.setattr(Worker, "poll_once", polling)
    config = {"testbench": "tb.v"}
    first = run_one(api, owner, project["id"], {"job_type": "simulation", "config": config})
    hit = run_one(api, owner, project["id"], {"job_type": "simulation", "config": config})
    # THEN both completed and no client was made on the way
    assert first["status"] == "completed" and hit["summary"]["cache"]["hit"] is True, hit
    assert created == [], created
