"""Helpers for the job tests: a private queue pair per test, a fake executor, polling."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.environment import settings_env
from runner.jobdirs import JobDirs


@dataclass
class Queues:
    url: str
    dlq_url: str
    max_receives: int
    visibility: int

    def sqs(self) -> Any:
        return boto3.client("sqs")

    def depth(self, url: str | None = None) -> int:
        attrs = self.sqs().get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])

    def visible(self, url: str | None = None) -> int:
        """Messages a receive would get now (not held by a receiver's visibility timeout)."""
        attrs = self.sqs().get_queue_attributes(QueueUrl=url or self.url,
                                                AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def make_queues(max_receives: int = 3, visibility: int = 30) -> Queues:
    """A jobs queue and its DLQ shaped like infra/resources.yaml, with test-sized timeouts."""
    sqs = boto3.client("sqs")
    name = f"a6hub-test-jobs-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": max_receives}),
    })["QueueUrl"]
    return Queues(url=url, dlq_url=dlq_url, max_receives=max_receives, visibility=visibility)


def api_queue(url: str) -> AbstractContextManager[None]:
    """Point the in-process API's settings at `url` for the duration."""
    return settings_env(A6HUB_JOBS_QUEUE_URL=url)


def queues_fixture(scope: str = "module", **shape: int) -> Any:
    """A fixture `queues`: a private queue pair (`make_queues(**shape)`) the in-process API sends
    jobs to while it lasts (`api_queue`), made once per `scope`. In a test module:
    `queues = queues_fixture(max_receives=3, visibility=5)`."""

    @pytest.fixture(scope=scope, name="queues")
    def queues(emulator: Any) -> Iterator[Queues]:
        q = make_queues(**shape)
        with api_queue(q.url):
            yield q

    return queues


@contextmanager
def sandboxed_queues(label: str) -> Iterator[Queues]:
    """A private queue pair the in-process API sends jobs to, and a stage dir of our own for an
    in-process runner's sandbox (A6HUB_RUNNER_SANDBOX_DIR; the shared one's stale stages are other
    test runs' business). Not under pytest's 0700 tmp dir: the sandbox's uid must traverse it."""
    stages = Path(tempfile.gettempdir()) / f"a6hub-sandbox-{label}-{os.getpid()}"
    previous = os.environ.get("A6HUB_RUNNER_SANDBOX_DIR")
    os.environ["A6HUB_RUNNER_SANDBOX_DIR"] = str(stages)
    q = make_queues(max_receives=3, visibility=60)
    try:
        with api_queue(q.url):
            yield q
    finally:
        if previous is None:
            os.environ.pop("A6HUB_RUNNER_SANDBOX_DIR", None)
        else:
            os.environ["A6HUB_RUNNER_SANDBOX_DIR"] = previous
        shutil.rmtree(stages, ignore_errors=True)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@dataclass
class FakeStep:
    name: str
    argv: list[str]
    exit_code: int | None
    duration_s: float
    limit: str | None = None


@dataclass
class FakeArtifact:
    name: str
    path: Path
    kind: str
    mime: str


@dataclass
class FakeOutcome:
    status: str
    error_message: str | None
    steps: list[FakeStep]
    artifacts: list[FakeArtifact]
    tool_versions: dict[str, str]
    summary: dict[str, Any]


@dataclass
class FakeExecute:
    """Stands in for runner.execute.execute_job in queue-side unit tests (never in e2e ones).

    Lists src/, writes an artifact, and when `block` is set waits until cancelled (or released).
    """

    block: threading.Event | None = None
    calls: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    workdirs: list[Path] = field(default_factory=list)

    def __call__(self, job_type: str, config: dict[str, Any], dirs: JobDirs, limits: Any,
                 log: Callable[[bytes], None], cancelled: threading.Event) -> FakeOutcome:
        self.calls.append(job_type)
        self.workdirs.append(dirs.stage)
        self.started.set()
        files = sorted(str(p.relative_to(dirs.src)) for p in dirs.src.rglob("*") if p.is_file())
        log(b"$ fake-tool " + " ".join(files).encode() + b"\n")
        while self.block is not None and not self.block.is_set():
            if cancelled.wait(0.05):
                return FakeOutcome("cancelled", None, [FakeStep("fake", ["fake-tool"], None, 0.1)],
                                   [], {"fake": "1.0"}, {})
        out = dirs.out
        (out / "report.json").write_text(json.dumps({"files": files}))
        log(b"fake output line\n")
        return FakeOutcome("completed", None, [FakeStep("fake", ["fake-tool", *files], 0, 0.01)],
                           [FakeArtifact("report.json", out / "report.json", "report",
                                         "application/json")],
                           {"fake": "1.0"}, {"files": len(files)})


def stage_of(job_dir: Path) -> JobDirs:
    """A job stage holding a copy of the project a test built by hand in `job_dir/src` (links
    kept), its artifacts going to `job_dir/out`: how runner-tier tests hand a project to the
    sandbox (the runner writes a commit's files into the stage itself). The caller removes it."""
    dirs = JobDirs.create(out=job_dir / "out")
    if (job_dir / "src").is_dir():
        shutil.copytree(job_dir / "src", dirs.src, symlinks=True, dirs_exist_ok=True)
    for parent, folders, files in os.walk(dirs.src):
        for name in folders:
            if not os.path.islink(os.path.join(parent, name)):
                os.chmod(os.path.join(parent, name), 0o755)  # noqa: S103 - as the runner writes
        for name in files:
            if not os.path.islink(os.path.join(parent, name)):
                os.chmod(os.path.join(parent, name), 0o644)
    return dirs


@contextmanager
def staged(job_dir: Path) -> Iterator[JobDirs]:
    """`stage_of(job_dir)`, removed afterwards (the artifacts stay in `job_dir/out`)."""
    dirs = stage_of(job_dir)
    try:
        yield dirs
    finally:
        dirs.remove_stage()
