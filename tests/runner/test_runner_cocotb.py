"""Runner tier: cocotb jobs with the real tools (iverilog, vvp, cocotb 2.1) inside bubblewrap.

No AWS: each test materialises a job directory and calls `runner.execute.execute_job`, as
tests/test_runner_sandbox.py does for Verilog testbenches, hostile ones included.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from defusedxml import ElementTree

import runner.sandbox
from chalicelib.errors import Unprocessable
from chalicelib.schemas.job_configs import parse_job_config
from runner.execute import execute_job
from runner.kinds.cocotb import parse_results, python_error, results_from_log
from runner.limits import MIB, Limits
from tests.jobs_support import stage_of, staged, wait_for
from tests.runner.test_runner_sandbox import (  # noqa: F401 - planted_secrets is a fixture
    SECRET,
    _processes_of_uid,
    a_normal_job_still_completes,
    everything_written,
    make_job,
    planted_secrets,
    run,
    secrets_below,
)

LIMITS = Limits(cpu_seconds=30, wall_seconds=40, memory_bytes=1024 * MIB, file_bytes=4 * MIB,
                processes=16, log_bytes=512 * 1024)

ADDER = """\
module adder #(parameter W = 4) (input [W-1:0] a, input [W-1:0] b, output [W:0] sum);
  assign sum = a + b;
endmodule
"""
TEST_ADDER = """\
import cocotb
from cocotb.triggers import Timer


@cocotb.test()
async def adds_small_numbers(dut):
    dut.a.value = 2
    dut.b.value = 3
    await Timer(1, unit="ns")
    assert dut.sum.value == 5


@cocotb.test()
async def claims_a_wrong_sum(dut):
    dut.a.value = 7
    dut.b.value = 8
    await Timer(1, unit="ns")
    assert dut.sum.value == 16, f"sum was {int(dut.sum.value)}"
