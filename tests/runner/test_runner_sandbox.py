"""Runner tier: execute_job with the real tools inside bubblewrap, including hostile designs.

No AWS: each test materialises a job directory (src/ holding the project's files), calls
`runner.execute.execute_job` directly and inspects the ExecutionResult, the log and the host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import runner.sandbox
from chalicelib.errors import Unprocessable
from chalicelib.schemas.job_configs import parse_job_config
from runner.execute import ExecutionResult, SandboxUnavailable, execute_job
from runner.limits import MIB, Limits
from runner.sandbox import LogBudget, Sandbox
from runner.settings import job_limits
from tests.jobs_support import stage_of, staged, wait_for

SECRET = "plant-XYZ-" + uuid.uuid4().hex[:8]
SMALL = Limits(cpu_seconds=10, wall_seconds=20, memory_bytes=512 * MIB, file_bytes=4 * MIB,
               processes=16, log_bytes=256 * 1024)

COUNTER = """\
module counter(input clk, input rst, output reg [3:0] q);
  always @(posedge clk) if (rst) q <= 0; else q <= q + 1;
endmodule
"""
COUNTER_TB = """\
`timescale 1ns/1ps
module counter_tb;
  reg clk = 0, rst = 1;
  wire [3:0] q;
  counter dut(.clk(clk), .rst(rst), .q(q));
  always #5 clk = ~clk;
  initial begin
    #12 rst = 0;
    #100 $display("counter q=%0d", q);
    $finish;
  end
endmodule
"""


def make_job(tmp_path: Path, files: dict[str, str], name: str = "job") -> Path:
    workdir = tmp_path / name
    for rel, text in files.items():
        path = workdir / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (workdir / "src").mkdir(parents=True, exist_ok=True)
    return workdir


def run(workdir: Path, job_type: str, config: dict, limits: Limits = SMALL,
        cancelled: threading.Event | None = None) -> tuple[ExecutionResult, str]:
    chunks: list[bytes] = []
    with staged(workdir) as dirs:
        outcome = execute_job(job_type, config, dirs, limits, chunks.append,
                              cancelled or threading.Event())
    return outcome, b"".join(chunks).decode(errors="replace")


def everything_written(workdir: Path, log: str) -> str:
    """The log plus every artifact's bytes: what a user could read back."""
    parts = [log]
    for path in (workdir / "out").rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(parts)


def a_normal_job_still_completes(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB},
                       name=f"after-{uuid.uuid4().hex[:6]}")
    outcome, log = run(workdir, "simulation", {"testbench": "tb/counter_tb.v"})
    assert outcome.status == "completed", (outcome.error_message, log)
    assert "counter q=" in log


@pytest.fixture
def planted_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The runner's own credentials, as ECS would give them, and a world-readable host file."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA" + SECRET)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/" + SECRET)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.2/" + SECRET)
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o644)
    yield secret_file


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


# --- config validation -----------------------------------------------------------------------

@pytest.mark.parametrize(("job_type", "config", "expected"), [
    ("simulation", {"testbench": "tb.v", "simulator": "questa"}, "supported simulators: icarus, verilator"),
    ("simulation", {"testbench": "-otb"}, "config.testbench"),
    ("simulation", {"testbench": "tb.v", "files": ["../../etc/passwd.v"]}, "config.files.0"),
    ("simulation", {"testbench": "tb.v", "files": ["/etc/x.v"]}, "config.files.0"),
    ("simulation", {"testbench": "tb.v", "plusargs": ["-vpi"]}, "config.plusargs"),
    ("simulation", {"testbench": "tb.v", "defines": {"X": "1 -o /tmp/x"}}, "config.defines"),
    ("simulation", {"testbench": "tb.v", "defines": {"-X": "1"}}, "config.defines"),
    ("simulation", {"testbench": "tb.v", "timescale": "1ns/1ps; x"}, "config.timescale"),
    ("simulation", {"testbench": "tb.v", "simulator": "verilator", "max_sim_time": 10}, "icarus"),
    ("synthesis", {"top": "top; !sh"}, "config.top"),
    ("synthesis", {"family": "asic"}, "config.family"),
    ("lint", {"tool": "verilator", "flags": ["-x"]}, "config.flags"),
    ("fpga_bitstream", {}, "job_type must be one of"),
])
def test_bad_configs_are_refused_with_a_422_naming_the_field(job_type: str, config: dict,
                                                            expected: str) -> None:
    # GIVEN a config a user could send / WHEN it is parsed / THEN 422 names what is wrong
    with pytest.raises(Unprocessable) as err:
        parse_job_config(job_type, config)
    assert err.value.status_code == 422
    assert expected in err.value.detail


def test_good_configs_are_accepted() -> None:
    sim = parse_job_config("simulation", {
        "testbench": "tb/counter_tb.v", "simulator": "verilator", "defines": {"WIDTH": 8, "MODE": "8'hFF"},
        "plusargs": ["+vcd", "seed=3"], "timescale": "1ns / 1ps", "waveform": True})
    assert sim.model_dump()["plusargs"] == ["vcd", "seed=3"]
    assert parse_job_config("synthesis", {"top": "picorv32", "family": "ice40"})
    assert parse_job_config("lint", None)


# --- ordinary jobs ---------------------------------------------------------------------------

def test_simulation_runs_and_records_commands_versions_and_inputs(tmp_path: Path) -> None:
    # GIVEN a counter and its testbench
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    # WHEN simulated
    outcome, log = run(workdir, "simulation", {"testbench": "tb/counter_tb.v"})
    # THEN it completes with the testbench's output and a reproducible record
    assert outcome.status == "completed", log
    assert "counter q=" in log
    assert [s.name for s in outcome.steps] == ["compile", "simulate"]
    assert outcome.steps[0].argv[:2] == ["iverilog", "-g2012"]
    assert "$ iverilog -g2012" in log and "$ stdbuf -oL -eL vvp -n" in log
    assert outcome.tool_versions["iverilog"].startswith("Icarus Verilog version")
    assert {f["path"] for f in outcome.summary["files"]} == {"rtl/counter.v", "tb/counter_tb.v"}
    assert all(len(f["sha256"]) == 64 for f in outcome.summary["files"])


def test_defines_plusargs_timescale_and_max_sim_time(tmp_path: Path) -> None:
    # GIVEN a testbench that never finishes by itself and reads a define and a plusarg
    tb = """\
module tb;
  integer n;
  initial begin
    if (!$value$plusargs("n=%d", n)) n = -1;
    $display("define=%0d plusarg=%0d", `WIDTH, n);
    #7 $display("unit=%0t", $time);
  end
  always #1 ;
