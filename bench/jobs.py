"""Jobs: picorv32's testbench_ez through the API (POST -> `completed` seen) next to iverilog + vvp
run by hand, and jobs per minute with one runner next to running the tools back to back.

`python -m bench.jobs [--quick]` runs it on its own stack with one `python -m runner` (sandboxed
when bubblewrap works, as `make run`); `run(stack)` returns the table rows.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import KeepAlive
from bench.report import Row, ms, percentile
from bench.stack import ROOT, Stack, stack_bench, stop

RUNS = 20
THROUGHPUT_JOBS = 30
POLL_SECONDS = 0.02  # the client's GET interval while it waits for `completed`
TERMINAL = {"completed", "failed", "cancelled"}

COUNTER = """module counter(input clk, input rst, output reg [3:0] q);
  always @(posedge clk) if (rst) q <= 0; else q <= q + 1;
endmodule
"""
COUNTER_TB = """module counter_tb;
  reg clk = 0, rst = 1;
  wire [3:0] q;
  counter dut(.clk(clk), .rst(rst), .q(q));
  always #5 clk = ~clk;
  initial begin #12 rst = 0; #100 $display("q=%0d", q); $finish; end
endmodule
"""


def picorv32_sources() -> dict[str, str]:
    import pythondata_cpu_picorv32

    base = Path(pythondata_cpu_picorv32.data_location)
    return {name: (base / name).read_text() for name in ("picorv32.v", "testbench_ez.v")}


@contextmanager
def runner_process(stack: Stack) -> Iterator[subprocess.Popen[bytes]]:
    """One `python -m runner` with its defaults (20 s long poll), without the JWT key."""
    env = {k: v for k, v in os.environ.items() if k != "A6HUB_JWT_SECRET"}
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    with open(stack.log_dir / "runner.log", "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "runner"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process, timeout=30)


class Client:
    def __init__(self, stack: Stack) -> None:
        self.http = KeepAlive(stack.api_url)
        name = f"benchjobs{uuid.uuid4().hex[:8]}"
        email, password = f"{name}@example.test", "correct horse battery"
        status, _ = self.http.request("POST", "/api/v1/auth/register",
                                      {"email": email, "username": name, "password": password})
        assert status == 201
        status, login = self.http.request("POST", "/api/v1/auth/login",
                                          {"email": email, "password": password})
        assert status == 200, login
        self.token = str(login["access_token"])

    def project(self, files: dict[str, str]) -> int:
        status, project = self.http.request("POST", "/api/v1/projects",
                                            {"name": f"bench jobs {uuid.uuid4().hex[:6]}"}, self.token)
        assert status == 201, project
        for path, content in files.items():
            status, body = self.http.request("POST", f"/api/v1/projects/{project['id']}/files",
                                             {"filename": path, "content": content}, self.token)
            assert status == 201, body
        return int(project["id"])

    def submit(self, project_id: int, config: dict[str, Any]) -> int:
        status, job = self.http.request("POST", f"/api/v1/projects/{project_id}/jobs",
                                        {"job_type": "simulation", "config": config,
                                         "no_cache": True},  # measure the tools, not the cache
                                        self.token)
        assert status == 201, job
        return int(job["id"])

    def job(self, project_id: int, job_id: int) -> dict[str, Any]:
        status, job = self.http.request("GET", f"/api/v1/projects/{project_id}/jobs/{job_id}",
                                        token=self.token)
        assert status == 200, job
        return dict(job)

    def wait(self, project_id: int, job_id: int, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(project_id, job_id)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)


def raw_simulation(files: dict[str, str], testbench: str) -> Callable[[], float]:
    """iverilog -g2012 + vvp -n by hand in a scratch directory; returns one run's seconds."""
    work = Path(tempfile.mkdtemp(prefix="a6hub-bench-raw-"))
    for path, content in files.items():
        (work / path).write_text(content)
    sources = [testbench] + [p for p in files if p != testbench]

    def once() -> float:
        started = time.perf_counter()
        subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", *sources], cwd=work, check=True,
                       capture_output=True)
        subprocess.run(["vvp", "-n", "sim.vvp"], cwd=work, check=True, capture_output=True)
        return time.perf_counter() - started

    return once


