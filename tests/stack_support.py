"""The API over HTTP and a `python -m runner` sharing a module's private queue, and the real
`git` client pushing to it: the pieces the end-to-end modules (pipelines, webhooks, assignments)
each built for themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.jobs import COUNTER
from bench.jobs import COUNTER_TB as TB
from tests.conftest import serving_api
from tests.git.test_git_http import Git, commit_all
from tests.jobs_support import Queues
from tests.runner.test_jobs_e2e import RunnerProcess


@contextmanager
def api_on(queues: Queues, factory: pytest.TempPathFactory, name: str,
           **env: str) -> Iterator[str]:
    """`python -m devstack serve` enqueueing on `queues`; yields its base URL."""
    log = factory.mktemp(f"{name}-server") / "server.log"
    with serving_api(log, {"A6HUB_JOBS_QUEUE_URL": queues.url, **env}) as url:
        yield url


@contextmanager
def runner_on(queues: Queues, factory: pytest.TempPathFactory, name: str,
              **env: str) -> Iterator[RunnerProcess]:
    """`python -m runner` on `queues`; on leaving, it must stop cleanly (exit status 0)."""
    process = RunnerProcess(queues, factory.mktemp(f"{name}-runner") / "runner.log",
                            A6HUB_JOBS_QUEUE_URL=queues.url, **env)
    yield process
    assert process.stop() == 0, process.output()[-3000:]


def write_counter_project(work: Path, pipeline: str) -> None:
    """The counter (rtl/counter.v), its testbench (tb/tb.v) and `pipeline` as .a6hub.yml."""
    (work / "rtl").mkdir()
    (work / "tb").mkdir()
    (work / "rtl" / "counter.v").write_text(COUNTER)
    (work / "tb" / "tb.v").write_text(TB)
    (work / ".a6hub.yml").write_text(pipeline)


def push(git: Git, work: Path, message: str) -> str:
    """Commit everything in `work`, push main to origin; the new head's sha."""
    commit_all(git, work, message)
    git.run("push", "-q", "origin", "main", cwd=work)
    return git.run("rev-parse", "HEAD", cwd=work).stdout.strip()