endmodule
"""
    workdir = make_job(tmp_path, {"tb.v": tb})
    # WHEN simulated with a define, a plusarg, a timescale and a simulated-time limit
    outcome, log = run(workdir, "simulation", {
        "testbench": "tb", "defines": {"WIDTH": 12}, "plusargs": ["n=5"],
        "timescale": "1us/1ns", "max_sim_time": 50})
    # THEN all four reached the simulation and the watchdog stopped it
    assert outcome.status == "completed", log
    assert "define=12 plusarg=5" in log
    assert "unit=7000" in log  # 7 us printed in the 1 ns precision
    assert "max_sim_time 50 reached" in log


def test_waveform_without_dumpvars_gets_a_generated_dump(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    outcome, log = run(workdir, "simulation", {"testbench": "tb/counter_tb.v", "waveform": True})
    assert outcome.status == "completed", log
    [vcd] = [a for a in outcome.artifacts if a.kind == "waveform"]
    assert vcd.name == "waveform.vcd"
    assert vcd.path.parent == workdir / "out"
    assert "$enddefinitions" in vcd.path.read_text()
    # AND vcd2fst, run in the sandbox after the simulation, kept the same trace as FST beside it
    [fst] = [a for a in outcome.artifacts if a.kind == "waveform_fst"]
    assert (fst.name, fst.mime) == ("waveform.fst", "application/x-fst")
    assert outcome.steps[-1].name == "waveform_index" and outcome.steps[-1].exit_code == 0
    assert outcome.summary["waveforms_indexed"] == 1
    import pywellen
    from vcdvcd import VCDVCD

    in_fst = {v.full_name for v in pywellen.Waveform(str(fst.path)).all_vars()}
    assert in_fst == {name.split("[")[0] for name in VCDVCD(str(vcd.path), only_sigs=True).signals}


def test_syntax_error_fails_with_the_tools_message_and_file_line(tmp_path: Path) -> None:
    bad = "module bad;\n  reg x\n  initial x = 1;\nendmodule\n"
    workdir = make_job(tmp_path, {"rtl/bad.v": bad})
    outcome, log = run(workdir, "simulation", {"testbench": "bad"})
    assert outcome.status == "failed"
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("compile failed (exit")
    assert "rtl/bad.v:3: syntax error" in outcome.error_message
    assert "/job/" not in outcome.error_message

    outcome, log = run(workdir, "synthesis", {"top": "bad"})
    assert outcome.status == "failed"
    assert "rtl/bad.v:3" in (outcome.error_message or ""), log

    outcome, log = run(workdir, "simulation", {"testbench": "bad", "simulator": "verilator"})
    assert outcome.status == "failed"
    assert "%Error: rtl/bad.v:3" in (outcome.error_message or ""), log


def test_missing_testbench_file_fails_clearly(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER})
    outcome, _ = run(workdir, "simulation", {"testbench": "tb/nope.v"})
    assert outcome.status == "failed"
    assert outcome.error_message == "testbench file not found in the project: tb/nope.v"


def test_synthesis_produces_stat_and_netlists(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER})
    outcome, log = run(workdir, "synthesis", {"top": "counter"})
    assert outcome.status == "completed", log
    kinds = {a.kind: a for a in outcome.artifacts}
    assert set(kinds) == {"stat", "netlist_json", "netlist_verilog"}
    stat = json.loads(kinds["stat"].path.read_text())
    assert stat["flip_flops"] == 4  # a 4-bit counter
    assert stat["cells"] == sum(stat["cells_by_type"].values())
    assert stat["wires"] > 0 and "area" in stat
    assert "module counter" in kinds["netlist_verilog"].path.read_text()
    assert "counter" in json.loads(kinds["netlist_json"].path.read_text())["modules"]
    assert outcome.tool_versions["yosys"].startswith("Yosys ")


def test_synthesis_for_an_fpga_family(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER})
    outcome, log = run(workdir, "synthesis", {"top": "counter", "family": "ice40"})
    assert outcome.status == "completed", log
    assert any(cell.startswith("SB_") for cell in outcome.summary["synthesis"]["cells_by_type"])


def test_lint_yields_diagnostics_with_project_paths(tmp_path: Path) -> None:
    design = "module top(input a, input b, output y);\n  wire unused;\n  assign y = a;\nendmodule\n"
    workdir = make_job(tmp_path, {"rtl/top.v": design})
    for tool in ("verilator", "icarus"):
        outcome, log = run(workdir, "lint", {"tool": tool})
        assert outcome.status == "completed", log
        [artifact] = outcome.artifacts
        diagnostics = json.loads(artifact.path.read_text())
        if tool == "verilator":
            unused = [d for d in diagnostics if d["code"] == "UNUSEDSIGNAL"]
            assert unused and unused[0]["file"] == "rtl/top.v"
            assert unused[0]["severity"] == "warning" and unused[0]["line"] in (1, 2)
            assert set(unused[0]) == {"file", "line", "column", "severity", "code", "message"}
        assert all(not d["file"].startswith("/") for d in diagnostics)


def test_lint_of_a_syntax_error_fails_with_an_error_diagnostic(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/bad.v": "module bad;\n  wire x\nendmodule\n"})
    outcome, _ = run(workdir, "lint", {})
    assert outcome.status == "failed"
    diagnostics = json.loads((workdir / "out" / "diagnostics.json").read_text())
    errors = [d for d in diagnostics if d["severity"] == "error"]
    assert errors and errors[0]["file"] == "rtl/bad.v" and errors[0]["line"] == 3
    assert "rtl/bad.v:3" in (outcome.error_message or "")


# --- hostile jobs: reading ---------------------------------------------------------------------

def test_host_files_environment_and_runner_code_are_invisible(tmp_path: Path, planted_secrets: Path) -> None:
    # GIVEN a testbench that tries to read /etc/passwd, its own environment, the runner's
    # source, a world-readable host file and files above its directory
    runner_source = Path(runner.sandbox.__file__).resolve()
    targets = ["/etc/passwd", "/etc/shadow", "/proc/self/environ", "/proc/1/environ", str(runner_source),
               str(planted_secrets), "../../../../etc/hostname", "../src/../../etc/passwd",
               os.path.expanduser("~/.aws/credentials"), "/work/main/runner/sandbox.py"]
    reads = "\n".join(
        f'    fd = $fopen("{t}", "r"); $display("open {t} fd=%0d", fd);\n'
        f'    if (fd != 0) begin while ($fgets(line, fd)) $write("read: %0s", line); $fclose(fd); end'
        for t in targets)
    tb = f"""\
