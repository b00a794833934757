"""End to end: the API, a `python -m runner` process and the real tools (iverilog, yosys, verilator).

picorv32 comes from the `pythondata-cpu-picorv32` package (nobody here wrote it). The runner
processes are real, so SIGKILL and SIGTERM are real too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, Api, UserCtx, make_file, make_project
from tests.jobs_support import Queues, api_queue, make_queues, queues_fixture, wait_for

pytestmark = pytest.mark.slow

SLOW_TB = """\
module slow_tb;
  integer i;
  initial begin
    $display("slow start");
    for (i = 0; i < 8000000; i = i + 1) #1;
    $display("slow done");
    $finish;
  end
endmodule
"""
FOREVER_TB = """\
module forever_tb;
  reg x = 0;
  initial $display("spinning");
  always #1 x = ~x;
endmodule
"""


def picorv32_dir() -> Path:
    import pythondata_cpu_picorv32

    return Path(pythondata_cpu_picorv32.data_location)


class RunnerProcess:
    """`python -m runner` on a given queue, its output kept in a file."""

    def __init__(self, queues: Queues, log: Path, *args: str, **env: str) -> None:
        self.log = log
        settings = {"A6HUB_RUNNER_WAIT_SECONDS": "1", "A6HUB_RUNNER_DLQ_CHECK_SECONDS": "1",
                    "A6HUB_RUNNER_CANCEL_POLL_SECONDS": "0.25", "A6HUB_LOG_LEVEL": "INFO", **env}
        # No JWT signing key: a runner never needs it, so a sandbox escape cannot steal it.
        environ = {k: v for k, v in os.environ.items() if k != "A6HUB_JWT_SECRET"}
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runner", "--queue-url", queues.url, *args], cwd=ROOT,
                env={**environ, **settings}, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


queues = queues_fixture(max_receives=3, visibility=3)


@pytest.fixture(scope="module")
def runner(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    process = RunnerProcess(queues, tmp_path_factory.mktemp("runner") / "runner.log")
    yield process
    assert process.stop() == 0, process.output()[-3000:]


@pytest.fixture(scope="module")
def picorv32(api: Api, owner: UserCtx, queues: Queues) -> dict[str, Any]:
    project = make_project(api, owner, name="picorv32 e2e")
    for name in ("picorv32.v", "testbench_ez.v"):
        make_file(api, owner, project["id"], name, (picorv32_dir() / name).read_text())
    return project


def submit(api: Api, user: UserCtx, project: dict[str, Any], job_type: str,
           config: dict[str, Any]) -> str:
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=user.token,
                     json_body={"job_type": job_type, "config": config})
    assert reply.status == 201, reply.body
    return str(reply.json["id"])


def job_of(api: Api, user: UserCtx, project: dict[str, Any], job_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}", token=user.token).json)


def wait_status(api: Api, user: UserCtx, project: dict[str, Any], job_id: str,
                done: tuple[str, ...] = ("completed", "failed", "cancelled"),
                timeout: float = 180) -> dict[str, Any]:
    return dict(wait_for(lambda: (j := job_of(api, user, project, job_id))["status"] in done and j,
                         timeout=timeout, every=0.2, what=f"job {job_id} to reach {done}"))


def logs_of(api: Api, user: UserCtx, project: dict[str, Any], job_id: str) -> str:
    reply = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}/logs", token=user.token)
    return str(reply.json["logs"])


def artifact(api: Api, user: UserCtx, project: dict[str, Any], job_id: str, name: str) -> bytes:
    base = f"/api/v1/projects/{project['id']}/jobs/{job_id}/artifacts/{name}"
    link = api.get(f"{base}?presign=1", token=user.token)
    assert link.status == 200, link.body
    fetched = requests.get(link.json["url"], timeout=30)
    assert fetched.status_code == 200
    return fetched.content


def reference_trace() -> list[str]:
    """picorv32's testbench_ez run by hand: the 272-line bus trace the job log must contain."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"pico-ref-{os.getpid()}.vvp"
    src = picorv32_dir()
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp), str(src / "testbench_ez.v"),
                    str(src / "picorv32.v")], check=True)
    out = subprocess.run(["vvp", "-n", str(tmp)], check=True, capture_output=True, text=True)
    tmp.unlink()
    return out.stdout.splitlines()


