"""A deadline burst in production: 500 jobs in one minute, simulated per runner policy.

`python -m bench.burst [--jobs 500] [--seconds 60] [--quick]` measures the job durations here
(picorv32 `testbench_ez` and a trivial counter, iverilog + vvp run by hand, as bench/jobs.py does)
and feeds them, with published Fargate task start times, to a discrete-event simulation of:

- `fargate-service`: what infra/runner.yaml deployed before this change -- one job per Fargate
  task (`--max-jobs 1`), `WarmTasks` spares, step scaling on the queue's visible messages (+1 /
  +4 / +10 tasks per alarm period of 60 s, cooldown 60 s) up to `MaxTasks`; a task exits after its
  job and the service starts a replacement, which takes a full task start.
- `fargate-runtask`: one task per job started at once by a dispatcher (RunTask), bounded only by
  Fargate's launch-rate token bucket: the best one-job-per-task can do.
- `ec2-long-lived`: R long-lived runners on ECS on EC2 (bubblewrap works there), each running
  up to N jobs at once; a job waits only for a free slot plus the queue's receive latency.

Inputs, with their sources:
- Fargate task start (RunTask -> RUNNING, image pulled): uniform 30-60 s. AWS's answer on
  re:Post: "It is normal for new AWS Fargate tasks to take 30-45 seconds or longer to start"
  (https://repost.aws/questions/QUjZAzJd27SZWxXM7MgyxOZw); runner/README.md's 30-60 s for our
  ~600 MB image. Fargate pulls the whole image for every task (no cache:
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-pull-behavior.html).
- Fargate launch rate: a token bucket of 100 tasks refilled at 20 per second per account and
  region (https://docs.aws.amazon.com/AmazonECS/latest/userguide/throttling.html).
- Scaling reaction: the alarm on ApproximateNumberOfMessagesVisible has a 60 s period (SQS
  publishes its metrics at one-minute granularity), so the first step fires at the first period
  boundary after the backlog appears.
- Job service time: the tool run measured in this run plus the runner's own per-job time
  (`--runner-ms`, default 50 ms: runner/README.md's measured "runner's own" 48-51 ms).
- Queue pickup for a long-lived runner: `--pickup-ms` (default 30 ms, the measured SQS
  long-poll wake-up plus claim of runner/README.md, 11-18 ms, rounded up for AWS).

"wait" is arrival (the POST) -> the job starts on a runner; the table gives p50/p95/max.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Row, format_table, ms, percentile

FARGATE_START_S = (30.0, 60.0)
LAUNCH_BUCKET, LAUNCH_REFILL_PER_S = 100, 20.0
ALARM_PERIOD_S, SCALE_COOLDOWN_S = 60.0, 60.0
#: (visible messages at least, tasks added): infra/runner.yaml's ScaleOutPolicy steps.
SCALE_STEPS = ((20, 10), (5, 4), (1, 1))


@dataclass(frozen=True)
class Inputs:
    """Arrivals (s from the burst's start, sorted) and each job's service time (s)."""

    arrivals: Sequence[float]
    durations: Sequence[float]
    task_start: Callable[[], float]
    pickup_s: float = 0.03


@dataclass
class Result:
    policy: str
    waits: list[float] = field(default_factory=list)
    finished_at: float = 0.0
    tasks_started: int = 0

    def row(self) -> Row:
        w = self.waits
        return Row(f"  {self.policy}", f"{_s(percentile(w, 50))} / {_s(percentile(w, 95))} / "
                   f"{_s(max(w))}", f"last job done at {self.finished_at:.1f} s; "
                   f"{self.tasks_started} task starts")


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"


class LaunchBucket:
    """Fargate's task launch token bucket: launch(t) -> when the launch is admitted."""

    def __init__(self, size: int = LAUNCH_BUCKET, refill: float = LAUNCH_REFILL_PER_S) -> None:
        self.size, self.refill = size, refill
        self.tokens, self.at = float(size), 0.0

    def launch(self, t: float) -> float:
        self.tokens = min(self.size, self.tokens + (t - self.at) * self.refill)
        self.at = t
        if self.tokens >= 1:
            self.tokens -= 1
            return t
        admitted = t + (1 - self.tokens) / self.refill
        self.tokens, self.at = 0.0, admitted
        return admitted


def long_lived(inputs: Inputs, runners: int, slots: int) -> Result:
    """R runners x N slots, always up: a job starts when a slot is free (+ pickup latency)."""
    free = [0.0] * (runners * slots)  # when each slot is next free
    heapq.heapify(free)
    result = Result(f"ec2-long-lived, {runners} runner(s) x {slots} jobs")
    for arrival, duration in zip(inputs.arrivals, inputs.durations, strict=True):
        slot_free = heapq.heappop(free)
        start = max(arrival + inputs.pickup_s, slot_free + inputs.pickup_s)
        result.waits.append(start - arrival)
        heapq.heappush(free, start + duration)
        result.finished_at = max(result.finished_at, start + duration)
    return result


def fargate_runtask(inputs: Inputs, warm: int) -> Result:
    """A task per job, launched at its arrival (after `warm` spares are used), throttled by the
    launch bucket; each spare is replaced after its job, which takes a task start too."""
    bucket = LaunchBucket()
    spares: list[float] = [0.0] * warm  # when each spare is ready
    heapq.heapify(spares)
    result = Result(f"fargate-runtask, a task per job, {warm} warm")
    for arrival, duration in zip(inputs.arrivals, inputs.durations, strict=True):
        if spares and spares[0] <= arrival:
            heapq.heappop(spares)
            start = arrival + inputs.pickup_s
            ready = bucket.launch(start + duration) + inputs.task_start()
            heapq.heappush(spares, ready)  # the replacement spare
            result.tasks_started += 1
        else:
            start = bucket.launch(arrival) + inputs.task_start() + inputs.pickup_s
            result.tasks_started += 1
        result.waits.append(start - arrival)
        result.finished_at = max(result.finished_at, start + duration)
    return result


class _Service:
    """The state of `fargate_service`'s event loop."""

    def __init__(self, inputs: Inputs, warm: int, max_tasks: int, result: Result) -> None:
        self.inputs, self.max_tasks, self.result = inputs, max_tasks, result
        self.bucket = LaunchBucket()
        self.events: list[tuple[float, int, str]] = []  # (time, seq, kind): ready|done|alarm
        self.seq = 0
        self.idle = self.desired = warm
        self.last_scale = -SCALE_COOLDOWN_S
        self.queue: deque[tuple[float, float]] = deque()

    def push(self, t: float, kind: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind))

    def start_task(self, t: float) -> None:
        self.result.tasks_started += 1
        self.push(self.bucket.launch(t) + self.inputs.task_start(), "ready")

    def alarm(self, now: float) -> None:
        visible = len(self.queue)
        if visible and now - self.last_scale >= SCALE_COOLDOWN_S and self.desired < self.max_tasks:
            add = next(n for least, n in SCALE_STEPS if visible >= least)
            add = min(add, self.max_tasks - self.desired)
            self.desired += add
            self.last_scale = now
            for _ in range(add):
                self.start_task(now)

    def dispatch(self, now: float) -> None:
        while self.idle and self.queue:
            arrival, duration = self.queue.popleft()
            self.idle -= 1
            start = now + self.inputs.pickup_s
            self.result.waits.append(start - arrival)
            self.result.finished_at = max(self.result.finished_at, start + duration)
            self.push(start + duration, "done")


