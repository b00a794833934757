"""`python -m bench.sandbox`: what running one step of a job in the sandbox costs.

No stack: this is `runner/sandbox.py` alone, in a process that has imported the runner (so a fork
copies what a runner's fork copies). Each figure is next to its reference in the same run,
interleaved call by call so that the machine's other load falls on both alike:

- a `/bin/true` step through `Sandbox.run` with each launch (`exec`: sh -> prlimit -> setpriv ->
  bwrap, started with vfork; `preexec`: a preexec_fn in a forked runner), wall ms (median) and
  CPU ms (this process and its reaped children) per step, against bwrap alone with the same
  arguments (no cgroup, uid or rlimits: the floor of any launch);
- picorv32 `testbench_ez`: `iverilog -g2012` and `vvp -n` in the sandbox with each launch,
  against the same commands by hand in a scratch directory.

`--quick` runs a few of each (the test suite runs this so the bench cannot rot).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import runner.worker  # noqa: F401 - a runner-sized process: what a fork has to copy
from bench.jobs import picorv32_sources
from bench.report import Row, format_table
from runner.limits import Limits
from runner.sandbox import JobDirs, LogBudget, Sandbox, become_subreaper, sandbox_problem, sandbox_uid

LAUNCHES = ("exec", "preexec")
TESTBENCH = "testbench_ez.v"


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Samples:
    """Wall and CPU seconds of each call of one variant."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def time(self, fn: Callable[[], object]) -> None:
        cpu, started = _cpu_s(), time.perf_counter()
        fn()
        self.wall.append(time.perf_counter() - started)
        self.cpu.append(_cpu_s() - cpu)

    def wall_ms(self) -> float:
        return 1000 * statistics.median(self.wall)

    def cpu_ms(self) -> float:
        return 1000 * statistics.mean(self.cpu)


def _step(box: Sandbox, argv: list[str]) -> Callable[[], None]:
    def once() -> None:
        output: list[bytes] = []
        result = box.run(argv, LogBudget(1 << 20, sink=output.append), threading.Event())
        if not result.ok:
            raise RuntimeError(f"{argv[0]} failed in the sandbox ({result.limit or result.exit_code}): "
                               f"{b''.join(output)[-500:]!r}")
    return once


def _by_hand(argv: list[str], cwd: Path) -> Callable[[], None]:
    def once() -> None:
        subprocess.run(argv, cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return once


def _bwrap_alone(argv: list[str], cwd: Path) -> Callable[[], None]:
    """bwrap by hand; then reap its init, which outlives bwrap and (this process being a child
    subreaper) is this process's child: the bench has no other child
    at that moment, so waiting for any child waits for that init only."""
    run = _by_hand(argv, cwd)

    def once() -> None:
        run()
        with contextlib.suppress(ChildProcessError):
            while True:
                os.waitpid(-1, 0)
    return once


def interleaved(variants: dict[str, Callable[[], None]], runs: int) -> dict[str, Samples]:
    """`runs` calls of each variant, one of each in turn (rotating who goes first), after one
    warm-up call each."""
    for fn in variants.values():
        fn()
    samples = {name: Samples() for name in variants}
    names = list(variants)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            samples[name].time(variants[name])
    return samples


def bench(runs: int) -> list[Row]:
    # A Sandbox's wall limit counts from its creation, across its steps: these live all run.
    limits = Limits(wall_seconds=24 * 3600)
    rows: list[Row] = []
    with JobDirs.staged() as dirs:
        for name, text in picorv32_sources().items():
            (dirs.src / name).write_text(text)
        uid = sandbox_uid()
        boxes = {launch: Sandbox(dirs, limits, sandboxed=True, uid=uid, launch=launch)  # type: ignore[arg-type]
                 for launch in LAUNCHES}
        floor = boxes["exec"].command(["/bin/true"])
        true = interleaved({**{launch: _step(box, ["/bin/true"]) for launch, box in boxes.items()},
                            "bwrap": _bwrap_alone(floor, dirs.work)}, runs)
        rows += [
            Row("/bin/true step, exec launch: wall ms (median)", f"{true['exec'].wall_ms():.1f}",
                f"preexec launch {true['preexec'].wall_ms():.1f}; bwrap alone "
                f"{true['bwrap'].wall_ms():.1f}", "< preexec",
                true["exec"].wall_ms() < true["preexec"].wall_ms()),
            Row("/bin/true step, exec launch: CPU ms (runner + children)",
                f"{true['exec'].cpu_ms():.1f}",
                f"preexec launch {true['preexec'].cpu_ms():.1f}; bwrap alone "
                f"{true['bwrap'].cpu_ms():.1f}", "< preexec",
                true["exec"].cpu_ms() < true["preexec"].cpu_ms()),
        ]
        by_hand = Path(tempfile.mkdtemp(prefix="a6hub-bench-sandbox-"))
        try:
            for name in (TESTBENCH, "picorv32.v"):
                (by_hand / name).write_bytes((dirs.src / name).read_bytes())
            sources = [TESTBENCH, "picorv32.v"]
            inside = [boxes["exec"].inside("src", name) for name in sources]
            compile_argv = ["iverilog", "-g2012", "-o", "sim.vvp"]
            run_argv = ["vvp", "-n", "sim.vvp"]
            for label, sandboxed, hand in (
                    ("picorv32 compile (iverilog -g2012)", compile_argv + inside, compile_argv + sources),
                    ("picorv32 run (vvp -n testbench_ez)", run_argv, run_argv)):
                if label.startswith("picorv32 run"):  # sim.vvp in both places first
                    _step(boxes["exec"], compile_argv + inside)()
                    _by_hand(compile_argv + sources, by_hand)()
                got = interleaved({**{launch: _step(box, sandboxed) for launch, box in boxes.items()},
                                   "hand": _by_hand(hand, by_hand)}, runs)
                hand_ms = got["hand"].wall_ms()
                rows.append(Row(
                    f"{label} in the sandbox, exec launch: wall ms (median)",
                    f"{got['exec'].wall_ms():.1f} (+{got['exec'].wall_ms() - hand_ms:.1f})",
                    f"by hand {hand_ms:.1f}; preexec launch {got['preexec'].wall_ms():.1f} "
                    f"(+{got['preexec'].wall_ms() - hand_ms:.1f})"))
        finally:
            subprocess.run(["rm", "-rf", "--", str(by_hand)], check=False)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few runs (the test suite's)")
    parser.add_argument("--runs", type=int, default=None, help="calls of each variant [31]")
    args = parser.parse_args(argv)
    problem = sandbox_problem()
    if problem is not None:
        print(f"bench.sandbox: no sandbox here: {problem}", file=sys.stderr)
        return 1
    become_subreaper()  # as `python -m runner` is: each sandbox's init is reaped, its CPU counted
    runs = args.runs or (3 if args.quick else 31)
    started = time.monotonic()
    load = os.getloadavg()[0]
    rows = bench(runs)
    print(format_table(rows, f"a6hub sandbox step bench ({'quick' if args.quick else 'full'}; "
                             f"{runs} runs of each, interleaved; "
                             f"{len(os.sched_getaffinity(0))} cores; load {load:.1f} -> "
                             f"{os.getloadavg()[0]:.1f}; {time.monotonic() - started:.0f} s)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