def test_picorv32_simulation_logs_the_bus_trace_and_keeps_the_vcd(
        api: Api, owner: UserCtx, picorv32: dict[str, Any], runner: RunnerProcess) -> None:
    # GIVEN picorv32 and its testbench in a project
    expected = reference_trace()
    assert len(expected) == 272
    # WHEN a simulation with a waveform is submitted
    job_id = submit(api, owner, picorv32, "simulation",
                    {"testbench": "testbench_ez.v", "waveform": True})
    job = wait_status(api, owner, picorv32, job_id)
    # THEN it completed, and the log holds the whole bus trace in order
    assert job["status"] == "completed", (job, logs_of(api, owner, picorv32, job_id))
    lines = logs_of(api, owner, picorv32, job_id).splitlines()
    trace = [line for line in lines if line in set(expected)]
    assert trace == expected
    # AND the job records the files, tools and command lines it ran
    assert {i["path"] for i in job["inputs"]} == {"picorv32.v", "testbench_ez.v"}
    assert all(len(i["sha256"]) == 64 and i["version"] >= 1 for i in job["inputs"])
    assert [s["argv"][0] for s in job["steps"]][:2] == ["iverilog", "stdbuf"]
    assert job["steps"][1]["argv"][:5] == ["stdbuf", "-oL", "-eL", "vvp", "-n"]
    assert "+vcd" in job["steps"][1]["argv"]
    assert job["tool_versions"].get("iverilog")
    # AND a VCD waveform was kept and can be downloaded
    waves = [a for a in job["artifacts"] if a["kind"] == "waveform"]
    assert waves and waves[0]["size_bytes"] > 1000
    body = artifact(api, owner, picorv32, job_id, waves[0]["name"])
    assert body.lstrip().startswith(b"$") and b"$enddefinitions" in body


def test_picorv32_synthesis_reports_a_plausible_cell_count(
        api: Api, owner: UserCtx, picorv32: dict[str, Any], runner: RunnerProcess) -> None:
    # WHEN picorv32 is synthesised with yosys' generic flow
    job_id = submit(api, owner, picorv32, "synthesis",
                    {"top": "picorv32", "files": ["picorv32.v"]})
    job = wait_status(api, owner, picorv32, job_id, timeout=600)
    # THEN the job completed with a stat report whose cell count is in picorv32's range
    # (this is the suite's one picorv32 synthesis: the runner tier's own went, it checked the same)
    assert job["status"] == "completed", (job, logs_of(api, owner, picorv32, job_id)[-3000:])
    stat = json.loads(artifact(api, owner, picorv32, job_id, "stat.json"))
    summary = job["summary"]["synthesis"]
    # Yosys 0.23 `synth -flatten` gives 8035 generic gates here. The register file alone is
    # 32 x 32 flip-flops (yosys maps the small memory to FFs), so >= 1024 FFs; the whole core in
    # generic gates stays well inside 5,000..12,000 across yosys versions.
    assert 5_000 <= summary["cells"] <= 12_000, job["summary"]
    assert summary["flip_flops"] >= 1024, job["summary"]
    assert stat["cells"] == summary["cells"]
    assert {a["name"] for a in job["artifacts"]} == {"stat.json", "netlist.json", "netlist.v"}
    kinds = {a["kind"] for a in job["artifacts"]}
    assert {"stat", "netlist_json", "netlist_verilog"} <= kinds


def test_picorv32_lint_returns_diagnostics_json(
        api: Api, owner: UserCtx, picorv32: dict[str, Any], runner: RunnerProcess) -> None:
    # WHEN picorv32 is linted with verilator -Wall
    job_id = submit(api, owner, picorv32, "lint",
                    {"tool": "verilator", "top": "picorv32", "files": ["picorv32.v"]})
    job = wait_status(api, owner, picorv32, job_id, timeout=300)
    # THEN the diagnostics come back as JSON with project-relative paths
    assert job["status"] in ("completed", "failed"), job
    reply = api.get(f"/api/v1/projects/{picorv32['id']}/jobs/{job_id}/artifacts/diagnostics.json",
                    token=owner.token)
    assert reply.status == 200
    diagnostics = reply.json if reply.json is not None else json.loads(
        artifact(api, owner, picorv32, job_id, "diagnostics.json"))
    assert diagnostics, "verilator -Wall finds warnings in picorv32"
    first = diagnostics[0]
    assert {"file", "line", "column", "severity", "code", "message"} <= set(first)
    assert first["file"] == "picorv32.v" and first["line"] > 0