def fargate_service(inputs: Inputs, warm: int, max_tasks: int) -> Result:
    """The service as deployed: `desired` tasks, each runs one job then exits and is replaced;
    step scaling adds tasks at alarm periods while messages are visible."""
    result = Result(f"fargate-service, 1 job per task, {warm} warm, max {max_tasks}")
    service = _Service(inputs, warm, max_tasks, result)
    jobs = deque(zip(inputs.arrivals, inputs.durations, strict=True))
    remaining = len(jobs)
    service.push(ALARM_PERIOD_S, "alarm")
    while remaining:
        next_event = service.events[0][0] if service.events else float("inf")
        if jobs and jobs[0][0] <= next_event:
            service.queue.append(jobs.popleft())
            now = service.queue[-1][0]
        else:
            now, _, kind = heapq.heappop(service.events)
            if kind == "ready":
                service.idle += 1
            elif kind == "done":
                remaining -= 1
                service.start_task(now)  # the task exited; the service replaces it
            else:
                service.alarm(now)
                service.push(now + ALARM_PERIOD_S, "alarm")
        service.dispatch(now)
    return result


def burst_arrivals(jobs: int, seconds: float, rng: random.Random) -> list[float]:
    """`jobs` submissions spread uniformly at random over `seconds` (sorted)."""
    return sorted(rng.uniform(0, seconds) for _ in range(jobs))


