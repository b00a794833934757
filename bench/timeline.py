"""Timeline of a job: where picorv32 `testbench_ez`'s POST -> `completed` time goes, phase by
phase, next to iverilog + vvp run by hand in the same run.

`python -m bench.timeline [--quick] [--runs N]` starts its own stack (emulator, API server) and
runs the runner IN THIS PROCESS (`runner.worker.Worker.serve` on a thread, sandboxed as
`python -m runner` is), so the client and the runner read one clock. A few runner functions are
wrapped to stamp when they return (or start); nothing else about the runner changes. Jobs are
run one at a time, each preceded by the tools by hand, so both see the same load.

Phases (ms after the client sent the POST; median over the runs):
- POST answered: the client has the job's id.
- claimed: the runner's claim (one conditional UpdateItem) returned true.
- files written: the commit's files are in the job's stage (runner/workspace.write_files).
- first tool: the first sandboxed tool starts (runner/sandbox.Sandbox.run).
- tools end: the last sandboxed tool returned.
- log written: the log's last PUT returned (LogStream.close).
- completed in the record: the finish UpdateItem returned (job_lifecycle.finish, before its
  hook that wakes waiting pipelines).
- seen by the long poll: `GET .../jobs/{id}?wait=` answered with `completed` (it polls the job
  every 20 ms, locally as in AWS).
Also the CPU this process spent per job (the in-process runner, plus the client's few requests;
the tools run as child processes and are not counted). The last row is the overhead the issue
bounds: seen minus the tools by hand (target <= 50 ms).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.completion import TARGET_OVERHEAD_S, long_poll
from bench.jobs import Client, picorv32_sources, raw_simulation
from bench.report import Row, ms, percentile
from bench.stack import Stack, bench_parser, run_bench

RUNS = 15
PHASES = ("POST answered", "claimed", "files written", "first tool", "tools end", "log written",
          "completed in the record", "seen by the long poll")


class Stamps:
    """First/last times (perf_counter) of named events for the job being timed, any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def clear(self) -> None:
        with self._lock:
            self.first.clear()
            self.last.clear()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self.first.setdefault(name, now)
            self.last[name] = now


def _wrap(owner: Any, name: str, stamps: Stamps, before: str | None = None,
          after: str | None = None, when: Callable[[Any], bool] = lambda result: True
          ) -> Callable[[], None]:
    """Replace owner.name with a wrapper marking `before` at the call and `after` at its return
    (when `when(result)`); returns the undo."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            stamps.mark(before)
        result = original(*args, **kwargs)
        if after and when(result):
            stamps.mark(after)
        return result

    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, original)


@contextmanager
def stamped_runner(stamps: Stamps) -> Iterator[None]:
    """A runner serving the stack's queue on a thread of this process, its phases stamped."""
    from chalicelib.services import job_lifecycle
    from runner import logstream, sandbox, workspace
    from runner.worker import RunnerSettings, Worker

    undo = [
        _wrap(job_lifecycle, "claim", stamps, after="claimed", when=bool),
        _wrap(workspace, "write_files", stamps, after="files written"),
        _wrap(sandbox.Sandbox, "run", stamps, before="tool starts", after="tool ends"),
        _wrap(logstream.LogStream, "close", stamps, after="log written"),
        # finish's UpdateItem, then its hook (waking pipelines) before it returns: stamp the hook
        _wrap(job_lifecycle, "_ended_hook", stamps, before="completed in the record"),
    ]
    worker = Worker(RunnerSettings.from_queue())
    worker.check_ready()  # sandboxed, as `python -m runner` (refuses without bubblewrap)
    thread = threading.Thread(target=worker.serve, name="runner", daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop(0)
        thread.join(60)
        for u in reversed(undo):
            u()


def phases_of(stamps: Stamps, sent: float, answered: float, seen: float) -> dict[str, float]:
    """Seconds after `sent` of each phase in PHASES (KeyError when one was not stamped)."""
    return {
        "POST answered": answered - sent,
        "claimed": stamps.first["claimed"] - sent,
        "files written": stamps.first["files written"] - sent,
        "first tool": stamps.first["tool starts"] - sent,
        "tools end": stamps.last["tool ends"] - sent,
        "log written": stamps.last["log written"] - sent,
        "completed in the record": stamps.first["completed in the record"] - sent,
        "seen by the long poll": seen - sent,
    }


def run(stack: Stack, quick: bool = False, runs: int = RUNS) -> list[Row]:
    import os

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    runs = 2 if quick else runs
    files = picorv32_sources()
    raw_once = raw_simulation(files, "testbench_ez.v")
    config = {"testbench": "testbench_ez.v"}
    stamps = Stamps()
    raw: list[float] = []
    samples: dict[str, list[float]] = {phase: [] for phase in PHASES}
    cpu: list[float] = []  # this process's CPU per job: the runner's, plus the client's requests
    client = Client(stack)
    try:
        project_id = client.project(files)
        with stamped_runner(stamps):
            for n in range(runs + 1):  # the first job warms imports, connections, page cache
                raw_time = raw_once()
                stamps.clear()
                cpu_before = time.process_time()  # the tools are child processes: not counted
                sent = time.perf_counter()
                job_id = client.submit(project_id, config)
                answered = time.perf_counter()
                job = long_poll(client, project_id, job_id)
                seen = time.perf_counter()
                assert job["status"] == "completed" and job["attempts"] == 1, job
                cpu_used = time.process_time() - cpu_before
                if n == 0:
                    continue
                cpu.append(cpu_used)
                deadline = time.monotonic() + 10  # the runner's thread stamps after the write
                while "completed in the record" not in stamps.first and time.monotonic() < deadline:
                    time.sleep(0.001)
                raw.append(raw_time)
                for phase, seconds in phases_of(stamps, sent, answered, seen).items():
                    samples[phase].append(seconds)
    finally:
        client.http.close()
    tools_by_hand = statistics.median(raw)
    rows = [Row(f"picorv32 testbench_ez: iverilog + vvp by hand, median / p90 ms ({runs} runs)",
                f"{ms(tools_by_hand)} / {ms(percentile(raw, 90))}")]
    previous = 0.0
    for phase in PHASES:
        at = statistics.median(samples[phase])
        rows.append(Row(f"  {phase}: ms after POST, median (+ since the previous phase)",
                        f"{ms(at)} (+{ms(at - previous)})"))
        previous = at
    tool_span = statistics.median(
        [end - start for start, end in zip(samples["first tool"], samples["tools end"],
                                           strict=True)])
    rows.append(Row("  tools in the sandbox (first tool -> tools end), median ms",
                    ms(tool_span), f"{ms(tools_by_hand)} by hand"))
    rows.append(Row("  runner CPU per job (this process: the runner and the client's requests), "
                    "median ms", ms(statistics.median(cpu))))
    overhead = statistics.median(samples["seen by the long poll"]) - tools_by_hand
    rows.append(Row("  overhead: seen by the long poll - tools by hand, median ms", ms(overhead),
                    "tools by hand (above)", f"<= {TARGET_OVERHEAD_S * 1000:.0f} ms",
                    overhead <= TARGET_OVERHEAD_S))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("python -m bench.timeline", __doc__, "2 jobs (smoke run)")
    parser.add_argument("--runs", type=int, default=RUNS)
    return run_bench(parser, argv, lambda stack, args: run(stack, quick=args.quick, runs=args.runs),
                     "a6hub job timeline bench", "a6hub-bench-timeline-")


if __name__ == "__main__":
    sys.exit(main())