def test_a_syntax_error_fails_with_the_file_and_line(
        api: Api, owner: UserCtx, runner: RunnerProcess) -> None:
    # GIVEN a design with a syntax error on line 2
    project = make_project(api, owner)
    make_file(api, owner, project["id"], "rtl/bad.v", "module bad;\n  wire x = ;\nendmodule\n")
    # WHEN it is simulated
    job_id = submit(api, owner, project, "simulation", {"testbench": "rtl/bad.v"})
    job = wait_status(api, owner, project, job_id)
    # THEN the job failed with the compiler's message naming the file and line
    assert job["status"] == "failed"
    assert "bad.v:2" in job["error_message"], job["error_message"]


def test_cancel_kills_a_running_simulation_and_the_runner_goes_on(
        api: Api, owner: UserCtx, runner: RunnerProcess) -> None:
    # GIVEN a simulation that never ends, running
    project = make_project(api, owner)
    make_file(api, owner, project["id"], "tb/forever_tb.v", FOREVER_TB)
    job_id = submit(api, owner, project, "simulation", {"testbench": "tb/forever_tb.v"})
    wait_for(lambda: " vvp -n " in logs_of(api, owner, project, job_id), timeout=120,
             what="the simulation to start")
    # WHEN it is cancelled
    reply = api.delete(f"/api/v1/projects/{project['id']}/jobs/{job_id}", token=owner.token)
    assert reply.status == 202, reply.body
    # THEN the runner kills the tool and records the job cancelled
    job = wait_status(api, owner, project, job_id, timeout=30)
    assert job["status"] == "cancelled", job
    # AND the same runner runs the next job
    make_file(api, owner, project["id"], "tb/slow_tb.v", SLOW_TB.replace("8000000", "10"))
    nxt = submit(api, owner, project, "simulation", {"testbench": "tb/slow_tb.v"})
    assert wait_status(api, owner, project, nxt)["status"] == "completed"


def simulations_on_own_queue(api: Api, owner: UserCtx, tb_path: str, tb: str, count: int = 1,
                             visibility: int = 5) -> tuple[Queues, dict[str, Any], list[int]]:
    """A private queue pair (3 receives, `visibility` s) for a runner of the test's own, a new
    project of `owner` holding the testbench `tb` at `tb_path`, and `count` simulations of it
    submitted to that queue; returns (queues, project, job ids)."""
    queues = make_queues(max_receives=3, visibility=visibility)
    with api_queue(queues.url):
        project = make_project(api, owner)
        make_file(api, owner, project["id"], tb_path, tb)
        ids = [submit(api, owner, project, "simulation", {"testbench": tb_path})
               for _ in range(count)]
    return queues, project, ids


def test_a_runner_killed_mid_job_leaves_it_recoverable(
        api: Api, owner: UserCtx, tmp_path: Path, emulator: Any) -> None:
    # GIVEN a runner (on its own queue) in the middle of a few-seconds simulation. The lease
    # (the visibility timeout) must outlast the new runner's way from receive to its first
    # heartbeat, several emulator calls that take seconds each on a loaded host: with 2 s the
    # message bounced to the DLQ and the job was failed while the second runner ran it.
    queues, project, [job_id] = simulations_on_own_queue(api, owner, "tb/slow_tb.v", SLOW_TB,
                                                         visibility=8)
    # (one process: a supervisor's slots would go on after its SIGKILL; test_runner_slots.py)
    first = RunnerProcess(queues, tmp_path / "first.log", A6HUB_RUNNER_CONCURRENCY="1")
    wait_for(lambda: " vvp -n " in logs_of(api, owner, project, job_id), timeout=120,
             what="the simulation to start")
    # WHEN the runner is killed with SIGKILL (no chance to clean up)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    assert job_of(api, owner, project, job_id)["status"] == "running"
    # THEN a new runner takes the job over once the message and the lease lapse, and finishes it
    second = RunnerProcess(queues, tmp_path / "second.log")
    try:
        job = wait_status(api, owner, project, job_id, timeout=180)
    finally:
        assert second.stop() == 0
    assert job["status"] == "completed", (job, second.output()[-2000:])
    assert job["attempts"] == 2
    assert "slow done" in logs_of(api, owner, project, job_id)
    assert queues.depth() == 0


