"""Every case of tests/fixtures/hdl_cases (copied from ../shared/cases/hdl) through the API and a
real `python -m runner`, each with the exact outcome a person gets from the tools by hand.

The expected values were taken by running iverilog/vvp, verilator and yosys by hand on the same
files from the project root (the corpus test, test_hdl_corpus.py, does that inside the test).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from runner.execute import execute_job
from runner.limits import MIB, Limits
from tests.conftest import Api, UserCtx
from tests.hdl_support import CASES, case, project_files, run_uploaded, tool_lines, upload_project
from tests.jobs_support import staged, wait_for
from tests.runner.test_jobs_e2e import (  # noqa: F401 - fixtures
    artifact,
    logs_of,
    queues,
    runner,
    submit,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("runner")]


def run_case(api: Api, owner: UserCtx, name: str,
             **config: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    spec = case(name)
    return run_uploaded(api, owner, project_files(CASES / name), spec["job_type"],
                        {**spec["config"], **config})


def waveforms(job: dict[str, Any]) -> list[str]:
    return [a["name"] for a in job["artifacts"] if a["kind"] == "waveform"]


# What the simulation prints, exactly: the lines iverilog + vvp print by hand from the project root.
PRINTS = {
    "define-string-value": ["define: de ef"],
    "include-also-compiled": ["sum=17"],
    "include-dir-header-only-folder": ["q=abc width=12"],
    "package-compile-order": ["r=cc"],
    "timescale-file-order": ["t=6000 y=1"],
    "utf8-bom-sources": ["a=0 y=1"],
}


def test_every_case_has_a_test() -> None:
    cases = {p.name for p in CASES.iterdir() if p.is_dir()}
    tested = set(PRINTS) | {n.removeprefix("test_case_").replace("_", "-")
                            for n in globals() if n.startswith("test_case_")}
    assert len(cases) == 14 and cases <= tested, cases - tested


@pytest.mark.parametrize(("name", "printed"), sorted(PRINTS.items()))
def test_simulation_cases_print_what_the_tools_print_by_hand(
        api: Api, owner: UserCtx, name: str, printed: list[str]) -> None:
    _, job, log = run_case(api, owner, name)
    assert job["status"] == "completed", (job["error_message"], log)
    assert tool_lines(log) == printed, log


def test_case_timescale_file_order(api: Api, owner: UserCtx) -> None:
    # the same default timescale under Verilator, and with config.timescale given
    for config in ({"simulator": "verilator"}, {"timescale": "1ns/1ps"}):
        _, job, log = run_case(api, owner, "timescale-file-order", **config)
        assert job["status"] == "completed", log
        assert "t=6000 y=1" in tool_lines(log), log


def test_case_dumpfile_into_project_folder(api: Api, owner: UserCtx) -> None:
    project, job, log = run_case(api, owner, "dumpfile-into-project-folder")
    assert job["status"] == "completed", log
    assert tool_lines(log) == ["VCD info: dumpfile sim/tb_count.vcd opened for output.", "n=10"]
    assert waveforms(job) == ["sim_tb_count.vcd"]
    vcd = artifact(api, owner, project, job["id"], "sim_tb_count.vcd")
    assert b"$scope module tb_count $end" in vcd and b"#100" in vcd


def test_case_lint_needs_timing(api: Api, owner: UserCtx) -> None:
    project, job, log = run_case(api, owner, "lint-needs-timing")
    assert job["status"] == "completed", log
    assert "--timing" in job["steps"][0]["argv"]
    diagnostics = json.loads(artifact(api, owner, project, job["id"], "diagnostics.json"))
    # verilator --lint-only -Wall --timing blinker.v tb_ok.v, by hand: these two warnings
    assert [(d["severity"], d["code"], d["file"], d["line"]) for d in diagnostics] == [
        ("warning", "UNUSEDSIGNAL", "tb_ok.v", 2), ("warning", "BLKSEQ", "tb_ok.v", 4)]


def test_case_log_cap_no_reason_in_log(api: Api, owner: UserCtx) -> None:
    project, job, _ = run_case(api, owner, "log-cap-no-reason-in-log")
    assert job["status"] == "failed"
    assert job["error_message"] == "simulate: log limit of 2 MiB exceeded"
    assert job["log_truncated"] is True
    base = f"/api/v1/projects/{project['id']}/jobs/{job['id']}/logs"
    reply = api.get(base, token=owner.token)
    assert reply.json["truncated"] is True
    whole, offset = "", 0
    while True:  # the logs route answers in pieces: read to the end
        piece = api.get(f"{base}?offset={offset}", token=owner.token).json
        whole += piece["logs"]
        if piece["next_offset"] == offset or piece["next_offset"] >= piece["size_bytes"]:
            break
        offset = piece["next_offset"]
    lines = whole.splitlines()
    assert lines[-1] == "[a6hub] job failed: simulate: log limit of 2 MiB exceeded"
    assert lines[-2] == ("[a6hub] tool output stopped here: log limit of 2 MiB exceeded "
                         "(the rest was not kept)")
    first = lines.index("line 0: the quick brown fox jumps over the lazy dog")
    assert lines[first - 1].startswith("$ stdbuf -oL -eL vvp")
    # the commands and the tools' output fill the 2 MiB cap exactly; the runner's lines come on top
    start, stop = whole.index("$ iverilog"), whole.index("\n[a6hub] tool output stopped here")
    assert len(whole[start:stop].encode()) == 2 * 1024 * 1024


def test_case_lost_output_on_kill(api: Api, owner: UserCtx) -> None:
    # GIVEN the never-ending simulation, running
    spec = case("lost-output-on-kill")
    project = upload_project(api, owner, project_files(CASES / "lost-output-on-kill"))
    job_id = submit(api, owner, project, spec["job_type"], spec["config"])
    # THEN what it printed at time 0 reaches the log while it runs (a block-buffered vvp never
    # shows it: this wait would time out)
    wait_for(lambda: "phase 2 ok" in logs_of(api, owner, project, job_id), timeout=120,
             what="the simulation's first lines")
    # WHEN it is cancelled
    assert api.delete(f"/api/v1/projects/{project['id']}/jobs/{job_id}", token=owner.token).status == 202
    job = wait_status(api, owner, project, job_id, timeout=60)
    # THEN the three lines are in the log of the cancelled job
    assert job["status"] == "cancelled"
    assert tool_lines(logs_of(api, owner, project, job_id)) == [
        "reset released", "phase 1 ok", "phase 2 ok"]


def test_case_lost_output_on_kill_by_the_cpu_limit(tmp_path: Path) -> None:
    # GIVEN the same simulation under a 2 s CPU limit (SIGXCPU, then SIGKILL)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tb_hang.v").write_bytes((CASES / "lost-output-on-kill" / "tb_hang.v").read_bytes())
    chunks: list[bytes] = []
    with staged(tmp_path) as dirs:
        outcome = execute_job("simulation", {"testbench": "tb_hang"}, dirs,
                              Limits(cpu_seconds=2, wall_seconds=60, memory_bytes=512 * MIB),
                              chunks.append, threading.Event())
    log = b"".join(chunks).decode()
    # THEN the job failed naming the limit and kept every line printed before it
    assert outcome.status == "failed" and outcome.error_message == "simulate: CPU time limit of 2 s exceeded"
    assert tool_lines(log) == ["reset released", "phase 1 ok", "phase 2 ok"]


def test_case_module_lifetime_top_detection(api: Api, owner: UserCtx) -> None:
    project, job, log = run_case(api, owner, "module-lifetime-top-detection")
    assert job["status"] == "completed", log
    assert ["-s", "tb_parity"] == job["steps"][0]["argv"][4:6]
    assert [line for line in tool_lines(log) if line.startswith("b=")] == [
        "b=00000111 p=1", "b=11110000 p=0"]
    assert waveforms(job) == ["waveform.vcd"]
    vcd = artifact(api, owner, project, job["id"], "waveform.vcd")
    assert b"$scope module tb_parity $end" in vcd


def test_case_synth_empty_design(api: Api, owner: UserCtx) -> None:
    _, job, log = run_case(api, owner, "synth-empty-design")
    assert job["status"] == "failed"
    assert job["error_message"].startswith("nothing to synthesise: the design has no modules"), job
    assert "not valid JSON" not in log


def test_case_synth_reads_testbench(api: Api, owner: UserCtx) -> None:
    project, job, log = run_case(api, owner, "synth-reads-testbench")
    assert job["status"] == "completed", log
    synthesis = job["summary"]["synthesis"]
    # yosys -p 'read_verilog pwm_unit.v; synth -top pwm_unit -flatten; stat', by hand: 29 cells, 5 $_DFF_P_
    assert (synthesis["cells"], synthesis["flip_flops"]) == (29, 5)
    assert [i["path"] for i in job["summary"]["files"]] == ["pwm_unit.v"]
    assert "$finish" not in log


def test_case_waveform_suppressed_by_other_dumpvars(api: Api, owner: UserCtx) -> None:
    project, job, log = run_case(api, owner, "waveform-suppressed-by-other-dumpvars")
    assert job["status"] == "completed", log
    assert "q=10" in tool_lines(log)
    assert waveforms(job) == ["waveform.vcd"]
    vcd = artifact(api, owner, project, job["id"], "waveform.vcd")
    assert b"$scope module tb_b $end" in vcd and b"tb_a" not in vcd