def _ts(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _phases(job: dict[str, Any]) -> dict[str, float]:
    """Where a job's time went, from its own record (server clocks, ms resolution)."""
    tools = sum(float(s["duration_s"]) for s in job["steps"])
    created, started, done = _ts(job["created_at"]), _ts(job["started_at"]), _ts(job["completed_at"])
    runner = job["summary"].get("runner", {})
    return {"queue": started - created, "tools": tools, "server": done - created,
            "runner": (done - started) - tools,
            "materialise": float(runner.get("materialise_s", 0)),
            "sandbox": float(runner.get("execute_s", 0)) - tools,
            "log_flush": float(runner.get("log_flush_s", 0))}


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _bare_getitem(project_id: int, samples: int = 20) -> float:
    from chalicelib.models.projects import Project

    times = []
    for _ in range(samples):
        started = time.perf_counter()
        Project.get(project_id)
        times.append(time.perf_counter() - started)
    return _med(times)


def bench_latency(client: Client, runs: int) -> list[Row]:
    files = picorv32_sources()
    project_id = client.project(files)
    config = {"testbench": "testbench_ez.v"}
    raw_once = raw_simulation(files, "testbench_ez.v")
    for _ in range(2):  # warm page cache, the runner's imports and connections
        raw_once()
        client.wait(project_id, client.submit(project_id, config))
    raw = [raw_once() for _ in range(runs)]
    api: list[float] = []
    phases: list[dict[str, float]] = []
    posts: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        job_id = client.submit(project_id, config)
        posts.append(time.perf_counter() - started)
        job = client.wait(project_id, job_id)
        api.append(time.perf_counter() - started)
        assert job["status"] == "completed", job
        phases.append(_phases(job))
    over50 = _med(api) - _med(raw)
    over90 = percentile(api, 90) - percentile(raw, 90)

    def phase(name: str) -> str:
        return ms(_med([p[name] for p in phases]))

    getitem = _bare_getitem(project_id)
    client_side = _med([a - p["server"] for a, p in zip(api, phases, strict=True)])
    return [
        Row(f"picorv32 testbench_ez, POST -> completed seen, median / p90 ms ({runs} runs)",
            f"{ms(_med(api))} / {ms(percentile(api, 90))}",
            f"iverilog + vvp by hand: {ms(_med(raw))} / {ms(percentile(raw, 90))}"),
        Row("  overhead of the service (median / p90 difference) ms", f"{ms(over50)} / {ms(over90)}",
            "", "median <= 150 ms", over50 <= 0.150),
        Row("  the same without the client (record's created_at -> completed_at) ms",
            f"{ms(_med([p['server'] for p in phases]) - _med(raw))}", "median difference"),
        Row("  where a job's time goes (medians from the job records) ms",
            f"queue {phase('queue')}, tools {phase('tools')}, runner {phase('runner')}",
            f"client side (POST, {POLL_SECONDS * 1000:.0f} ms polling) {ms(client_side)}"),
        Row("  of the runner's: files in, sandbox set-up, final log write ms",
            f"{phase('materialise')}, {phase('sandbox')}, {phase('log_flush')}",
            f"POST {ms(_med(posts))}; one emulator GetItem {ms(getitem)}"),
    ]


def bench_throughput(client: Client, jobs: int) -> Row:
    files = {"counter.v": COUNTER, "counter_tb.v": COUNTER_TB}
    project_id = client.project(files)
    config = {"testbench": "counter_tb.v"}
    raw_once = raw_simulation(files, "counter_tb.v")
    raw_once()
    started = time.perf_counter()
    for _ in range(jobs):
        raw_once()
    raw_rate = jobs / (time.perf_counter() - started) * 60
    client.wait(project_id, client.submit(project_id, config))
    started = time.perf_counter()
    ids = [client.submit(project_id, config) for _ in range(jobs)]
    for job_id in ids:
        assert client.wait(project_id, job_id)["status"] == "completed"
    api_rate = jobs / (time.perf_counter() - started) * 60
    return Row(f"trivial simulation, jobs/min with one runner ({jobs} queued at once)",
               f"{api_rate:,.0f}", f"tools back to back: {raw_rate:,.0f}/min "
               f"({api_rate / raw_rate:.0%} of it)")


def run(stack: Stack, quick: bool = False) -> list[Row]:
    runs, jobs = (3, 5) if quick else (RUNS, THROUGHPUT_JOBS)
    with runner_process(stack):
        client = Client(stack)
        try:
            rows = bench_latency(client, runs)
            rows.append(bench_throughput(client, jobs))
        finally:
            client.http.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    return stack_bench(argv, "python -m bench.jobs", __doc__, run,
                       "a6hub jobs bench", "a6hub-bench-jobs-")


if __name__ == "__main__":
    sys.exit(main())