module tb;
  integer fd;
  reg [8*4096-1:0] line;
  reg [31:0] mem [0:15];
  initial begin
{reads}
    $readmemh("{planted_secrets}", mem);
    $readmemh("/etc/passwd", mem);
    $display("done reading");
    $finish;
  end
endmodule
"""
    workdir = make_job(tmp_path, {"tb.v": tb})
    # WHEN it runs
    outcome, log = run(workdir, "simulation", {"testbench": "tb.v"})
    # THEN it ran to the end, sees no host file, and its /proc/self/environ holds only PATH/HOME/LANG
    # (vvp's "$readmemh: Unable to open" for the host files fails the job although vvp exits 0)
    assert "done reading" in log
    assert outcome.status == "failed", log
    assert (outcome.error_message or "").startswith("simulation reported an error (exit 0): ERROR: ")
    in_sandbox = ("/proc/self/environ", "/proc/1/environ")  # the tool's own and bwrap's (empty)
    for target in targets:
        if target not in in_sandbox:
            assert f"open {target} fd=0" in log, target
    assert "open /proc/self/environ fd=0" not in log
    assert "PATH=/usr/bin:/bin" in log  # the tool's own, cleared environment
    leaked = everything_written(workdir, log)
    assert SECRET not in leaked
    assert "AWS_" not in leaked
    assert "root:x:0:0" not in leaked
    assert "Run one tool command inside bubblewrap" not in leaked  # runner/sandbox.py docstring
    a_normal_job_still_completes(tmp_path)


@pytest.mark.parametrize("include", ["/etc/passwd", "/proc/self/environ", "../../../etc/passwd",
                                     "HOST_SECRET"])
def test_include_of_outside_paths_is_contained(tmp_path: Path, planted_secrets: Path, include: str) -> None:
    path = str(planted_secrets) if include == "HOST_SECRET" else include
    tb = f'module tb;\n`include "{path}"\n  initial $finish;\nendmodule\n'
    workdir = make_job(tmp_path, {"tb.v": tb})
    outcome, log = run(workdir, "simulation", {"testbench": "tb.v"})
    leaked = everything_written(workdir, log)
    assert SECRET not in leaked and "root:x:0:0" not in leaked
    if include == "/proc/self/environ":
        # the file exists inside the sandbox: it is the tool's empty environment, not Verilog
        assert outcome.status == "failed" and "AWS_" not in leaked
    else:
        assert outcome.status == "failed"
        assert "Include file" in (outcome.error_message or "") and "not found" in outcome.error_message
    a_normal_job_still_completes(tmp_path)


def test_no_network_inside_the_sandbox(tmp_path: Path) -> None:
    # GIVEN a TCP server on the host's loopback
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        uid = runner.sandbox.sandbox_uid()
        dirs_sandbox = Sandbox(stage_of(tmp_path / "net"), SMALL, sandboxed=True, uid=uid)
        chunks: list[bytes] = []
        script = ("import socket\n"
                  f"try:\n  socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')\n"
                  "except OSError as e:\n  print('refused', e)\n"
                  "print(open('/proc/net/dev').read())\n")
        # WHEN a process in the sandbox tries to reach it
        result = dirs_sandbox.run(["/usr/bin/python3", "-c", script], LogBudget(65536, sink=chunks.append),
                                  threading.Event())
        dirs_sandbox.dirs.remove_stage()
    finally:
        server.close()
    out = b"".join(chunks).decode()
    # THEN it cannot: its network namespace has only a loopback of its own
    assert result.exit_code == 0, out
    assert "CONNECTED" not in out and "refused" in out
    interfaces = {line.split(":")[0].strip() for line in out.splitlines()[3:] if ":" in line}
    assert interfaces == {"lo"}


# --- hostile jobs: writing ---------------------------------------------------------------------

def test_writes_outside_the_work_dir_do_not_reach_the_host(tmp_path: Path) -> None:
    # GIVEN a testbench writing to absolute paths, parents, its own sources and a dump above it
    host_tmp = f"/tmp/a6hub-escape-{uuid.uuid4().hex}"
    host_dir = tmp_path / "host-target.txt"
    targets = [host_tmp, "../escape.txt", "../../escape.txt", "/job/src/tb.v", "/job/escape.txt",
               "tb.v", str(host_dir), "/escape.txt", "/usr/escape.txt"]
    writes = "\n".join(f'    fd = $fopen("{t}", "w"); $display("open {t} fd=%0d", fd);'
                       f' if (fd != 0) begin $fdisplay(fd, "pwned"); $fclose(fd); end' for t in targets)
    tb = f"""\