# grace seconds -> (testbench, the job's status after the runner exits, a line of its log,
# messages left in the queue)
SIGTERM_CASES = {
    # no grace: the running job goes back to pending and its message back to the queue at once
    "no grace releases the job": ("0", "tb/forever_tb.v", FOREVER_TB, "pending",
                                  "released back to the queue", 1),
    # a generous grace: the job finishes before the runner exits, and it takes no other message
    "grace lets the job finish": ("120", "tb/slow_tb.v", SLOW_TB, "completed", "slow done", 0),
}


@pytest.mark.parametrize("slots", ["1", "2"], ids=["one process", "2 slot processes"])
@pytest.mark.parametrize("case", list(SIGTERM_CASES), ids=list(SIGTERM_CASES))
def test_sigterm_mid_job_exits_cleanly(api: Api, owner: UserCtx, tmp_path: Path, emulator: Any,
                                       case: str, slots: str) -> None:
    grace, tb_path, tb, status, log_line, left = SIGTERM_CASES[case]
    # GIVEN a runner with a shutdown grace, running a simulation: one process, or a supervisor
    # of 2 slot processes (runner/slots.py), one of them running it and the other polling
    queues, project, [job_id] = simulations_on_own_queue(api, owner, tb_path, tb)
    runner = RunnerProcess(queues, tmp_path / "runner.log", A6HUB_RUNNER_STOP_GRACE_SECONDS=grace,
                           A6HUB_RUNNER_CONCURRENCY=slots)
    wait_for(lambda: " vvp -n " in logs_of(api, owner, project, job_id), timeout=120,
             what="the simulation to start")
    # WHEN it receives SIGTERM (what ECS sends before stopping a task)
    code = runner.stop()
    # THEN it exits 0 and leaves the job and the queue as the grace says
    assert code == 0, runner.output()[-2000:]
    job = job_of(api, owner, project, job_id)
    assert job["status"] == status, job
    assert log_line in logs_of(api, owner, project, job_id)
    assert queues.depth() == left


def test_sigterm_releases_every_job_a_two_slot_runner_holds(
        api: Api, owner: UserCtx, tmp_path: Path, emulator: Any) -> None:
    # GIVEN a runner with 2 slots (A6HUB_RUNNER_CONCURRENCY: a supervisor of two slot processes)
    # running two never-ending simulations
    queues, project, ids = simulations_on_own_queue(api, owner, "tb/forever_tb.v", FOREVER_TB,
                                                    count=2)
    runner = RunnerProcess(queues, tmp_path / "runner.log", A6HUB_RUNNER_CONCURRENCY="2",
                           A6HUB_RUNNER_STOP_GRACE_SECONDS="0")
    for job_id in ids:
        wait_for(lambda job_id=job_id: " vvp -n " in logs_of(api, owner, project, job_id),
                 timeout=120, what=f"simulation {job_id} to start")
    assert [job_of(api, owner, project, i)["status"] for i in ids] == ["running", "running"]
    # WHEN it receives SIGTERM
    code = runner.stop()
    # THEN it exits 0, both jobs are pending again and both messages are back in the queue
    assert code == 0, runner.output()[-2000:]
    assert [job_of(api, owner, project, i)["status"] for i in ids] == ["pending", "pending"]
    for job_id in ids:
        assert "released back to the queue" in logs_of(api, owner, project, job_id)
    assert queues.visible() == 2


def test_a_no_cache_run_stores_the_key_it_computed_beside_the_tools(
        api: Api, owner: UserCtx, runner: RunnerProcess) -> None:
    # GIVEN a small design
    project = make_project(api, owner, name="no_cache key")
    make_file(api, owner, project["id"], "tb.v",
              "module tb; initial begin $display(\"no cache %0d\", 7); $finish; end endmodule\n")
    config = {"testbench": "tb.v"}
    # WHEN it runs with no_cache (its key is computed while the tools run, not before them)
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": "simulation", "config": config, "no_cache": True})
    assert reply.status == 201, reply.body
    first = wait_status(api, owner, project, str(reply.json["id"]))
    assert first["status"] == "completed", first
    assert "no cache 7" in logs_of(api, owner, project, str(first["id"]))
    assert "cache key " in logs_of(api, owner, project, str(first["id"]))
    # THEN the same job submitted again without no_cache is that run's result, not a new run
    second = wait_status(api, owner, project, submit(api, owner, project, "simulation", config))
    assert second["status"] == "completed", second
    assert second["summary"]["cache"]["hit"] is True
    assert second["summary"]["cache"]["job_id"] == first["id"]