def measured_durations(quick: bool) -> dict[str, list[float]]:
    """Tool run times measured now (iverilog -g2012 + vvp -n, by hand), seconds."""
    from bench.jobs import COUNTER, COUNTER_TB, picorv32_sources, raw_simulation

    runs = 3 if quick else 20
    cases = {"picorv32 testbench_ez": (picorv32_sources(), "testbench_ez.v"),
             "trivial counter": ({"counter.v": COUNTER, "counter_tb.v": COUNTER_TB},
                                 "counter_tb.v")}
    measured = {}
    for name, (files, tb) in cases.items():
        once = raw_simulation(files, tb)
        once()  # warm the page cache
        measured[name] = [once() for _ in range(runs)]
    return measured


def simulate(tools: Sequence[float], jobs: int, seconds: float, runner_s: float, pickup_s: float,
             seed: int = 13) -> list[Result]:
    """Every policy on the same arrivals; durations sampled from `tools` plus `runner_s`."""
    rng = random.Random(seed)
    arrivals = burst_arrivals(jobs, seconds, rng)
    durations = [rng.choice(tools) + runner_s for _ in arrivals]

    def inputs() -> Inputs:
        starts = random.Random(seed + 1)
        return Inputs(arrivals, durations, lambda: starts.uniform(*FARGATE_START_S), pickup_s)

    return [fargate_service(inputs(), warm=1, max_tasks=20),
            fargate_service(inputs(), warm=10, max_tasks=100),
            fargate_runtask(inputs(), warm=10),
            long_lived(inputs(), runners=1, slots=2),
            long_lived(inputs(), runners=1, slots=4),
            long_lived(inputs(), runners=2, slots=4)]


def run(jobs: int = 500, seconds: float = 60.0, runner_ms: float = 50.0, pickup_ms: float = 30.0,
        quick: bool = False) -> list[Row]:
    measured = measured_durations(quick)
    rows = []
    for name, tools in measured.items():
        service = percentile(tools, 50) + runner_ms / 1000
        rows.append(Row(f"{name}: tools by hand, median / p90 ms ({len(tools)} runs)",
                        f"{ms(percentile(tools, 50))} / {ms(percentile(tools, 90))}",
                        f"+ runner {runner_ms:.0f} ms = {ms(service)} ms per job"))
    tools = measured["picorv32 testbench_ez"]
    rows.append(Row(f"burst of {jobs} picorv32 jobs in {seconds:.0f} s: wait (POST -> job "
                    "starts) p50 / p95 / max", "", "per policy below"))
    rows += [r.row() for r in simulate(tools, jobs, seconds, runner_ms / 1000, pickup_ms / 1000)]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runner-ms", type=float, default=50.0)
    parser.add_argument("--pickup-ms", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="3 tool runs per case")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run(args.jobs, args.seconds, args.runner_ms, args.pickup_ms, args.quick)
    scratch = Path(tempfile.gettempdir())
    print(format_table(rows, f"a6hub burst simulation ({os.cpu_count()} cores; "
                             f"{time.monotonic() - started:.0f} s; scratch in {scratch})"),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