module tb;
  integer fd;
  reg r = 0;
  initial begin
{writes}
    $display("done writing");
    $dumpfile("../escape.vcd");
    $dumpvars(0, tb);
    #1 r = 1;
    $finish;
  end
endmodule
"""
    workdir = make_job(tmp_path, {"tb.v": tb})
    original = (workdir / "src" / "tb.v").read_text()
    # WHEN it runs
    outcome, log = run(workdir, "simulation", {"testbench": "tb.v"})
    # THEN none of the writes exist on the host, and the sources are untouched (the VCD that
    # could not be opened outside the work dir fails the job: vvp only says so and exits 0)
    assert "done writing" in log
    assert outcome.status == "failed", log
    assert "VCD Error" in (outcome.error_message or "")
    for target in targets[1:]:
        if target != "tb.v":  # the tools' cwd is a writable copy of the project: that may change
            assert f"open {target} fd=0" in log, target
    assert f"open {host_tmp} fd=0" not in log  # it wrote to the sandbox's private /tmp...
    assert "Unable to open ../escape.vcd for output" in log
    assert not os.path.exists(host_tmp)  # ...which is not the host's
    assert not host_dir.exists()
    assert not (tmp_path / "escape.txt").exists() and not (workdir / "escape.txt").exists()
    assert not (workdir / "escape.vcd").exists() and not (tmp_path / "escape.vcd").exists()
    assert (workdir / "src" / "tb.v").read_text() == original
    assert sorted(os.listdir(workdir)) == ["out", "src"]
    assert not any(a.kind == "waveform" for a in outcome.artifacts)
    a_normal_job_still_completes(tmp_path)


def test_symlinks_a_tool_plants_are_not_followed_by_the_runner(tmp_path: Path, planted_secrets: Path) -> None:
    # GIVEN a simulation (verilator would allow $system; here the sandbox itself plants links)
    # whose work dir ends up holding a .vcd symlink to a host secret and a FIFO
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    uid = runner.sandbox.sandbox_uid()
    dirs = stage_of(workdir)
    sandbox = Sandbox(dirs, SMALL, sandboxed=True, uid=uid)
    chunks: list[bytes] = []
    result = sandbox.run(["/bin/sh", "-c", f"ln -s {planted_secrets} leak.vcd; mkfifo pipe.vcd; "
                          f"ln -s / root; ls -la"], LogBudget(65536, sink=chunks.append), threading.Event())
    assert result.exit_code == 0, chunks
    from runner.execute import JobRun
    from runner.kinds import KINDS, simulation
    job = JobRun(KINDS["simulation"], sandbox, SMALL, chunks.append, threading.Event())
    # WHEN the runner collects waveforms
    simulation.collect_waveforms(job, True)
    dirs.remove_stage()
    # THEN neither the link nor the FIFO became an artifact (and collection did not block)
    assert job.result.artifacts == []
    assert not list((workdir / "out").iterdir())


def test_a_user_file_named_like_a_script_is_not_executed(tmp_path: Path) -> None:
    # GIVEN a project holding yosys/tcl/shell/make scripts with commands, and odd file names
    scripts = {
        "synth.ys": "!touch /job/work/pwned-ys\nread_verilog rtl/counter.v\n",
        "run.tcl": "exec touch /job/work/pwned-tcl\n",
        "Makefile": "all:\n\ttouch /job/work/pwned-make\n",
        "run.sh": "touch /job/work/pwned-sh\n",
        "rtl/counter.v": COUNTER,
        "-s.v": "module evil; endmodule\n",
    }
    workdir = make_job(tmp_path, scripts)
    # WHEN synthesised and linted
    outcome, log = run(workdir, "synthesis", {"top": "counter"})
    lint, lint_log = run(workdir, "lint", {"top": "counter"})
    # THEN only the runner's generated script ran, and the '-s.v' file was not taken as a flag
    assert outcome.status == "completed", log
    assert lint.status == "completed", lint_log
    assert "$ yosys -Q -s /job/gen/synth.ys" in log
    assert "pwned" not in log and "pwned" not in lint_log
    assert "-s.v" not in log  # outside counter's hierarchy: not compiled, never an argument
    assert outcome.summary["generated"]["synth.ys"].startswith('read_verilog -sv -I "." "rtl/counter.v"')


# --- hostile jobs: limits ----------------------------------------------------------------------

SPIN = "module tb;\n  reg r = 0;\n  initial forever r = ~r;\nendmodule\n"


def _cpu_limit_names_the_step(outcome: ExecutionResult, log: str) -> None:
    assert outcome.steps[-1].limit == "CPU time limit of 1 s exceeded"


def _log_stops_at_the_cap_and_says_why(outcome: ExecutionResult, log: str) -> None:
    assert outcome.log_truncated is True
    # the tools' output stops at the cap; the runner's own lines come after it, and say why
    tool_output = log.split("\n[a6hub] tool output stopped here")[0]
    assert 60 * 1024 < len(tool_output.encode()) <= 64 * 1024
    assert log.splitlines()[-1] == "[a6hub] job failed: simulate: log limit of 64 KiB exceeded"
    assert "[a6hub] tool output stopped here: log limit of 64 KiB exceeded" in log


ENDLESS_OUTPUT_TB = ('module tb;\n  initial forever begin $display("spam spam spam spam"); #1; end\n'
                     'endmodule\n')
HUGE_MEMORY_TB = ("module tb;\n  reg [31:0] mem [0:(1<<27)-1];\n  initial begin mem[3] = 1; $finish; end\n"
                  "endmodule\n")
HUGE_FILE_TB = """\
module tb;
  integer fd, i;
  initial begin
    fd = $fopen("big.txt", "w");
    for (i = 0; i < 1000000; i = i + 1) $fdisplay(fd, "0123456789012345678901234567890123456789");
    $finish;
  end
