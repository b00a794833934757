"""End to end: the real `git` client pushes a pipeline, `python -m runner` runs it with the real
tools and then delivers the webhook, signed, to a real receiver on 127.0.0.1.

The API server and the runner run with A6HUB_IMPORT_ALLOW_PRIVATE=1 (as the import tests do)
so that the receiver on loopback may be used; they share a queue of this module's own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.jobs import COUNTER
from tests.conftest import Api, UserCtx, make_project
from tests.git.test_git_http import Git, api_token, remote
from tests.jobs_support import Queues, make_queues, wait_for
from tests.pipelines.test_pipelines import PIPELINE
from tests.pipelines.test_webhooks import Receiver, receiver, verify
from tests.runner.test_jobs_e2e import RunnerProcess
from tests.stack_support import api_on, push, runner_on, write_counter_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="the git client is not installed"),
]

ENV = {"A6HUB_IMPORT_ALLOW_PRIVATE": "1"}


@pytest.fixture(scope="module")
def queues(emulator: Any) -> Queues:
    return make_queues(max_receives=3, visibility=10)


@pytest.fixture(scope="module")
def server(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_on(queues, tmp_path_factory, "webhook", **ENV) as url:
        yield url


@pytest.fixture(scope="module")
def runner(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    with runner_on(queues, tmp_path_factory, "webhook", **ENV) as process:
        yield process



def _delivery_of(rx: Receiver, sha: str) -> dict[str, Any] | None:
    for got in rx.got:
        body = json.loads(got.body)
        if body.get("pipeline", {}).get("commit") == sha:
            return {"body": body, "received": got}
    return None


def test_a_pushed_pipeline_ends_in_one_signed_delivery_per_commit(
        api: Api, owner: UserCtx, server: str, runner: RunnerProcess, tmp_path: Path) -> None:
    pid = int(make_project(api, owner)["id"])
    auth = {"Authorization": f"Bearer {owner.token}"}
    with receiver("ok") as rx:
        # GIVEN a project with a webhook to a local receiver (created through the server)
        made = requests.post(f"{server}/api/v1/projects/{pid}/webhooks", headers=auth,
                             json={"url": rx.url}, timeout=30)
        assert made.status_code == 201, made.text
        secret, hook_id = made.json()["secret"], made.json()["id"]
        git = Git(tmp_path / "home")
        git.run("clone", "-q", remote(server, str(pid), api_token(api, owner)), "work")
        work = git.home / "work"
        write_counter_project(work, PIPELINE)
        # WHEN the design and its pipeline are pushed, and later a change that breaks it
        good = push(git, work, "counter with a pipeline")
        passed = wait_for(lambda: _delivery_of(rx, good), timeout=240, every=0.5,
                          what=f"the webhook of {good}")
        (work / "rtl" / "counter.v").write_text(COUNTER.replace("q + 1;", "q + ;"))
        bad = push(git, work, "break the counter")
        failed = wait_for(lambda: _delivery_of(rx, bad), timeout=240, every=0.5,
                          what=f"the webhook of {bad}")
    # THEN each pipeline's end was delivered once, signed, with every job's outcome
    assert len(rx.got) == 2, [json.loads(g.body)["pipeline"]["commit"] for g in rx.got]
    for delivered in (passed, failed):
        assert verify(secret, delivered["received"])
        assert delivered["received"].headers["X-A6hub-Event"] == "pipeline"
    assert passed["body"]["pipeline"]["status"] == "passed"
    assert [(j["name"], j["status"]) for j in passed["body"]["pipeline"]["jobs"]] == [
        ("sim", "passed"), ("synth", "passed")]
    assert failed["body"]["pipeline"]["status"] == "failed"
    assert [(j["name"], j["status"]) for j in failed["body"]["pipeline"]["jobs"]] == [
        ("sim", "failed"), ("synth", "cancelled")]
    # AND the deliveries list shows both delivered with the receiver's 200
    rows = requests.get(f"{server}/api/v1/projects/{pid}/webhooks/{hook_id}/deliveries",
                        headers=auth, timeout=30).json()
    assert [(r["status"], r["response_code"], r["attempts"]) for r in rows] == [
        ("delivered", 200, 1)] * 2
