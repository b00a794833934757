"""The runner's queue side in-process against the emulator's SQS, with a fake executor.

Real tools and real processes (SIGKILL, SIGTERM) are in test_jobs_e2e.py.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import ROOT, Api, UserCtx, make_file, make_project
from tests.jobs_support import FakeExecute, Queues, api_queue, make_queues, queues_fixture, wait_for

LINT = {"job_type": "lint", "config": {}}


def make_worker(queues: Queues, execute: FakeExecute, **overrides: Any) -> Any:
    from runner.worker import RunnerSettings, Worker

    settings = dataclasses.replace(RunnerSettings.from_queue(queues.url), wait_seconds=1,
                                   dlq_check_seconds=0.2, log_flush_seconds=0.2,
                                   cancel_poll_seconds=0.2, **overrides)
    return Worker(settings, execute=execute)


queues = queues_fixture("function", max_receives=2, visibility=2)


@pytest.fixture
def project(api: Api, owner: UserCtx) -> dict[str, Any]:
    made = make_project(api, owner)
    make_file(api, owner, made["id"], "rtl/top.v", "module top; endmodule\n")
    make_file(api, owner, made["id"], "tb/tb.v", "module tb; top t(); endmodule\n")
    return made


def submit(api: Api, user: UserCtx, project: dict[str, Any], body: dict[str, Any] = LINT) -> int:
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=user.token, json_body=body)
    assert reply.status == 201, reply.body
    return int(reply.json["id"])


def get_job(api: Api, user: UserCtx, project: dict[str, Any], job_id: str) -> dict[str, Any]:
    reply = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}", token=user.token)
    assert reply.status == 200, reply.body
    return dict(reply.json)


_serving: list[tuple[Any, threading.Thread]] = []


def in_thread(worker: Any) -> threading.Thread:
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    _serving.append((worker, thread))
    return thread


@pytest.fixture(autouse=True)
def _stop_serving_runners() -> Iterator[None]:
    """Stop every runner a test left serving (a failed assertion skips the test's own stop):
    its job's thread would otherwise block forever, and the interpreter waits for it at exit."""
    yield
    while _serving:
        worker, thread = _serving.pop()
        worker.stop(0)
        thread.join(60)  # a receive or delete in flight can take seconds on a loaded machine
        assert not thread.is_alive(), "a runner did not stop within 60 s"


def running_forever(api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues
                    ) -> tuple[int, Any, threading.Thread, FakeExecute]:
    """A submitted job whose (fake) tool runs until cancelled or its `block` event is set, taken
    by a one-slot runner serving in a thread; returns once the tool started: (job id, the runner,
    its thread, the fake tool)."""
    job_id = submit(api, owner, project)
    execute = FakeExecute(block=threading.Event())
    # One slot: a runner busy with the job asks the queue for nothing more (with a second slot
    # it would receive the test's own duplicates and other runners' messages meanwhile).
    worker = make_worker(queues, execute, concurrency=1)
    thread = in_thread(worker)
    wait_for(execute.started.is_set, what="the job to start")
    return job_id, worker, thread, execute


def test_submitted_job_completes_with_inputs_logs_and_artifacts(
        api: Api, owner: UserCtx, stranger: UserCtx, project: dict[str, Any],
        queues: Queues) -> None:
    # GIVEN a submitted job and a runner
    job_id = submit(api, owner, project)
    execute = FakeExecute()
    worker = make_worker(queues, execute)
    # WHEN the runner takes one message
    assert worker.poll_once() == 1
    # THEN the job completed, recording exactly which files it ran on and how
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "completed", job
    assert job["attempts"] == 1 and job["started_at"] and job["completed_at"]
    assert job["duration_s"] is not None and job["exit_code"] == 0
    files = {f["filepath"]: f for f in api.get(f"/api/v1/projects/{project['id']}/files",
                                                 token=owner.token).json}
    assert [(i["path"], i["sha256"], i["version"]) for i in job["inputs"]] == [
        (p, files[p]["sha256"], files[p]["version"]) for p in ("rtl/top.v", "tb/tb.v")]
    assert job["steps"][0]["argv"] == ["fake-tool", "rtl/top.v", "tb/tb.v"]
    assert job["tool_versions"] == {"fake": "1.0"}
    assert job["artifacts"] == [{"name": "report.json", "kind": "report", "size_bytes":
                                 job["artifacts"][0]["size_bytes"], "mime_type": "application/json"}]
    # AND the message is gone from the queue, and the job's workdir from the disk
    assert queues.depth() == 0
    assert execute.workdirs and not execute.workdirs[0].exists()
    # AND the log holds the tool output and the runner's own lines, readable from an offset
    base = f"/api/v1/projects/{project['id']}/jobs/{job_id}"
    logs = api.get(f"{base}/logs", token=owner.token).json
    assert "$ fake-tool rtl/top.v tb/tb.v" in logs["logs"] and f"[a6hub] job {job_id}" in logs["logs"]
    assert logs["complete"] and logs["next_offset"] == logs["size_bytes"] == job["log_bytes"]
    tail = api.get(f"{base}/logs?offset={logs['next_offset'] - 16}", token=owner.token).json
    assert tail["logs"] == logs["logs"][-16:] and tail["offset"] == logs["next_offset"] - 16
    assert api.get(f"{base}/logs?offset={logs['next_offset']}", token=owner.token).json["logs"] == ""
    # AND the artifact comes back inline (small JSON) or as a presigned URL that works
    inline = api.get(f"{base}/artifacts/report.json", token=owner.token)
    assert inline.status == 200 and inline.json == {"files": ["rtl/top.v", "tb/tb.v"]}
    link = api.get(f"{base}/artifacts/report.json?presign=1", token=owner.token).json
    assert link["expires_in"] > 0
    assert requests.get(link["url"], timeout=10).json() == {"files": ["rtl/top.v", "tb/tb.v"]}
    # AND outsiders of the private project get 404 for the artifact, logs and job alike
    for token in (stranger.token, None):
        for path in (f"{base}/artifacts/report.json", f"{base}/logs", base):
            assert api.get(path, token=token).status == 404


def test_a_duplicated_message_runs_the_job_once(api: Api, owner: UserCtx, project: dict[str, Any],
                                               queues: Queues) -> None:
    # GIVEN a job whose message was delivered twice (at-least-once delivery)
    job_id = submit(api, owner, project)
    sqs = boto3.client("sqs")
    body = sqs.receive_message(QueueUrl=queues.url, VisibilityTimeout=0)["Messages"][0]["Body"]
    sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    execute = FakeExecute()
    worker = make_worker(queues, execute)
    # WHEN the runner handles both messages
    outcomes = [worker.handle(m) for m in _receive_all(queues, 2)]
    # THEN the tools ran once, the second message was dropped, and both are gone
    assert sorted(outcomes) == ["completed", "dropped"]
    assert execute.calls == ["lint"]
    assert get_job(api, owner, project, job_id)["attempts"] == 1
    assert queues.depth() == 0


def _receive_all(queues: Queues, count: int) -> list[Any]:
    from chalicelib import jobqueue

    got: list[jobqueue.Delivery] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += jobqueue.receive(queues.url, 1, max_messages=10)
    assert len(got) == count
    return got


def test_two_runners_share_the_queue_and_a_duplicate_waits_for_the_lease(
        api: Api, owner: UserCtx, project: dict[str, Any], emulator: Any) -> None:
    # GIVEN runner A busy with a job, and a duplicate of its message in the queue (a 6 s
    # visibility and lease: A's heartbeats every 2 s keep both on a slow machine, where the
    # module's 2 s let the original message come back to this test's receive below)
    queues = make_queues(max_receives=2, visibility=6)
    with api_queue(queues.url):
        job_id, a, thread_a, slow = running_forever(api, owner, project, queues)
    job = get_job(api, owner, project, job_id)
    boto3.client("sqs").send_message(
        QueueUrl=queues.url,
        MessageBody=f'{{"v": 1, "project_id": {project["id"]}, "job_id": {job_id}}}')
    other = FakeExecute()
    b = make_worker(queues, other)
    # WHEN runner B receives the duplicate while A holds a live lease
    messages = _receive_all(queues, 1)
    # THEN B leaves it for later instead of running the job a second time
    assert b.handle(messages[0]) == "deferred"
    assert other.calls == [] and job["status"] == "running"
    # AND once A finishes, whichever runner sees the duplicate next drops it unrun
    slow.block.set()
    wait_for(lambda: get_job(api, owner, project, job_id)["status"] == "completed",
             what="runner A to finish")
    thread_b = in_thread(b)
    wait_for(lambda: queues.depth() == 0, timeout=20, what="the duplicate to be dropped")
    for worker, thread in ((a, thread_a), (b, thread_b)):
        worker.stop(0)
        thread.join(10)
    assert other.calls == [] and slow.calls == ["lint"]
    assert get_job(api, owner, project, job_id)["attempts"] == 1


def test_cancel_of_a_running_job_stops_it(api: Api, owner: UserCtx, editor: UserCtx,
                                          project: dict[str, Any], queues: Queues) -> None:
    from tests.conftest import add_member

    add_member(api, owner, project["id"], editor, "editor")
    # GIVEN a job that runs until it is stopped
    job_id, worker, thread, _ = running_forever(api, owner, project, queues)
    # WHEN an editor cancels it
    reply = api.delete(f"/api/v1/projects/{project['id']}/jobs/{job_id}", token=editor.token)
    # THEN the cancel is accepted and the runner stops the job
    assert reply.status == 202 and reply.json["cancel_requested"] is True, reply.body
    job = wait_for(lambda: (j := get_job(api, owner, project, job_id))["status"] != "running" and j,
                   what="the runner to stop the job")
    worker.stop(0)
    thread.join(10)
    assert job["status"] == "cancelled" and job["error_message"] == "cancelled on request"
    assert queues.depth() == 0


def test_a_cancelled_pending_job_is_skipped(api: Api, owner: UserCtx, project: dict[str, Any],
                                            queues: Queues) -> None:
    # GIVEN a job cancelled before any runner saw it
    job_id = submit(api, owner, project)
    assert api.delete(f"/api/v1/projects/{project['id']}/jobs/{job_id}",
                      token=owner.token).status == 200
    execute = FakeExecute()
    # WHEN a runner receives its message
    assert make_worker(queues, execute).poll_once() == 1
    # THEN nothing ran and the job stays cancelled
    assert execute.calls == []
    assert get_job(api, owner, project, job_id)["status"] == "cancelled"
    assert queues.depth() == 0


def _crash_holding(queues: Queues, project: dict[str, Any], job_id: str) -> None:
    """What a runner killed mid-job leaves behind: a running job under a lease nobody renews."""
    from chalicelib.services import job_lifecycle

    sqs = boto3.client("sqs")
    assert sqs.receive_message(QueueUrl=queues.url, WaitTimeSeconds=2).get("Messages")
    job = job_lifecycle.load(project["id"], job_id)
    assert job is not None and job_lifecycle.claim(job, "crashed-runner", lease_seconds=1)


def test_a_job_left_running_by_a_dead_runner_is_taken_over(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    # GIVEN a job whose runner died after claiming it
    job_id = submit(api, owner, project)
    _crash_holding(queues, project, job_id)
    assert get_job(api, owner, project, job_id)["status"] == "running"
    execute = FakeExecute()
    worker = make_worker(queues, execute)
    # WHEN the message becomes visible again and another runner receives it
    wait_for(lambda: worker.poll_once() == 1, timeout=20, what="the message to come back")
    # THEN that runner claims the stale lease and finishes the job
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "completed" and job["attempts"] == 2
    assert execute.calls == ["lint"]


def test_after_max_receives_the_message_is_dead_lettered_and_the_job_fails(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    # GIVEN a job whose message was received max_receives (2) times by runners that died
    job_id = submit(api, owner, project)
    _crash_holding(queues, project, job_id)
    wait_for(lambda: queues.visible() == 1, timeout=queues.visibility + 30, what="the message back")
    _crash_holding(queues, project, job_id)
    wait_for(lambda: queues.visible() == 1, timeout=queues.visibility + 30, what="the message back")
    execute = FakeExecute()
    worker = make_worker(queues, execute)
    # WHEN the next receive happens, SQS (the emulator's redrive) moves it to the DLQ
    sqs = boto3.client("sqs")
    assert sqs.receive_message(QueueUrl=queues.url, WaitTimeSeconds=1).get("Messages") is None
    assert queues.depth(queues.dlq_url) == 1
    # AND the runner's dead-letter check fails the job with the reason
    assert worker.drain_dead_letters() == 1
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "failed"
    assert "dead-letter queue" in job["error_message"] and "2 deliveries" in job["error_message"]
    assert execute.calls == []
    assert queues.depth(queues.dlq_url) == 0


def test_a_dead_letter_whose_job_finished_is_only_removed(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    # GIVEN a completed job and a stray copy of its message in the DLQ
    job_id = submit(api, owner, project)
    worker = make_worker(queues, FakeExecute())
    assert worker.poll_once() == 1
    boto3.client("sqs").send_message(
        QueueUrl=queues.dlq_url,
        MessageBody=f'{{"v": 1, "project_id": {project["id"]}, "job_id": {job_id}}}')
    # WHEN the runner checks the DLQ
    assert worker.drain_dead_letters() == 0
    # THEN the job keeps its result and the stray message is gone
    assert get_job(api, owner, project, job_id)["status"] == "completed"
    assert queues.depth(queues.dlq_url) == 0


def test_stopping_releases_the_running_job_for_another_runner(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    # GIVEN a runner in the middle of a long job
    job_id, first, thread, _ = running_forever(api, owner, project, queues)
    # WHEN the runner is told to stop with no grace left (what SIGTERM becomes after the grace)
    first.stop(0)
    thread.join(15)
    assert not thread.is_alive()
    # THEN the job is pending again and its message visible at once to another runner
    assert get_job(api, owner, project, job_id)["status"] == "pending"
    execute = FakeExecute()
    assert make_worker(queues, execute).poll_once() == 1
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "completed" and execute.calls == ["lint"]


def test_a_malformed_message_is_dropped(queues: Queues) -> None:
    boto3.client("sqs").send_message(QueueUrl=queues.url, MessageBody="not json")
    execute = FakeExecute()
    assert make_worker(queues, execute).poll_once() == 1
    assert execute.calls == [] and queues.depth() == 0


def test_the_log_is_capped_and_says_so(api: Api, owner: UserCtx, project: dict[str, Any],
                                       queues: Queues) -> None:
    from runner.limits import Limits

    # GIVEN a runner whose log cap is small, and a tool that prints a lot
    job_id = submit(api, owner, project)

    def chatty(job_type: str, config: dict[str, Any], workdir: Any, limits: Any, log: Any,
               cancelled: threading.Event) -> Any:
        for _ in range(1000):
            log(b"x" * 1000 + b"\n")
        return FakeExecute()(job_type, config, workdir, limits, log, cancelled)

    worker = make_worker(queues, FakeExecute())
    worker._execute = chatty
    worker.limits = Limits(log_bytes=10_000)
    # WHEN the job runs
    worker.poll_once()
    # THEN the stored log stops at the cap with a marker, and the job and logs say truncated
    job = get_job(api, owner, project, job_id)
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}/logs", token=owner.token).json
    assert job["log_truncated"] and logs["truncated"]
    assert "log truncated" in logs["logs"]
    assert logs["size_bytes"] < 10_000 + 64 * 1024 + 200


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start two processes as another uid")
def test_runner_hides_its_environment_from_its_own_uid(tmp_path: Any) -> None:
    import subprocess
    import sys

    # GIVEN a process holding a secret in its environment that called hide_from_same_uid()
    script = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from runner.__main__ import "
              "hide_from_same_uid; hide_from_same_uid(); print('ready', flush=True); "
              "time.sleep(30)")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    holder = subprocess.Popen([*as_nobody, sys.executable, "-c", script], stdout=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin", "CREDS_PATH": "secret-guid"}, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        # WHEN another process of the same uid (a tool) reads its /proc/<pid>/environ
        probe = subprocess.run([*as_nobody, "cat", f"/proc/{holder.pid}/environ"],
                               capture_output=True, text=True)
    finally:
        holder.kill()
        holder.wait()
    # THEN the kernel refuses, and nothing of the secret comes out
    assert probe.returncode != 0 and "secret-guid" not in probe.stdout
    assert "Permission denied" in probe.stderr


def test_a_runner_without_a_working_sandbox_refuses_to_start(queues: Queues,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.sandbox
    from runner.sandbox import SandboxUnavailable

    # GIVEN a host where bubblewrap cannot run, and no explicit opt-out
    monkeypatch.setattr(runner.sandbox, "sandbox_problem", lambda: "bwrap cannot create namespaces")
    monkeypatch.delenv("A6HUB_RUNNER_UNSANDBOXED", raising=False)
    worker = make_worker(queues, FakeExecute())
    # WHEN it gets ready THEN it refuses, naming the problem
    with pytest.raises(SandboxUnavailable, match="cannot create namespaces"):
        worker.check_ready()
    # AND with the explicit opt-out it starts (and warns)
    monkeypatch.setenv("A6HUB_RUNNER_UNSANDBOXED", "1")
    worker.check_ready()


class FailingS3:
    """An S3 client that cannot be reached (every call fails like a dropped connection)."""

    def __getattr__(self, name: str) -> Any:
        from botocore.exceptions import EndpointConnectionError

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

        return fail


def test_a_job_that_keeps_failing_on_storage_is_retried_then_dead_lettered(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    from chalicelib import aws

    # GIVEN a job, and S3 unreachable from the runner
    job_id = submit(api, owner, project)
    execute = FakeExecute()
    worker = make_worker(queues, execute, release_backoff_seconds=0)
    aws.set_client("s3", FailingS3())
    try:
        # WHEN the runner receives its message max_receives (2) times
        outcomes = []
        for _ in range(queues.max_receives):
            messages = _receive_all(queues, 1)
            outcomes.append(worker.handle(messages[0]))
            assert get_job(api, owner, project, job_id)["status"] == "pending"
    finally:
        aws.set_client("s3", boto3.client("s3", config=aws._S3_CONFIG))
    # THEN each attempt gave the job back instead of failing it on a transient error
    assert outcomes == ["released"] * queues.max_receives
    assert get_job(api, owner, project, job_id)["attempts"] == queues.max_receives
    # AND the next receive sends the message to the DLQ, where the runner fails the job
    assert boto3.client("sqs").receive_message(QueueUrl=queues.url, WaitTimeSeconds=1).get(
        "Messages") is None
    assert worker.drain_dead_letters() == 1
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "failed" and "dead-letter queue" in job["error_message"]
    assert execute.calls == []


def test_a_job_longer_than_the_visibility_timeout_keeps_its_message(
        api: Api, owner: UserCtx, project: dict[str, Any], emulator: Any) -> None:
    # GIVEN a job that runs for several visibility timeouts (4 s each: heartbeats every ~1.3 s
    # leave slack for a slow machine)
    queues = make_queues(max_receives=2, visibility=4)
    with api_queue(queues.url):
        job_id, worker, thread, slow = running_forever(api, owner, project, queues)
    # WHEN another consumer polls the queue meanwhile
    sqs = boto3.client("sqs")
    seen = []
    deadline = time.monotonic() + 2.5 * queues.visibility
    while time.monotonic() < deadline:
        seen += sqs.receive_message(QueueUrl=queues.url, WaitTimeSeconds=1).get("Messages", [])
    slow.block.set()
    wait_for(lambda: get_job(api, owner, project, job_id)["status"] == "completed",
             what="the job to finish")
    worker.stop(0)
    thread.join(10)
    # THEN the heartbeat kept the message invisible the whole time: nobody else received it
    assert seen == []
    assert slow.calls == ["lint"] and queues.depth() == 0


def test_a_runner_whose_job_was_taken_over_writes_nothing_more(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    from chalicelib import storage
    from chalicelib.models.jobs import Job
    from chalicelib.services import job_lifecycle

    # GIVEN runner A running a job
    job_id = submit(api, owner, project)
    slow = FakeExecute(block=threading.Event())
    a = make_worker(queues, slow)
    outcome: list[str] = []
    message = _receive_all(queues, 1)[0]
    thread = threading.Thread(target=lambda: outcome.append(a.handle(message)), daemon=True)
    thread.start()
    wait_for(slow.started.is_set, what="the job to start")
    # WHEN runner B takes the job over (A's lease lapsed) and starts writing its log
    job = job_lifecycle.load(project["id"], job_id)
    assert job is not None
    job.update(actions=[Job.runner_id.set("runner-b")])
    job.update(actions=[Job.attempts.add(1)])  # B's claim
    key = storage.job_log_key(project["id"], job_id, 2)
    storage.put_bytes(key, b"runner B's log\n")
    thread.join(20)
    # THEN A gives the job up: no result, no log or artifact over B's, message left to B
    assert outcome == ["lost"]
    assert job_lifecycle.load(project["id"], job_id).status == "running"  # type: ignore[union-attr]
    assert storage.get_bytes(key) == b"runner B's log\n"
    assert queues.depth() == 1
    # AND readers see the current attempt's log
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}/logs", token=owner.token).json
    assert logs["logs"] == "runner B's log\n"


def test_a_runner_that_takes_over_its_own_lapsed_claim_fences_the_older_attempt(
        api: Api, owner: UserCtx, project: dict[str, Any], emulator: Any) -> None:
    from chalicelib.models.jobs import Job
    from chalicelib.services import job_lifecycle

    # GIVEN a runner running a job in one slot (a 30 s visibility: its first heartbeat is 10 s
    # away, so nothing renews the lease during the test)
    queues = make_queues(max_receives=3, visibility=30)
    with api_queue(queues.url):
        job_id = submit(api, owner, project)
    slow = FakeExecute(block=threading.Event())
    runner = make_worker(queues, slow)
    first: list[str] = []
    message = _receive_all(queues, 1)[0]
    older = threading.Thread(target=lambda: first.append(runner.handle(message)), daemon=True)
    older.start()
    wait_for(slow.started.is_set, what="the job to start")
    # WHEN its lease lapses (a stalled machine) and the job's redelivered message reaches the
    # same runner's other slot, which claims the job again under the same runner id
    job_lifecycle.load(project["id"], job_id).update(  # type: ignore[union-attr]
        actions=[Job.lease_expires_at.set(time.time() - 1)])
    boto3.client("sqs").send_message(
        QueueUrl=queues.url,
        MessageBody=f'{{"v": 1, "project_id": {project["id"]}, "job_id": {job_id}}}')
    second: list[str] = []
    redelivered = _receive_all(queues, 1)[0]
    newer = threading.Thread(target=lambda: second.append(runner.handle(redelivered)),
                             daemon=True)
    newer.start()
    # THEN the older attempt learns it lost the job and stops, while the newer one runs on
    wait_for(lambda: first == ["lost"], timeout=20, what="the older attempt to give up")
    assert second == [] and slow.calls == ["lint", "lint"]
    # AND only the newer attempt's result is recorded
    slow.block.set()
    newer.join(20)
    assert second == ["completed"]
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "completed" and job["attempts"] == 2, job


def test_an_older_claim_of_the_same_runner_can_no_longer_renew_or_finish(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    from chalicelib.models.jobs import Job
    from chalicelib.services import job_lifecycle

    # GIVEN a job claimed by runner r, whose lease lapsed, then claimed again by r
    job_id = submit(api, owner, project)
    older = job_lifecycle.load(project["id"], job_id)
    assert older is not None and job_lifecycle.claim(older, "r", 60)
    older.update(actions=[Job.lease_expires_at.set(time.time() - 1)])
    newer = job_lifecycle.load(project["id"], job_id)
    assert newer is not None and job_lifecycle.claim(newer, "r", 60)
    assert (older.attempts, newer.attempts) == (1, 2)
    result = job_lifecycle.JobResult(
        status="failed", error_message="older", exit_code=1, duration_s=0.1, inputs=[], steps=[],
        tool_versions={}, artifacts=[], summary={}, log_bytes=0, log_truncated=False)
    # WHEN the older claim renews, records log progress and finishes
    # THEN each is refused, and the newer claim's renewal and finish are not
    assert not job_lifecycle.renew_lease(older, "r", 60)
    job_lifecycle.record_log_progress(older, "r", 99)
    assert not job_lifecycle.finish(older, "r", result)
    assert job_lifecycle.renew_lease(newer, "r", 60)
    assert job_lifecycle.finish(newer, "r", dataclasses.replace(result, status="completed",
                                                                error_message=None))
    job = get_job(api, owner, project, job_id)
    assert (job["status"], job["error_message"], job["log_bytes"]) == ("completed", None, 0), job


def test_a_job_runs_the_commit_it_was_submitted_on_not_later_edits(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    import hashlib

    # GIVEN a job submitted on main's head
    job_id = submit(api, owner, project)
    submitted = get_job(api, owner, project, job_id)["commit"]
    files = {f["filepath"]: f for f in api.get(f"/api/v1/projects/{project['id']}/files",
                                                 token=owner.token).json}
    top = files["rtl/top.v"]
    # WHEN, before any runner claims it, a file is edited and another added (new commits)
    got = api.get(f"/api/v1/projects/{project['id']}/files/{top['id']}", token=owner.token)
    edited = api.put(f"/api/v1/projects/{project['id']}/files/{top['id']}", token=owner.token,
                     headers={"If-Match": got.headers["ETag"]},
                     json_body={"content": "module top; wire edited; endmodule\n"})
    assert edited.status == 200, edited.body
    make_file(api, owner, project["id"], "rtl/late.v", "module late; endmodule\n")
    worker = make_worker(queues, FakeExecute())
    assert worker.poll_once() == 1
    # THEN the job ran the submitted commit's tree: the old body, without the later file
    job = get_job(api, owner, project, job_id)
    assert job["status"] == "completed", job
    assert job["commit"] == submitted
    assert [i["path"] for i in job["inputs"]] == ["rtl/top.v", "tb/tb.v"]
    by_path = {i["path"]: i for i in job["inputs"]}
    assert by_path["rtl/top.v"]["sha256"] == hashlib.sha256(b"module top; endmodule\n").hexdigest()
    # AND the edited file's input names no files-table row (the row holds other bytes now),
    # while the unchanged one still names its row and version
    assert by_path["rtl/top.v"]["file_id"] is None and by_path["rtl/top.v"]["blob"]
    assert (by_path["tb/tb.v"]["file_id"], by_path["tb/tb.v"]["version"]) == (
        files["tb/tb.v"]["id"], files["tb/tb.v"]["version"])
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}/logs", token=owner.token).json
    assert f"files from commit {submitted}" in logs["logs"]


def test_a_one_job_runner_exits_after_its_job(api: Api, owner: UserCtx, project: dict[str, Any],
                                              queues: Queues) -> None:
    from runner.worker import Worker

    # GIVEN a runner started with --max-jobs 1 (one job per Fargate task)
    first, second = submit(api, owner, project), submit(api, owner, project)
    fake = make_worker(queues, FakeExecute())
    worker = Worker(fake.settings, execute=FakeExecute(), max_jobs=1)
    thread = in_thread(worker)
    # WHEN it has run one job THEN it stops by itself, leaving the next job to another task
    thread.join(30)
    assert not thread.is_alive()
    statuses = sorted(get_job(api, owner, project, j)["status"] for j in (first, second))
    assert statuses == ["completed", "pending"]


def test_a_stop_is_honoured_while_storage_is_unreachable(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    from chalicelib.models.jobs import Job
    from devstack.emulator import free_port

    # GIVEN a runner in the middle of a job that would never end by itself
    job_id, worker, thread, _ = running_forever(api, owner, project, queues)
    # AND the jobs table unreachable (nothing listens on that port)
    host = getattr(Job.Meta, "host", None)
    Job.Meta.host = f"http://127.0.0.1:{free_port()}"
    Job._connection = None
    try:
        # WHEN it is told to stop with one second of grace
        worker.stop(1)
        # THEN the job is cancelled at the deadline and the runner ends all the same
        thread.join(60)
        assert not thread.is_alive(), "the runner did not honour its stop without storage"
    finally:
        Job.Meta.host = host
        Job._connection = None
    # AND the job is still visible as held by that runner until its lease lapses
    assert get_job(api, owner, project, job_id)["status"] == "running"


def test_a_heartbeat_renews_the_lease_even_when_the_message_is_gone(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    from botocore.exceptions import ClientError

    from chalicelib.services import job_lifecycle
    from runner.worker import Run

    # GIVEN a job this worker claimed, whose queue message went to the DLQ meanwhile (the runner
    # stalled past the visibility timeout on a loaded host): its receipt is no longer valid
    job_id = submit(api, owner, project)
    worker = make_worker(queues, FakeExecute())
    job = job_lifecycle.load(int(project["id"]), job_id)
    assert job is not None and job_lifecycle.claim(job, worker.settings.runner_id, 2)
    claimed_until = float(job.lease_expires_at)
    time.sleep(0.05)
    run = Run(job=job, receipt="not-a-receipt-any-more")
    # WHEN the heartbeat runs / THEN the visibility call fails, but the lease was renewed first
    with pytest.raises(ClientError):
        worker._heartbeat(run)
    fresh = job_lifecycle.load(int(project["id"]), job_id)
    assert fresh is not None and float(fresh.lease_expires_at) > claimed_until
    assert not run.lost