endmodule
"""
# 32 files of 1 MiB, each under the file size limit, together over the disk limit
MANY_FILES_TB = """\
module tb;
  integer fd, f, i;
  reg [8*16-1:0] name;
  initial begin
    for (f = 0; f < 32; f = f + 1) begin
      $sformat(name, "fill%0d.txt", f);
      fd = $fopen(name, "w");
      for (i = 0; i < 16384; i = i + 1) $fdisplay(fd, "%063d", i);
      $fclose(fd);
    end
    $finish;
  end
endmodule
"""

# (testbench, limits, the job's error message, further checks on the outcome and log)
LIMIT_CASES = {
    "cpu": (SPIN, Limits(cpu_seconds=1, wall_seconds=60, log_bytes=65536),
            "simulate: CPU time limit of 1 s exceeded", _cpu_limit_names_the_step),
    "wall time": (SPIN, Limits(cpu_seconds=120, wall_seconds=2, log_bytes=65536),
                  "simulate: wall time limit of 2 s exceeded", None),
    "log": (ENDLESS_OUTPUT_TB, Limits(log_bytes=64 * 1024, wall_seconds=60, cpu_seconds=60),
            "simulate: log limit of 64 KiB exceeded", _log_stops_at_the_cap_and_says_why),
    "memory": (HUGE_MEMORY_TB, Limits(memory_bytes=256 * MIB),
               "simulate: memory limit of 256 MiB exceeded", None),
    "file size": (HUGE_FILE_TB, Limits(file_bytes=1 * MIB),
                  "simulate: file size limit of 1 MiB exceeded", None),
    "disk": (MANY_FILES_TB, Limits(file_bytes=2 * MIB, disk_bytes=8 * MIB),
             "simulate: disk limit of 8 MiB exceeded", None),
}


@pytest.mark.parametrize("case", list(LIMIT_CASES), ids=list(LIMIT_CASES))
def test_a_hostile_simulation_hits_its_limit(tmp_path: Path, case: str) -> None:
    tb, limits, message, further = LIMIT_CASES[case]
    # GIVEN a testbench that exceeds one limit
    workdir = make_job(tmp_path, {"tb.v": tb})
    # WHEN it runs under that limit
    outcome, log = run(workdir, "simulation", {"testbench": "tb"}, limits)
    # THEN the job fails naming the limit, and the sandbox still runs a normal job afterwards
    assert outcome.status == "failed", log[-2000:]
    assert outcome.error_message == message
    if further:
        further(outcome, log)
    a_normal_job_still_completes(tmp_path)


def test_tool_chosen_waveform_names_become_plain_artifact_names(tmp_path: Path) -> None:
    tb = ('module tb;\n  reg r = 0;\n  initial begin $dumpfile("_my wave$1.vcd"); $dumpvars(0, tb);'
          ' #1 r = 1; $finish; end\nendmodule\n')
    workdir = make_job(tmp_path, {"tb.v": tb})
    outcome, log = run(workdir, "simulation", {"testbench": "tb"})
    assert outcome.status == "completed", log
    assert [a.name for a in outcome.artifacts] == ["my_wave_1.vcd", "my_wave_1.fst"]


def test_cancel_kills_the_whole_tool_tree(tmp_path: Path) -> None:
    # GIVEN a simulation spinning forever, tagged with a unique plusarg we can look for
    marker = f"marker_{uuid.uuid4().hex}"
    workdir = make_job(tmp_path, {"tb.v": SPIN})
    cancelled = threading.Event()
    seen_running: list[bool] = []

    def cancel_when_running() -> None:
        try:
            wait_for(lambda: _processes_with(marker), timeout=60, every=0.05, what="vvp to run")
            seen_running.append(True)
        finally:
            cancelled.set()

    threading.Thread(target=cancel_when_running, daemon=True).start()
    # WHEN it is cancelled while vvp runs (only the cancel can end it: it never finishes, and
    # the limits are far off)
    outcome, _ = run(workdir, "simulation", {"testbench": "tb", "plusargs": [marker]},
                     Limits(wall_seconds=120, cpu_seconds=120), cancelled=cancelled)
    # THEN execute_job returns "cancelled" and no process of the job is left
    assert seen_running == [True]
    assert outcome.status == "cancelled"
    assert _processes_with(marker) == []
    a_normal_job_still_completes(tmp_path)


def test_a_job_cancelled_before_it_starts_runs_nothing(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    cancelled = threading.Event()
    cancelled.set()
    outcome, _ = run(workdir, "simulation", {"testbench": "tb/counter_tb.v"}, cancelled=cancelled)
    assert outcome.status == "cancelled" and outcome.steps == []


def test_missing_bubblewrap_refuses_unless_explicitly_unsandboxed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    monkeypatch.setattr(runner.sandbox, "bwrap_path", lambda: None)
    monkeypatch.delenv("A6HUB_RUNNER_UNSANDBOXED", raising=False)
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        run(workdir, "simulation", {"testbench": "tb/counter_tb.v"})
    assert not (workdir / "out").exists()
    monkeypatch.setenv("A6HUB_RUNNER_UNSANDBOXED", "1")
    outcome, log = run(workdir, "simulation", {"testbench": "tb/counter_tb.v"})
    assert outcome.status == "completed", log
    assert "WITHOUT a sandbox" in log


def test_an_unusable_bubblewrap_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a bwrap that exists but cannot create namespaces (as on Fargate)
    bin_dir = Path(tempfile.mkdtemp(prefix="a6hub-fake-bwrap-"))  # reachable by the sandbox uid
    bin_dir.chmod(0o755)
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(runner.sandbox, "bwrap_path", lambda: str(fake))
    monkeypatch.setattr(runner.sandbox, "_probe", {})
    monkeypatch.delenv("A6HUB_RUNNER_UNSANDBOXED", raising=False)
    # WHEN the runner checks it / THEN it says why and refuses to run jobs
    assert runner.sandbox.sandbox_problem() == (
        "bubblewrap cannot run here (bwrap: No permissions to create new namespace)")
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER})
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
        run(workdir, "lint", {})
    shutil.rmtree(bin_dir)


def test_stages_left_by_a_killed_runner_are_removed_once_old(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_DIR", str(tmp_path / "stages"))
    old = stage_of(make_job(tmp_path, {"a.v": COUNTER}, name="old"))
    fresh = stage_of(make_job(tmp_path, {"a.v": COUNTER}, name="fresh"))
    (old.work / "locked").mkdir(mode=0)  # a tool may leave directories without permissions
    long_ago = time.time() - 7200
    os.utime(old.stage, (long_ago, long_ago))
    assert runner.sandbox.remove_stale_stages(3600) == 1
    assert not old.stage.exists() and fresh.stage.exists()
    fresh.remove_stage()


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A6HUB_RUNNER_WALL_SECONDS", "7")
    monkeypatch.setenv("A6HUB_RUNNER_MEMORY_BYTES", str(64 * MIB))
    limits = job_limits()
    assert limits.wall_seconds == 7 and limits.memory_bytes == 64 * MIB
    assert limits.cpu_seconds == Limits().cpu_seconds
    monkeypatch.setenv("A6HUB_RUNNER_PROCESSES", "-1")
    with pytest.raises(ValueError, match="A6HUB_RUNNER_PROCESSES"):
        job_limits()


# --- verilator (compiles C++: slow) ---------------------------------------------------------------

@pytest.mark.slow
def test_verilator_binary_simulation_works(tmp_path: Path) -> None:
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    outcome, log = run(workdir, "simulation", {"testbench": "tb/counter_tb.v", "simulator": "verilator"},
                       Limits(wall_seconds=300, cpu_seconds=300))
    assert outcome.status == "completed", log
    assert "$ verilator --binary" in log and "counter q=" in log
    assert outcome.tool_versions["verilator"].startswith("Verilator 5")


@pytest.mark.slow
def test_verilator_system_calls_and_a_fork_bomb_stay_in_the_sandbox(
        tmp_path: Path, planted_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a testbench using verilator's $system to look around, write outside, and fork-bomb,
    # run under a uid of its own so we can look for survivors afterwards
    uid = 300000 + secrets_below(60000)
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_UID", str(uid))
    host_tmp = f"/tmp/a6hub-escape-{uuid.uuid4().hex}"
    tb = f"""\
