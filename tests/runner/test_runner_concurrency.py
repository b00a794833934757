"""One runner, several jobs at once (A6HUB_RUNNER_CONCURRENCY): each job keeps its own claim,
lease, cancel and release; and each job records the AWS calls it cost.

In-process against the emulator's SQS with a fake executor, as test_jobs_runner.py; the same
with real tools and a real SIGTERM is in test_jobs_e2e.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Api, UserCtx
from tests.jobs_support import FakeExecute, Queues, wait_for
from tests.runner.test_jobs_runner import get_job, in_thread, make_worker, project, queues, submit

__all__ = ["project", "queues"]  # fixtures shared with test_jobs_runner.py


def statuses(api: Api, owner: UserCtx, project: dict[str, Any], ids: list[int]) -> list[str]:
    return [get_job(api, owner, project, str(i))["status"] for i in ids]


@dataclass
class TwoJobs:
    ids: list[int]
    gate: threading.Event  # set: the blocked tools finish
    execute: FakeExecute
    worker: Any
    thread: threading.Thread


@contextmanager
def two_jobs_in_a_runner(api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues,
                         concurrency: int) -> Iterator[TwoJobs]:
    """Two queued lint jobs whose tools block until `gate` is set, and a runner with
    `concurrency` slots serving in a thread; on leaving, the runner is stopped with no grace and
    joined (15 s)."""
    ids = [submit(api, owner, project) for _ in range(2)]
    gate = threading.Event()
    execute = FakeExecute(block=gate)
    worker = make_worker(queues, execute, concurrency=concurrency)
    thread = in_thread(worker)
    try:
        yield TwoJobs(ids, gate, execute, worker, thread)
    finally:
        worker.stop(0)
        thread.join(15)


def both_running(api: Api, owner: UserCtx, project: dict[str, Any], ids: list[int],
                 execute: FakeExecute) -> None:
    """Wait until both jobs are `running` on their records at the same time, their tools started."""
    wait_for(lambda: len(execute.calls) == 2, what="both jobs' tools to start")
    wait_for(lambda: statuses(api, owner, project, ids) == ["running", "running"],
             what="both records running at once")


def test_two_slots_run_two_jobs_at_once(api: Api, owner: UserCtx, project: dict[str, Any],
                                        queues: Queues) -> None:
    # GIVEN two queued jobs whose tools run until told to finish, and one runner with 2 slots
    with two_jobs_in_a_runner(api, owner, project, queues, concurrency=2) as run:
        # WHEN it polls THEN both run at the same time, under one runner id
        both_running(api, owner, project, run.ids, run.execute)
        from chalicelib.services import job_lifecycle

        records = [job_lifecycle.load(int(project["id"]), i) for i in run.ids]
        assert {r.runner_id for r in records if r is not None} == {run.worker.settings.runner_id}
        # AND once the tools finish, both complete once each and the queue is empty
        run.gate.set()
        wait_for(lambda: statuses(api, owner, project, run.ids) == ["completed", "completed"],
                 what="both jobs to complete")
    assert not run.thread.is_alive()
    assert [get_job(api, owner, project, str(i))["attempts"] for i in run.ids] == [1, 1]
    wait_for(lambda: queues.depth() == 0, what="the queue to empty")


def test_one_slot_runs_one_job_at_a_time(api: Api, owner: UserCtx, project: dict[str, Any],
                                         queues: Queues) -> None:
    # GIVEN two queued jobs and a runner with 1 slot whose first job blocks
    with two_jobs_in_a_runner(api, owner, project, queues, concurrency=1) as run:
        wait_for(lambda: len(run.execute.calls) == 1, what="the first job to start")
        # THEN the second message stays in the queue, visible to other runners
        wait_for(lambda: queues.visible() == 1, what="the second message to stay visible")
        assert sorted(statuses(api, owner, project, run.ids)) == ["pending", "running"]
        run.gate.set()
        wait_for(lambda: statuses(api, owner, project, run.ids) == ["completed", "completed"],
                 what="both jobs to complete, one after the other")
    assert run.execute.calls == ["lint", "lint"]


def test_stopping_releases_every_running_job(api: Api, owner: UserCtx, project: dict[str, Any],
                                             queues: Queues) -> None:
    # GIVEN a runner with 2 slots running two long jobs
    with two_jobs_in_a_runner(api, owner, project, queues, concurrency=2) as run:
        both_running(api, owner, project, run.ids, run.execute)
        # WHEN it is told to stop with no grace (what SIGTERM becomes after the grace)
        run.worker.stop(0)
        run.thread.join(15)
        # THEN it returns, both jobs are pending again and both messages are visible at once
        assert not run.thread.is_alive()
    ids = run.ids
    assert statuses(api, owner, project, ids) == ["pending", "pending"]
    assert queues.visible() == 2
    # AND another runner runs both to completion
    after = FakeExecute()
    other = make_worker(queues, after, concurrency=2)
    assert other.poll_once() + other.poll_once() == 2
    assert statuses(api, owner, project, ids) == ["completed", "completed"]
    assert [get_job(api, owner, project, str(i))["attempts"] for i in ids] == [2, 2]
    assert queues.depth() == 0


def test_cancelling_one_job_leaves_the_other_running(api: Api, owner: UserCtx,
                                                     project: dict[str, Any],
                                                     queues: Queues) -> None:
    # GIVEN two jobs running side by side in one runner
    with two_jobs_in_a_runner(api, owner, project, queues, concurrency=2) as run:
        ids = run.ids
        both_running(api, owner, project, ids, run.execute)
        # WHEN the first is cancelled
        reply = api.delete(f"/api/v1/projects/{project['id']}/jobs/{ids[0]}", token=owner.token)
        assert reply.status == 202, reply.body
        # THEN it is cancelled and the other is still running
        wait_for(lambda: statuses(api, owner, project, ids)[0] == "cancelled",
                 what="the cancelled job to stop")
        assert statuses(api, owner, project, ids)[1] == "running"
        # AND the other then finishes normally
        run.gate.set()
        wait_for(lambda: statuses(api, owner, project, ids)[1] == "completed",
                 what="the other job to complete")
    assert get_job(api, owner, project, str(ids[0]))["error_message"] == "cancelled on request"
    wait_for(lambda: queues.depth() == 0, what="the queue to empty")


def test_a_job_records_the_aws_calls_it_cost(api: Api, owner: UserCtx, project: dict[str, Any],
                                             queues: Queues) -> None:
    # GIVEN a job of a project with two files in one folder each
    job_id = submit(api, owner, project)
    # WHEN a runner runs it
    assert make_worker(queues, FakeExecute()).poll_once() == 1
    runner = get_job(api, owner, project, str(job_id))["summary"]["runner"]
    by_op = runner["aws_calls_by_op"]
    # THEN every call is counted once under its operation: the claim and the finish, one Query
    # of the files table, the commit's objects (commit, root tree, 2 folders, 2 blobs), at least
    # the final log PUT and one artifact, and the message's delete
    assert runner["aws_calls"] == sum(by_op.values())
    assert by_op["UpdateItem"] >= 2 and by_op["Query"] == 1 and by_op["DeleteMessage"] == 1
    assert by_op["GetObject"] == 6
    assert by_op["PutObject"] >= 2
    assert "ReceiveMessage" not in by_op  # shared by a batch of messages: counted nowhere


def test_concurrency_defaults_to_the_cores_and_refuses_a_shared_uid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from runner.settings import RunnerConfigError, runner_env

    monkeypatch.delenv("A6HUB_RUNNER_CONCURRENCY", raising=False)
    monkeypatch.delenv("A6HUB_RUNNER_SANDBOX_UID", raising=False)
    assert runner_env().jobs_at_once == len(os.sched_getaffinity(0))
    monkeypatch.setenv("A6HUB_RUNNER_CONCURRENCY", "3")
    assert runner_env().jobs_at_once == 3
    # a pinned sandbox uid: jobs would share it (and reap each other's processes)
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_UID", "200001")
    with pytest.raises(RunnerConfigError, match="A6HUB_RUNNER_SANDBOX_UID"):
        runner_env()
    monkeypatch.delenv("A6HUB_RUNNER_CONCURRENCY")
    assert runner_env().jobs_at_once == 1


def test_a_commit_run_again_reads_none_of_its_git_objects(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues) -> None:
    # GIVEN two jobs on the same commit
    ids = [submit(api, owner, project) for _ in range(2)]
    worker = make_worker(queues, FakeExecute())
    # WHEN one runner runs both
    assert worker.poll_once() + worker.poll_once() == 2
    first, second = (get_job(api, owner, project, str(i)) for i in ids)
    # THEN the first reads the commit's 6 objects from S3 and the second none (cached by sha)
    assert first["summary"]["runner"]["aws_calls_by_op"]["GetObject"] == 6
    assert "GetObject" not in second["summary"]["runner"]["aws_calls_by_op"]
    # AND both ran the same files
    assert [i["sha256"] for i in first["inputs"]] == [i["sha256"] for i in second["inputs"]]
    assert second["status"] == "completed"


def test_a_serving_runner_deletes_ended_jobs_messages_in_batches(
        api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from runner import deletes

    sent: list[int] = []
    real = deletes.delete_batch

    def recording(url: str, receipts: list[str]) -> list[str]:
        sent.append(len(receipts))
        return real(url, receipts)

    monkeypatch.setattr(deletes, "delete_batch", recording)
    # GIVEN four queued jobs and a runner with two slots
    ids = [submit(api, owner, project) for _ in range(4)]
    worker = make_worker(queues, FakeExecute(), concurrency=2)
    thread = in_thread(worker)
    try:
        # WHEN it runs them THEN each completes once
        wait_for(lambda: statuses(api, owner, project, ids) == ["completed"] * 4,
                 what="the four jobs to complete")
    finally:
        worker.stop(0)
        thread.join(15)
    assert not thread.is_alive()
    jobs = [get_job(api, owner, project, str(i)) for i in ids]
    assert [j["attempts"] for j in jobs] == [1, 1, 1, 1]
    # AND their messages went in DeleteMessageBatch calls (none left once the runner stopped),
    # each job counting its share as one call
    assert sum(sent) == 4 and all(1 <= n <= deletes.BATCH_LIMIT for n in sent)
    assert queues.depth() == 0
    for job in jobs:
        by_op = job["summary"]["runner"]["aws_calls_by_op"]
        assert by_op["DeleteMessageBatch"] == 1 and "DeleteMessage" not in by_op


def test_the_batch_deleter_sends_ten_at_a_time_and_reports_a_bad_receipt(queues: Queues) -> None:
    from runner.deletes import BatchDeleter, delete_batch

    # GIVEN twelve delivered messages
    sqs = queues.sqs()
    for i in range(12):
        sqs.send_message(QueueUrl=queues.url, MessageBody=f"m{i}")
    receipts: list[str] = []
    while len(receipts) < 12:
        got = sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        receipts += [m["ReceiptHandle"] for m in got.get("Messages", [])]
    sent: list[int] = []
    failed: list[str] = []

    def send(url: str, batch: list[str]) -> list[str]:
        sent.append(len(batch))
        failed.extend(delete_batch(url, batch))
        return failed

    # WHEN they are handed in at once with one bad receipt, with a long linger, then flushed
    deleter = BatchDeleter(queues.url, linger_seconds=60, send=send)
    for receipt in [*receipts, "not-a-receipt"]:
        deleter.delete(receipt)
    started = time.monotonic()
    deleter.close()
    # THEN a full batch went at once, the rest on the flush without waiting out the linger;
    # the bad one is reported, the rest are gone
    assert sent == [10, 3]
    assert time.monotonic() - started < 30  # the linger is 60 s
    assert failed == ["not-a-receipt"]
    assert queues.depth() == 0