"""
CONFIG = {"toplevel": "adder", "test_modules": ["test_adder"]}


def cocotb_job(tmp_path: Path, files: dict[str, str], config: dict, limits: Limits = LIMITS,
               name: str = "job") -> tuple:
    workdir = make_job(tmp_path, files, name=name)
    outcome, log = run(workdir, "cocotb", config, limits)
    return workdir, outcome, log


def test_two_tests_one_passing_one_failing_with_its_assertion_message(tmp_path: Path) -> None:
    # GIVEN an adder and a test module with a passing and a failing test, both under src/ as
    # the web client creates files, and a waveform asked for
    files = {"src/adder.v": ADDER, "src/test_adder.py": TEST_ADDER}
    # WHEN the cocotb job runs
    workdir, outcome, log = cocotb_job(tmp_path, files, {**CONFIG, "waveform": True})
    # THEN the job failed because one test failed, naming it and its assertion message
    assert outcome.status == "failed", log
    assert outcome.error_message.startswith(
        "1 of 2 tests failed; first: test_adder.claims_a_wrong_sum: AssertionError: sum was 15"), \
        outcome.error_message
    # AND each test is on the job with its outcome, duration and message
    tests = outcome.summary["tests"]
    assert [(t["module"], t["name"], t["outcome"]) for t in tests] == [
        ("test_adder", "adds_small_numbers", "passed"), ("test_adder", "claims_a_wrong_sum", "failed")]
    assert tests[0]["message"] is None and tests[0]["duration_s"] >= 0
    assert tests[0]["sim_time_ns"] == 1.0
    assert "sum was 15" in tests[1]["message"] and "== 16" in tests[1]["message"]
    assert outcome.summary["cocotb"] == {"tests": 2, "passed": 1, "failed": 1, "skipped": 0, "listed": 2}
    # AND the JUnit XML, the VCD and its FST index are artifacts
    kinds = {a.name: a.kind for a in outcome.artifacts}
    assert kinds == {"results.xml": "junit", "waveform.vcd": "waveform", "waveform.fst": "waveform_fst"}
    junit = ElementTree.parse(workdir / "out" / "results.xml").getroot()
    assert [c.get("name") for c in junit.iter("testcase")] == ["adds_small_numbers", "claims_a_wrong_sum"]
    assert b"$var" in (workdir / "out" / "waveform.vcd").read_bytes()
    # AND the commands, versions and inputs are recorded, the .py file among the inputs
    assert [s.name for s in outcome.steps] == ["compile", "test", "waveform_index"]
    assert outcome.tool_versions["cocotb"].startswith("cocotb 2.1.0, ")
    assert [f["path"] for f in outcome.summary["files"]] == ["src/adder.v", "src/test_adder.py"]
    assert "testbench Python: /usr/bin/python3" in log


def test_all_tests_passing_completes_the_job(tmp_path: Path) -> None:
    passing = TEST_ADDER.split("@cocotb.test()\nasync def claims")[0]
    _, outcome, log = cocotb_job(tmp_path, {"rtl/adder.v": ADDER, "tb/test_adder.py": passing,
                                            "tb/helper.py": "X = 1\n"},
                                 {**CONFIG, "test_modules": ["tb.test_adder"]})
    assert outcome.status == "completed", (outcome.error_message, log)
    assert [t["outcome"] for t in outcome.summary["tests"]] == ["passed"]
    assert outcome.summary["tests"][0]["module"] == "tb.test_adder"


def test_unsandboxed_where_bubblewrap_cannot_run_the_same_results_come_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a host without bubblewrap, where the operator allowed unsandboxed runs (Fargate)
    monkeypatch.setattr(runner.sandbox, "bwrap_path", lambda: None)
    monkeypatch.setenv("A6HUB_RUNNER_UNSANDBOXED", "1")
    # WHEN the adder's tests run
    _, outcome, log = cocotb_job(tmp_path, {"src/adder.v": ADDER, "src/test_adder.py": TEST_ADDER},
                                 CONFIG)
    # THEN cocotb is read where it is installed and the tests come back as in the sandbox
    assert "WITHOUT a sandbox" in log
    assert [t["outcome"] for t in outcome.summary["tests"]] == ["passed", "failed"], log
    assert "/opt/a6hub/python" not in log


def test_a_syntax_error_in_the_test_module_names_file_and_line(tmp_path: Path) -> None:
    # GIVEN a test module with an unclosed parenthesis on line 5
    bad = "import cocotb\n\n@cocotb.test()\nasync def t(dut):\n    x = (1,\n"
    # WHEN it runs
    _, outcome, log = cocotb_job(tmp_path, {"adder.v": ADDER, "tests/test_bad.py": bad},
                                 {"toplevel": "adder", "test_modules": ["test_bad"]})
    # THEN the job failed with the file, the line and Python's message
    assert outcome.status == "failed"
    assert outcome.error_message == (
        "cocotb wrote no results: tests/test_bad.py:5: SyntaxError: '(' was never closed"), log
    assert outcome.summary["tests"] == []


def test_an_unknown_module_or_toplevel_fails_before_running(tmp_path: Path) -> None:
    _, outcome, _ = cocotb_job(tmp_path, {"adder.v": ADDER}, {**CONFIG, "test_modules": ["test_nope"]})
    assert outcome.status == "failed" and "no project file test_nope.py" in outcome.error_message
    assert outcome.steps == []
    _, outcome, _ = cocotb_job(tmp_path, {"adder.v": ADDER, "test_adder.py": TEST_ADDER},
                               {**CONFIG, "toplevel": "subtractor"}, name="job2")
    assert outcome.status == "failed" and "subtractor" in outcome.error_message


def test_a_hanging_test_is_stopped_by_the_wall_limit_and_reported_as_such(tmp_path: Path) -> None:
    # GIVEN a test module whose second test spins forever in Python
    hangs = TEST_ADDER.split("@cocotb.test()\nasync def claims")[0] + (
        "\n@cocotb.test()\nasync def spins(dut):\n    while True:\n        pass\n")
    limits = Limits(cpu_seconds=60, wall_seconds=6, memory_bytes=1024 * MIB, file_bytes=4 * MIB,
                    processes=16, log_bytes=512 * 1024)
    # WHEN it runs under a 6 s wall limit
    _, outcome, log = cocotb_job(tmp_path, {"adder.v": ADDER, "test_adder.py": hangs}, CONFIG, limits)
    # THEN the job failed on the wall limit while running that test; the first test's pass is kept
    assert outcome.status == "failed"
    assert outcome.error_message == (
        "test: wall time limit of 6 s exceeded while running test_adder.spins"), log
    tests = {t["name"]: t for t in outcome.summary["tests"]}
    assert tests["adds_small_numbers"]["outcome"] == "passed"
    assert tests["spins"]["outcome"] == "failed"
    assert "wall time limit" in tests["spins"]["message"]


def test_cancel_stops_a_running_testbench_within_seconds(tmp_path: Path) -> None:
    # GIVEN a test spinning forever, running
    spins = "import cocotb\n\n@cocotb.test()\nasync def spins(dut):\n    while True:\n        pass\n"
    workdir = make_job(tmp_path, {"adder.v": ADDER, "test_spin.py": spins})
    cancelled, chunks, done = threading.Event(), [], {}

    def job() -> None:
        with staged(workdir) as dirs:
            done["outcome"] = execute_job("cocotb", {"toplevel": "adder",
                                                     "test_modules": ["test_spin"]},
                                          dirs, LIMITS, chunks.append, cancelled)

    worker = threading.Thread(target=job)
    worker.start()
    wait_for(lambda: b"running test_spin.spins" in b"".join(chunks), timeout=60, what="the test to start")
    # WHEN the job is cancelled
    started = time.monotonic()
    cancelled.set()
    worker.join(timeout=30)
    # THEN it ends `cancelled` within seconds, its processes gone
    assert not worker.is_alive()
    assert time.monotonic() - started < 15  # generous: the promise is "within seconds"
    assert done["outcome"].status == "cancelled"


def test_a_cocotb_timeout_fails_that_test_with_its_message(tmp_path: Path) -> None:
    waits = ("import cocotb\nfrom cocotb.triggers import Timer\n\n"
             "@cocotb.test(timeout_time=10, timeout_unit='ns')\n"
             "async def waits_too_long(dut):\n    await Timer(1, unit='us')\n")
    _, outcome, log = cocotb_job(tmp_path, {"adder.v": ADDER, "test_slow.py": waits},
                                 {"toplevel": "adder", "test_modules": ["test_slow"]})
    assert outcome.status == "failed"
    [test] = outcome.summary["tests"]
    assert test["outcome"] == "failed" and "SimTimeoutError" in test["message"], log


def test_a_hostile_testbench_sees_no_host_network_secrets_or_other_jobs(
        tmp_path: Path, planted_secrets: Path,  # noqa: F811 - the imported fixture
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a TCP server on the host's loopback, another job's stage holding a secret, the
    # runner's credentials in its environment (planted_secrets), and a uid we can watch
    uid = 300000 + secrets_below(60000)
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_UID", str(uid))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    other = tmp_path / "other-job"
    (other / "src").mkdir(parents=True)
    (other / "src" / "secret.v").write_text(f"// {SECRET}\n")
    other_dirs = stage_of(other)
    host_tmp = f"{tempfile.gettempdir()}/a6hub-escape-{uuid.uuid4().hex}"
    runner_source = Path(runner.sandbox.__file__).resolve()
    hostile = f"""\