module tb;
  // each result is used: verilator drops a $system whose result is overwritten unused
  integer rc1, rc2, rc3, rc4;
  initial begin
    rc1 = $system("id; env; cat /etc/passwd {planted_secrets} ~/.aws/credentials");
    rc2 = $system("tr '\\\\000' ' ' </proc/1/environ; ls / /job");
    rc3 = $system("echo pwned > /job/src/pwned; echo pwned > {host_tmp}; echo pwned > /job/pwned");
    rc4 = $system("f() {{ f | f & }}; f; sleep 1; echo bomb-done");
    $display("system returned %0d %0d %0d %0d", rc1, rc2, rc3, rc4);
    $finish;
  end
endmodule
"""
    workdir = make_job(tmp_path, {"tb.v": tb})
    # WHEN it is compiled and run with a process limit
    outcome, log = run(workdir, "simulation", {"testbench": "tb.v", "simulator": "verilator"},
                       Limits(wall_seconds=120, cpu_seconds=120, processes=32))
    # THEN it ran as the sandbox's uid with the cleared environment, saw and wrote nothing of the
    # host, the fork bomb hit the process limit, and nothing of it survives the job
    assert "uid=1000" in log, log
    assert "system returned" in log
    assert "Cannot fork" in log or "Resource temporarily unavailable" in log
    leaked = everything_written(workdir, log)
    assert SECRET not in leaked and "root:x:0:0" not in leaked and "AWS_" not in leaked
    assert not os.path.exists(host_tmp)
    assert sorted(os.listdir(workdir / "src")) == ["tb.v"]
    assert _processes_of_uid(uid) == []
    monkeypatch.delenv("A6HUB_RUNNER_SANDBOX_UID")
    a_normal_job_still_completes(tmp_path)


def secrets_below(n: int) -> int:
    return int.from_bytes(os.urandom(4), "big") % n


def _processes_of_uid(uid: int) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        # a zombie is dead: bubblewrap's namespace init lingers so until the host's pid 1 reaps it
        if str(uid) in fields.get("Uid", "").split() and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(pid))
    return found


# --- picorv32 (a real core nobody here wrote) -------------------------------------------------------

@pytest.fixture(scope="module")
def picorv32(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import pythondata_cpu_picorv32

    data = Path(pythondata_cpu_picorv32.data_location)
    return {"rtl/picorv32.v": (data / "picorv32.v").read_text(),
            "tb/testbench_ez.v": (data / "testbench_ez.v").read_text()}


BUS_TRACE = re.compile(r"^(ifetch|write |read  ) 0x[0-9a-f]{8}: 0x[0-9a-f]{8}( \(wstrb=[01]{4}\))?$")


@pytest.mark.slow
def test_picorv32_testbench_ez_prints_its_272_line_bus_trace_and_a_vcd(
        tmp_path: Path, picorv32: dict[str, str]) -> None:
    # GIVEN picorv32 and testbench_ez (no firmware: a 6-instruction loop in the testbench)
    workdir = make_job(tmp_path, picorv32)
    # WHEN simulated with iverilog + vvp, asking for a waveform
    outcome, log = run(workdir, "simulation", {"testbench": "tb/testbench_ez.v", "waveform": True},
                       Limits())
    # THEN the log holds exactly the 272 bus transactions run by hand, and the testbench's own
    # `+vcd` dump became the waveform artifact
    assert outcome.status == "completed", outcome.error_message
    trace = [line for line in log.splitlines() if BUS_TRACE.match(line)]
    assert len(trace) == 272
    assert trace[0] == "ifetch 0x00000000: 0x3fc00093"
    assert trace[3] == "write  0x000003fc: 0x00000000 (wstrb=1111)"
    assert "$ stdbuf -oL -eL vvp -n _a6hub/sim.vvp +vcd" in log
    [vcd] = [a for a in outcome.artifacts if a.kind == "waveform"]
    assert vcd.name == "testbench.vcd"
    header = vcd.path.read_text()[:200_000]
    assert "$scope module uut $end" in header and "$enddefinitions" in header


# picorv32's synthesis (cell and flip-flop counts, artifacts) is checked once, end to end, in
# tests/runner/test_jobs_e2e.py: a yosys run of the whole core is the suite's costliest tool run.


@pytest.mark.slow
def test_picorv32_lint_yields_parsed_diagnostics(tmp_path: Path, picorv32: dict[str, str]) -> None:
    workdir = make_job(tmp_path, picorv32)
    outcome, log = run(workdir, "lint", {"top": "picorv32", "files": ["rtl/picorv32.v"]}, Limits())
    assert outcome.status == "completed", log[-2000:]
    diagnostics = json.loads((workdir / "out" / "diagnostics.json").read_text())
    assert diagnostics and outcome.summary["lint"]["diagnostics"] == len(diagnostics)
    assert {d["file"] for d in diagnostics} == {"rtl/picorv32.v"}
    assert all(d["severity"] == "warning" and d["code"] and d["line"] > 0 for d in diagnostics)


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
def test_links_in_a_project_leave_the_modes_and_owners_of_their_targets_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandboxed: bool) -> None:
    # GIVEN host files of the test's own (as /dev/null is the host's) and a project whose
    # src links to them, file and folder: the runner chmods src and chowns work as root
    victim_file = tmp_path / "victim"
    victim_file.write_text("host\n")
    victim_file.chmod(0o600)
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir(mode=0o700)
    before = {p: (p.stat().st_mode, p.stat().st_uid) for p in (victim_file, victim_dir)}
    workdir = make_job(tmp_path, {"rtl/counter.v": COUNTER, "tb/counter_tb.v": COUNTER_TB})
    (workdir / "src" / "tb" / "null.v").symlink_to(victim_file)
    (workdir / "src" / "linked").symlink_to(victim_dir)
    if not sandboxed:
        monkeypatch.setattr(runner.sandbox, "bwrap_path", lambda: None)
        monkeypatch.setenv("A6HUB_RUNNER_UNSANDBOXED", "1")
    # WHEN a job runs over it
    outcome, log = run(workdir, "simulation", {"testbench": "tb/counter_tb.v"})
    # THEN the job ran, and the link targets kept their modes and owners
    assert outcome.status == "completed", log
    assert {p: (p.stat().st_mode, p.stat().st_uid) for p in before} == before
