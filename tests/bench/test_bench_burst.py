"""bench/burst.py's simulation on hand-checkable cases, and its quick run end to end."""

from __future__ import annotations

import pytest

from bench.burst import Inputs, LaunchBucket, fargate_runtask, fargate_service, long_lived
from tests.bench.quick_run import quick_table


def _inputs(arrivals: list[float], duration: float, start: float = 40.0) -> Inputs:
    return Inputs(arrivals, [duration] * len(arrivals), lambda: start, pickup_s=0.0)


def test_long_lived_slots_queue_jobs_behind_busy_ones() -> None:
    # GIVEN one runner with one slot and three 1 s jobs arriving together
    result = long_lived(_inputs([0.0, 0.0, 0.0], 1.0), runners=1, slots=1)
    # THEN they run one after the other; with three slots none waits
    assert result.waits == [0.0, 1.0, 2.0] and result.finished_at == 3.0
    assert long_lived(_inputs([0.0, 0.0, 0.0], 1.0), runners=1, slots=3).waits == [0.0] * 3


def test_a_one_job_task_serves_the_next_job_only_after_a_task_start() -> None:
    # GIVEN the service with one warm task and no room to scale, task starts of 40 s
    result = fargate_service(_inputs([0.0, 0.0], 1.0), warm=1, max_tasks=1)
    # THEN the second job waits for the first's task to finish and its replacement to start
    assert result.waits == [0.0, 41.0]
    assert result.tasks_started == 2  # the replacement after each job


def test_step_scaling_adds_tasks_only_at_the_alarm_period() -> None:
    # GIVEN no warm task's help for 30 queued jobs (one warm task, 1 h jobs), max 50 tasks
    result = fargate_service(_inputs([0.0] * 30, 3600.0), warm=1, max_tasks=50)
    # THEN the first job starts at once; the next ten only after the first alarm (60 s) plus a
    # task start (40 s), as the step for >= 20 visible messages adds ten tasks
    assert result.waits[0] == 0.0
    assert result.waits[1:11] == [100.0] * 10


def test_the_launch_bucket_admits_a_burst_then_the_refill_rate() -> None:
    bucket = LaunchBucket(size=100, refill=20.0)
    admitted = [bucket.launch(0.0) for _ in range(102)]
    assert admitted[:100] == [0.0] * 100
    assert admitted[100] == pytest.approx(0.05) and admitted[101] == pytest.approx(0.10)


def test_runtask_per_job_waits_one_task_start_after_the_spares() -> None:
    result = fargate_runtask(_inputs([0.0, 0.0, 0.0], 1.0), warm=1)
    assert result.waits == [0.0, 40.0, 40.0]


@pytest.mark.slow
def test_quick_burst_bench_prints_every_policy() -> None:
    printed = quick_table("bench.burst")
    for policy in ("fargate-service", "fargate-runtask", "ec2-long-lived"):
        assert policy in printed, printed
