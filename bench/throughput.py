"""Jobs per minute for trivial simulations: one runner at N jobs at once (N = the cores), two
such runners, and one runner at N = 1, each next to the same tools run by hand with the same
parallelism (`xargs -P N`) in the same run; with the AWS calls each job cost (its record).

`python -m bench.throughput [--quick] [--jobs J]` runs it on its own stack. For each setting the
J jobs are submitted through the API while no runner runs, then the runners start; the rate is
J over the span from the first job's `started_at` to the last one's `completed_at` (the records'
own clocks), so the runners' start-up and the API's submit rate are not counted. Afterwards
every job must be `completed` with `attempts` 1 and the queue (and its DLQ) empty: nothing lost,
duplicated or stuck.

CPU per job is counted from the moment every runner (every slot of each) polls to the moment
the last job has ended: "runner" is each runner process's own CPU plus its slot processes' own
(runner/slots.py), "tools" the CPU of the sandboxes the runners reaped (the slots' reaped
children; a single-process runner's), "emulator" and "API" each server with its workers, and
"bench" this process (its status reads). A sanity row sets their sum against the machine's
whole CPU over the same span (/proc/stat): the difference is other processes on the machine.

`--vs-root DIR` measures the same settings with runners started from another checkout (say
/work/main) too, alternating that tree's runner and this one's `--rounds` times on one stack,
and prints each side's median with the ratio of the pairs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.jobs import COUNTER, COUNTER_TB, TERMINAL, Client, _ts
from bench.report import Row
from bench.stack import ROOT, Stack, bench_parser, run_bench

JOBS = 60


def cores() -> int:
    return len(os.sched_getaffinity(0))


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds, user + system, of process `pid` (/proc/pid/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def server_cpu(pid: int) -> float:
    """CPU seconds of a server and of its live children (the API's worker processes)."""
    return cpu_seconds(pid)[0] + sum(cpu_seconds(child)[0] for child in children(pid))


def runner_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """pid -> (own, reaped children's) CPU seconds of a runner process and of its slot
    processes (children started with --slot): a slot's reaped children are its sandboxes."""
    found = {pid: cpu_seconds(pid)}
    for child in children(pid):
        try:
            if b"--slot" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                found[child] = cpu_seconds(child)
        except OSError:
            continue
    return found


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: user, nice, system,
    irq, softirq, steal; not idle or iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def self_cpu() -> float:
    times = os.times()
    return times.user + times.system


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


def child_pid(marker: str) -> int | None:
    """The pid of this process's child whose command line holds `marker` (the store, the API)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if ppid == os.getpid() and marker in cmdline:
            return int(entry.name)
    return None


@contextmanager
def runners(stack: Stack, count: int, concurrency: int, tag: str,
            cpu: dict[str, float] | None = None, root: Path = ROOT,
            polling_lines: int | None = None) -> Iterator[None]:
    """`count` `python -m runner` processes (from the checkout `root`) with `concurrency` slots
    each (1 s long poll, so they stop quickly), stopped (SIGTERM) and checked to exit 0 on
    leaving. The body runs once each says "runner polling" `polling_lines` times (default: once
    per slot; a runner whose slots are threads says it once). With `cpu`, the CPU seconds from
    then to the end of the body by part (the module's docstring), the servers and the machine's
    included."""
    env = {k: v for k, v in os.environ.items() if k != "A6HUB_JWT_SECRET"}
    env.update({"POWERTOOLS_METRICS_DISABLED": "true", "A6HUB_RUNNER_WAIT_SECONDS": "1",
                "A6HUB_RUNNER_CONCURRENCY": str(concurrency)})
    processes = []
    logs = [stack.log_dir / f"runner-{tag}-{n}.log" for n in range(count)]
    for log in logs:
        with open(log, "ab") as out:
            processes.append(subprocess.Popen([sys.executable, "-m", "runner"], cwd=root, env=env,
                                              stdout=out, stderr=subprocess.STDOUT))
    try:
        # CPU once each is polling: its start-up (imports, sandbox probe) is not counted
        for process, log in zip(processes, logs, strict=True):
            _polling(process, log, concurrency if polling_lines is None else polling_lines)
        before = _cpu_snapshot(processes)
        yield
        if cpu is not None:  # before they stop: their own CPU, and their tools' (reaped)
            for name, seconds in _cpu_since(before, _cpu_snapshot(processes)).items():
                cpu[name] = cpu.get(name, 0.0) + seconds
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                raise RuntimeError(f"a runner exited {code}; see {stack.log_dir}")


@dataclass
class CpuSnapshot:
    runners: dict[int, tuple[float, float]]  # runner and slot pids: (own, reaped)
    servers: dict[str, float]
    bench: float
    machine: float


def _cpu_snapshot(processes: list[subprocess.Popen[bytes]]) -> CpuSnapshot:
    servers = {name: server_cpu(pid) for name, marker in (("emulator", "devstack.store"),
                                                          ("API", "devstack serve"))
               if (pid := child_pid(marker)) is not None}
    found: dict[int, tuple[float, float]] = {}
    for process in processes:
        found.update(runner_cpu(process.pid))
    return CpuSnapshot(found, servers, self_cpu(), machine_cpu())


def _cpu_since(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds by part between two snapshots (a slot that ended or started between them
    counts only while it was seen in both: none does in a clean run)."""
    both = before.runners.keys() & after.runners.keys()
    cpu = {"runner": sum(after.runners[p][0] - before.runners[p][0] for p in both),
           "tools": sum(after.runners[p][1] - before.runners[p][1] for p in both)}
    for name in before.servers.keys() & after.servers.keys():
        cpu[name] = after.servers[name] - before.servers[name]
    cpu["bench"] = after.bench - before.bench
    cpu["machine"] = after.machine - before.machine
    return cpu


def _polling(process: subprocess.Popen[bytes], log: Path, lines: int) -> None:
    """Wait until the runner has said "runner polling" `lines` times."""
    deadline = time.monotonic() + 120
    while log.read_text(errors="replace").count("runner polling") < lines:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"a runner did not start; see {log}")
        time.sleep(0.02)


def tools_rate(jobs: int, parallel: int) -> float:
    """iverilog + vvp for the counter, `jobs` times through `xargs -P parallel`, each run in its
    own directory; jobs per minute."""
    work = Path(tempfile.mkdtemp(prefix="a6hub-bench-xargs-"))
    try:
        for n in range(jobs):
            run = work / str(n)
            run.mkdir()
            (run / "counter.v").write_text(COUNTER)
            (run / "counter_tb.v").write_text(COUNTER_TB)
        script = ("cd \"$1\" && iverilog -g2012 -o sim.vvp counter_tb.v counter.v "
                  "&& vvp -n sim.vvp >/dev/null")
        argv = ["xargs", "-P", str(parallel), "-n", "1", "sh", "-c", script, "sh"]
        listing = "\n".join(str(work / str(n)) for n in range(jobs)) + "\n"
        subprocess.run(argv, input=listing.encode(), check=True)  # warm the page cache
        started = time.perf_counter()
        subprocess.run(argv, input=listing.encode(), check=True)
        return jobs / (time.perf_counter() - started) * 60
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sandboxed_tools_rate(jobs: int, parallel: int) -> float | None:
    """The floor of any sandboxed runner: the same two tools, each in its own bubblewrap with
    the runner's own bwrap arguments (`Sandbox.command`), `jobs` times through `xargs -P
    parallel`; jobs per minute, or None where bubblewrap cannot run.

    Nothing else of a job is here (no queue, record, cgroup, rlimits, uid change, watch or
    upload), so no runner that launches one sandbox per step can do more jobs per minute."""
    from runner.jobdirs import JobDirs
    from runner.limits import Limits
    from runner.sandbox import Sandbox, sandbox_problem

    if sandbox_problem() is not None:
        return None
    stages = []
    try:
        for _ in range(jobs):
            dirs = JobDirs.create()
            stages.append(dirs)
            (dirs.src / "counter.v").write_text(COUNTER)
            (dirs.src / "counter_tb.v").write_text(COUNTER_TB)
            box = Sandbox(dirs, Limits(), sandboxed=True)
            compile_ = box.command(["iverilog", "-g2012", "-o", "sim.vvp",
                                    box.inside("src", "counter_tb.v"), box.inside("src", "counter.v")])
            run = box.command(["vvp", "-n", "sim.vvp"])
            (dirs.gen / "steps.sh").write_text(
                f"{shlex.join(compile_)} && {shlex.join(run)} >/dev/null\n")
        argv = ["xargs", "-P", str(parallel), "-n", "1", "sh"]
        listing = "\n".join(str(dirs.gen / "steps.sh") for dirs in stages) + "\n"
        subprocess.run(argv, input=listing.encode(), check=True)  # warm the page cache
        started = time.perf_counter()
        subprocess.run(argv, input=listing.encode(), check=True)
        return jobs / (time.perf_counter() - started) * 60
    finally:
        for dirs in stages:
            shutil.rmtree(dirs.stage, ignore_errors=True)


def queue_depth() -> int:
    """Messages left in the jobs queue and its dead-letter queue (visible or in flight)."""
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from runner.worker import RunnerSettings

    settings = RunnerSettings.from_queue(get_settings().jobs_queue_url)
    left = 0
    for url in filter(None, (settings.queue_url, settings.dlq_url)):
        attrs = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        left += sum(int(v) for v in attrs.values())
    return left


def measure(stack: Stack, client: Client, project_id: int, jobs: int, count: int,
            concurrency: int, root: Path = ROOT, polling_lines: int | None = None,
            tag: str = "") -> dict[str, Any]:
    """Submit `jobs`, run them with `count` runners of `concurrency` slots (from the checkout
    `root`); the rate, the checks and the CPU by part."""
    config = {"testbench": "counter_tb.v"}
    ids = [client.submit(project_id, config) for _ in range(jobs)]
    tag = f"{count}x{concurrency}{tag}"
    cpu: dict[str, float] = {}
    with runners(stack, count, concurrency, tag, cpu, root, polling_lines):
        done = [wait_quietly(client, project_id, job_id) for job_id in ids]
    first = min(_ts(j["started_at"]) for j in done)
    last = max(_ts(j["completed_at"]) for j in done)
    calls = [j["summary"]["runner"] for j in done if "runner" in j.get("summary", {})]
    by_op: Counter[str] = Counter()
    for c in calls:
        by_op.update(c.get("aws_calls_by_op", {}))
    machine = cpu.pop("machine")
    return {
        "rate": jobs / max(last - first, 1e-3) * 60,
        "completed": sum(j["status"] == "completed" for j in done),
        "attempts_1": sum(j["attempts"] == 1 for j in done),
        "terminal": sum(j["status"] in TERMINAL for j in done),
        "calls": statistics.median(c["aws_calls"] for c in calls) if calls else 0,
        "by_op": {op: round(n / max(len(calls), 1), 1) for op, n in sorted(by_op.items())},
        "left": queue_depth(),
        "cpu_ms": {name: seconds / jobs * 1000 for name, seconds in cpu.items()},
        "attributed_s": sum(cpu.values()), "machine_s": machine, "load": os.getloadavg()[0],
    }


def wait_quietly(client: Client, project_id: int, job_id: int, timeout: float = 600) -> Any:
    """The job once it has ended, looked at 4 times a second (little load on the API and store)."""
    deadline = time.monotonic() + timeout
    while (job := client.job(project_id, job_id))["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        time.sleep(0.25)
    return job


def run(stack: Stack, jobs: int, vs_root: Path | None = None, rounds: int = 3) -> list[Row]:
    n = cores()
    client = Client(stack)
    rows: list[Row] = []
    try:
        project_id = client.project({"counter.v": COUNTER, "counter_tb.v": COUNTER_TB})
        with runners(stack, 1, 1, "warm"):  # imports, page cache, the emulator's first calls
            client.wait(project_id, client.submit(project_id, {"testbench": "counter_tb.v"}))
        if vs_root is not None:
            return compare(stack, client, project_id, jobs, n, vs_root, rounds)
        settings = [(1, 1), (1, n), (2, n)]
        results = {s: measure(stack, client, project_id, jobs, *s) for s in settings}
        by_hand = {p: tools_rate(jobs, p) for p in sorted({1, n, 2 * n})}
        boxed = sandboxed_tools_rate(jobs, n)
        one = results[(1, n)]["rate"]
        for (count, slots), r in results.items():
            hand = by_hand[count * slots]
            target, met = "", None
            if (count, slots) == (1, n):
                target, met = ">= 50% of xargs", r["rate"] >= 0.5 * hand
            elif count == 2:
                target, met = ">= 1.6x one runner", r["rate"] >= 1.6 * one
            rows.append(Row(
                f"trivial simulation, {count} runner(s) x {slots} slot(s), jobs/min ({jobs} jobs)",
                f"{r['rate']:,.0f}",
                f"xargs -P {count * slots}: {hand:,.0f}/min ({r['rate'] / hand:.0%} of it)"
                + (f"; {r['rate'] / one:.2f}x 1 runner" if count == 2 else ""),
                target, met))
            rows += detail_rows(r, jobs, n)
        if boxed is not None:
            rows.append(Row(
                f"floor: the same tools, one bubblewrap per step (the runner's arguments), "
                f"xargs -P {n}, jobs/min", f"{boxed:,.0f}",
                f"{boxed / by_hand[n]:.0%} of xargs -P {n} without bubblewrap: no runner that "
                f"launches a sandbox per step can do more"))
    finally:
        client.http.close()
    return rows


def detail_rows(r: dict[str, Any], jobs: int, n: int) -> list[Row]:
    """The checks, the AWS calls and the CPU by part of one measured setting."""
    clean = (r["completed"] == jobs and r["attempts_1"] == jobs and r["left"] == 0)
    total = sum(r["cpu_ms"].values())
    return [
        Row("  nothing lost, duplicated or stuck",
            f"completed {r['completed']}/{jobs}, attempts=1 {r['attempts_1']}/{jobs}, "
            f"queue+DLQ left {r['left']}", "", "all / all / 0", clean),
        Row("  AWS calls per job (median; mean by operation)", f"{r['calls']:g}",
            ", ".join(f"{op} {v:g}" for op, v in r["by_op"].items())),
        Row("  CPU ms per job (runner: its processes, slots included; tools: the sandboxes they "
            "reaped; the API's and part of the emulator's serve the bench's 4 Hz status reads)",
            ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_ms"].items()),
            f"sum {total:.0f} ms: at most {n * 60000 / max(total, 1):,.0f} jobs/min "
            f"on {n} idle cores"),
        Row("  sanity: CPU counted above / the machine's busy CPU over the same span (/proc/stat)",
            f"{r['attributed_s']:.1f} s / {r['machine_s']:.1f} s "
            f"({r['attributed_s'] / max(r['machine_s'], 1e-9):.0%})",
            f"load {r['load']:.1f}: the rest is other processes on the machine"),
    ]


def compare(stack: Stack, client: Client, project_id: int, jobs: int, n: int, vs_root: Path,
            rounds: int) -> list[Row]:
    """1 runner x n slots and 2 runners x n slots, this checkout's runner and `vs_root`'s in
    turn (the other first in odd rounds), `rounds` times each; medians, pair ratios, xargs."""
    rows: list[Row] = []
    for count in (1, 2):
        here: list[dict[str, Any]] = []
        there: list[dict[str, Any]] = []
        for k in range(rounds):
            order = [(here, ROOT, None, "-here"), (there, vs_root, 1, "-vs")]
            for results, root, lines, tag in order if k % 2 == 0 else order[::-1]:
                results.append(measure(stack, client, project_id, jobs, count, n, root, lines,
                                       f"{tag}{k}"))
        hand = tools_rate(jobs, n)
        ratios = [a["rate"] / b["rate"] for a, b in zip(here, there, strict=True)]
        for name, results in ((f"this tree ({ROOT})", here), (f"{vs_root}", there)):
            rate = statistics.median(r["rate"] for r in results)
            cpu = {part: statistics.median(r["cpu_ms"][part] for r in results)
                   for part in results[0]["cpu_ms"]}
            rows.append(Row(
                f"{count} runner(s) x {n} slots, {name}: jobs/min, median of {rounds} "
                f"({jobs} jobs each)", f"{rate:,.0f}",
                f"xargs -P {n}: {hand:,.0f}/min ({rate / hand:.0%}); runs "
                + ", ".join(f"{r['rate']:,.0f}" for r in results)
                + "; loads " + ", ".join(f"{r['load']:.1f}" for r in results)))
            rows.append(Row("  CPU ms per job (median)",
                            ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())))
            rows.append(Row("  nothing lost, duplicated or stuck (every run)",
                            "yes" if all(r["completed"] == jobs and r["attempts_1"] == jobs
                                         and r["left"] == 0 for r in results) else "NO"))
        rows.append(Row(f"  {count} runner(s): this tree / {vs_root}, pair by pair",
                        f"median {statistics.median(ratios):.2f}x",
                        ", ".join(f"{x:.2f}" for x in ratios)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("python -m bench.throughput", __doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--vs-root", type=Path, default=None,
                        help="also run the runners of this checkout (e.g. /work/main), in turn")
    parser.add_argument("--rounds", type=int, default=3, help="with --vs-root: runs of each")
    return run_bench(parser, argv, lambda stack, args: run(
        stack, 6 if args.quick else args.jobs, args.vs_root, args.rounds),
        "a6hub runner throughput", "a6hub-bench-throughput-")


if __name__ == "__main__":
    sys.exit(main())