import os, socket, time
import cocotb
from cocotb.triggers import Timer


def attempt(what, action):
    try:
        got = action()
        cocotb.log.info("%s: GOT %r", what, str(got)[:300])
    except Exception as e:
        cocotb.log.info("%s: refused (%s)", what, type(e).__name__)


@cocotb.test()
async def looks_around(dut):
    attempt("shadow", lambda: open("/etc/shadow").read())
    attempt("passwd", lambda: open("/etc/passwd").read())
    attempt("host secret", lambda: open({str(planted_secrets)!r}).read())
    attempt("environment", lambda: sorted(os.environ.items()))
    attempt("init environment", lambda: open("/proc/1/environ").read())
    attempt("runner source", lambda: open({str(runner_source)!r}).read())
    attempt("other job", lambda: open({str(other_dirs.src / 'secret.v')!r}).read())
    attempt("stages", lambda: os.listdir({str(other_dirs.stage.parent)!r}))
    attempt("aws credentials", lambda: open(os.path.expanduser("~/.aws/credentials")).read())
    attempt("loopback", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
    attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
    attempt("write sources", lambda: open("/job/src/pwned", "w").write("x"))
    attempt("write host tmp", lambda: open({host_tmp!r}, "w").write("x"))
    attempt("pip", lambda: __import__("pip"))
    attempt("boto3", lambda: __import__("boto3"))
    await Timer(1, unit="ns")


@cocotb.test()
async def fork_bomb(dut):
    children = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
    except OSError as e:
        cocotb.log.info("fork stopped after %d children: %s", children, e)
"""
    try:
        # WHEN the testbench runs
        workdir, outcome, log = cocotb_job(tmp_path, {"adder.v": ADDER, "test_hostile.py": hostile},
                                           {"toplevel": "adder", "test_modules": ["test_hostile"]})
    finally:
        server.close()
        other_dirs.remove_stage()
    # THEN every attempt was refused (a write to /tmp lands in the sandbox's own tmpfs), the
    # fork bomb hit the process limit, and both tests ended
    for what in ("shadow", "host secret", "runner source", "other job", "stages", "aws credentials",
                 "loopback", "dns", "write sources", "pip", "boto3"):
        assert f"{what}: refused" in log, (what, log)
    assert "fork stopped after" in log and "Resource temporarily unavailable" in log, log
    assert [t["outcome"] for t in outcome.summary["tests"]] == ["passed", "passed"], log
    # AND nothing of the host, the runner's environment or the other job reached the job's output
    leaked = everything_written(workdir, log)
    assert SECRET not in leaked and "AWS_" not in leaked and "root:x:0:0" not in leaked
    assert "Run one tool command inside bubblewrap" not in leaked
    assert not os.path.exists(host_tmp)
    assert sorted(os.listdir(workdir / "src")) == ["adder.v", "test_hostile.py"]
    # AND no process of the job survives it, and the next job runs normally
    assert _processes_of_uid(uid) == []
    monkeypatch.delenv("A6HUB_RUNNER_SANDBOX_UID")
    a_normal_job_still_completes(tmp_path)


# --- units: config, results, log ------------------------------------------------------------------

@pytest.mark.parametrize(("config", "needle"), [
    ({**CONFIG, "simulator": "verilator"}, "Verilator 5.036 or later"),
    ({**CONFIG, "test_modules": []}, "config.test_modules"),
    ({**CONFIG, "test_modules": ["test_adder.py"]}, "without '.py'"),
    ({**CONFIG, "test_modules": ["../x"]}, "must be a Python module name"),
    ({**CONFIG, "test_modules": ["os"]}, "standard library"),
    ({**CONFIG, "test_modules": ["cocotb"]}, "rename the file"),
    ({**CONFIG, "toplevel": "-adder"}, "config.toplevel"),
    ({**CONFIG, "plusargs": ["-vpi"]}, "config.plusargs"),
    ({**CONFIG, "script": "x"}, "config.script"),
    ({"test_modules": ["t"]}, "config.toplevel"),
])
def test_bad_cocotb_configs_are_refused_naming_the_field(config: dict, needle: str) -> None:
    with pytest.raises(Unprocessable) as e:
        parse_job_config("cocotb", config)
    assert needle in e.value.detail


def test_results_with_a_dtd_are_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<testsuites><testsuite><testcase name="x" classname="m">&b;</testcase></testsuite>'
            b'</testsuites>')
    with pytest.raises(ValueError):
        parse_results(bomb)
    assert parse_results(b'<testsuites><testsuite><testcase name="x" classname="m" time="0.5">'
                         b'<skipped message="later"/></testcase></testsuite></testsuites>') == [
        {"name": "x", "module": "m", "outcome": "skipped", "duration_s": 0.5, "sim_time_ns": None,
         "message": "later"}]


def test_log_fallbacks_find_finished_tests_and_the_python_error() -> None:
    log = ("0.00ns INFO cocotb.regression                  running test_a.one (1/2)\n"
           "1.00ns INFO cocotb.regression                  test_a.one passed\n"
           "1.00ns INFO cocotb.regression                  running test_a.two (2/2)\n")
    assert [(t["name"], t["outcome"], t["message"]) for t in results_from_log(log, "stopped")] == [
        ("one", "passed", None), ("two", "failed", "stopped")]
    trace = ('Traceback (most recent call last):\n  File "/opt/a6hub/python/cocotb/x.py", line 3\n'
             '  File "/job/work/tb/test_a.py", line 7, in <module>\n    import nothing\n'
             "ModuleNotFoundError: No module named 'nothing'\n")
    assert python_error(trace, ("/job/work/",)) == (
        "tb/test_a.py:7: ModuleNotFoundError: No module named 'nothing'")


def test_test_names_from_results_or_log_are_kept_short() -> None:
    # GIVEN a testbench that wrote 200 tests with 40 KB names (8 MB: the job's summary would
    # exceed DynamoDB's 400 KB item) into results.xml, or into its log
    huge = "x" * 30_000
    raw = (b"<testsuites><testsuite>" + b"".join(
        f'<testcase name="{huge}{i}" classname="{huge[:10_000]}"/>'.encode() for i in range(200))
        + b"</testsuite></testsuites>")
    log = "".join(f"0.00ns INFO cocotb.regression   {huge}.t{huge}{i} passed\n" for i in range(200))
    for tests in (parse_results(raw), results_from_log(log, None)):
        # THEN every test is there with its names cut, and the whole list fits an item
        assert len(tests) == 200
        assert all(len(t["name"]) <= 200 and len(t["module"]) <= 200 for t in tests)
        assert len(json.dumps(tests)) < 200_000


@pytest.mark.parametrize("raw", [b"<s>" + b"<testcase/>" * 200_000 + b"</s>",
                                 b"<a>" * 150_000 + b"</a>" * 150_000],
                         ids=["many tests", "deep"])
def test_results_with_too_many_elements_are_refused_before_parsing(raw: bytes) -> None:
    # a testbench's own results.xml: 8 MiB of elements took the runner to 400 MB
    with pytest.raises(ValueError, match="more than 100000 elements"):
        parse_results(raw)
    assert len(parse_results(b"<s>" + b"<testcase/>" * 1000 + b"</s>")) == 1000
