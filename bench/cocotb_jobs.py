"""cocotb jobs: picorv32's cocotb tests (tests/fixtures/cocotb/picorv32_tests.py) through the API
(POST -> `completed` seen) next to the same two commands run by hand (iverilog, then vvp with
cocotb's VPI module and the same environment, outside any sandbox).

`python -m bench.cocotb_jobs [--quick]` runs it on its own stack with one `python -m runner`;
`python -m bench --only cocotb` runs it with the others; `run(stack)` returns the table rows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.jobs import Client, _med, _phases, picorv32_sources, runner_process
from bench.report import Row, ms, percentile
from bench.stack import ROOT, Stack, stack_bench

RUNS = 10
TESTS = ROOT / "tests" / "fixtures" / "cocotb" / "picorv32_tests.py"
CONFIG = {"toplevel": "picorv32", "test_modules": ["picorv32_tests"]}


def sources() -> dict[str, str]:
    return {"picorv32.v": picorv32_sources()["picorv32.v"], "picorv32_tests.py": TESTS.read_text()}


def by_hand(files: dict[str, str], work: Path) -> Callable[[], float]:
    """The job's two steps by hand in the scratch directory `work`; returns one run's seconds."""
    from runner.kinds.cocotb import testbench_python

    python = testbench_python()
    for path, content in files.items():
        (work / path).write_text(content)
    (work / "ts.v").write_text("`timescale 1ns/1ps\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8",
           "COCOTB_TEST_MODULES": "picorv32_tests", "COCOTB_TOPLEVEL": "picorv32",
           "TOPLEVEL_LANG": "verilog", "COCOTB_RESULTS_FILE": str(work / "results.xml"),
           "GPI_USERS": f"{python.libpython};{python.site / python.simulator_module},initialize",
           "PYGPI_PYTHON_BIN": python.executable, "PYTHONPATH": f"{work}:{python.site}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    vpi = str(python.site / "cocotb" / "libs" / "libcocotbvpi_icarus.so")

    def once() -> float:
        started = time.perf_counter()
        subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", "-s", "picorv32", "ts.v", "picorv32.v"],
                       cwd=work, check=True, capture_output=True)
        out = subprocess.run(["vvp", "-n", "-m", vpi, "sim.vvp"], cwd=work, env=env, check=True,
                             capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        assert "FAIL=0" in out.stdout + out.stderr, (out.stdout + out.stderr)[-2000:]
        return elapsed

    return once


def submit(client: Client, project_id: int) -> int:
    status, job = client.http.request("POST", f"/api/v1/projects/{project_id}/jobs",
                                      {"job_type": "cocotb", "config": CONFIG}, client.token)
    assert status == 201, job
    return int(job["id"])


def bench_cocotb(client: Client, runs: int) -> list[Row]:
    files = sources()
    project_id = client.project(files)
    work = Path(tempfile.mkdtemp(prefix="a6hub-bench-cocotb-"))
    raw_once = by_hand(files, work)
    try:
        for _ in range(2):  # warm page cache, the runner's imports and connections
            raw_once()
            client.wait(project_id, submit(client, project_id))
        raw = [raw_once() for _ in range(runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    api: list[float] = []
    phases: list[dict[str, float]] = []
    steps: list[dict[str, float]] = []
    for _ in range(runs):
        started = time.perf_counter()
        job_id = submit(client, project_id)
        job: dict[str, Any] = client.wait(project_id, job_id)
        api.append(time.perf_counter() - started)
        assert job["status"] == "completed", job
        phases.append(_phases(job))
        steps.append({s["name"]: float(s["duration_s"]) for s in job["steps"]})
    over = _med(api) - _med(raw)
    return [
        Row(f"picorv32 cocotb tests (2), POST -> completed seen, median / p90 ms ({runs} runs)",
            f"{ms(_med(api))} / {ms(percentile(api, 90))}",
            f"iverilog + vvp/cocotb by hand: {ms(_med(raw))} / {ms(percentile(raw, 90))}"),
        Row("  overhead of the service (median difference) ms", ms(over),
            f"{over / _med(raw):.0%} of the tools' time by hand"),
        Row("  inside the sandbox: compile / test step ms",
            f"{ms(_med([s['compile'] for s in steps]))} / {ms(_med([s['test'] for s in steps]))}",
            f"queue {ms(_med([p['queue'] for p in phases]))}, "
            f"runner {ms(_med([p['runner'] for p in phases]))}"),
    ]


def run(stack: Stack, quick: bool = False) -> list[Row]:
    with runner_process(stack):
        client = Client(stack)
        try:
            return bench_cocotb(client, 3 if quick else RUNS)
        finally:
            client.http.close()


def main(argv: list[str] | None = None) -> int:
    return stack_bench(argv, "python -m bench.cocotb_jobs", __doc__, run,
                       "a6hub cocotb jobs bench", "a6hub-bench-cocotb-")


if __name__ == "__main__":
    sys.exit(main())
