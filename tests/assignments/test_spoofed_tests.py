"""A student's HDL cannot pass hidden text to the student's results as cocotb test names.

When cocotb's test step stops (a non-zero exit, a limit) or writes no results file, the runner
takes the test list from the step's log (runner/kinds/cocotb.results_from_log), and the log holds
whatever the design under test `$display`s. The student's design reads the hidden test module
(it runs in the same simulation, with the hidden files in its cwd), prints its first line hex
encoded as a `cocotb.regression <name> passed` line and stops the simulator: the "test name"
carries the hidden text past hidden.scrub (hex shares no run with it). It then stops with the
same line hex encoded in its `$fatal` message, which reaches the job's failure message: with the
assignment's default `student_messages: outcome` a student reads only which step failed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.assignments.test_assignments import MARKER, A, accept, make_assignment
from tests.assignments.test_leaks import (  # noqa: F401 - the module's fixtures
    HIDDEN_COCOTB,
    graded_row_of,
    queues,
    runner,
    server,
    student_push,
)
from tests.conftest import Api, make_user
from tests.runner.test_jobs_e2e import RunnerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="the git client is not installed"),
]

PIPELINE = """\
jobs:
  unit:
    type: cocotb
    config: {toplevel: counter, test_modules: [hidden.test_counter]}
"""
# Reads the hidden module's first line (it holds MARKER), prints it as a passed test's name in
# cocotb's own log format, then stops the simulator with a non-zero exit.
SPY = """\
module counter(input clk, input rst, output reg [3:0] count);
  always @(posedge clk) count <= rst ? 4'd0 : count + 4'd1;
  integer fd, n;
  reg [8*64-1:0] line;
  initial begin
    fd = $fopen("hidden/test_counter.py", "r");
    n = $fgets(line, fd);
    $display("cocotb.regression leak.x%h passed", line);
    $fatal(1, "%h", line);
  end
endmodule
"""


def test_a_design_cannot_name_tests_with_the_hidden_text(
        api: Api, server: str, runner: RunnerProcess, tmp_path: Path) -> None:  # noqa: F811
    instructor, student = make_user(api), make_user(api)
    assignment = make_assignment(api, instructor, pipeline=PIPELINE,
                                 extra={"hidden/test_counter.py": HIDDEN_COCOTB})
    aid = int(assignment["id"])
    copy = accept(api, student, assignment)
    _, _, head = student_push(api, student, server, copy, tmp_path, {"rtl/counter.v": SPY},
                              "a counter that reads the hidden tests")
    row = graded_row_of(api, instructor, aid, head, runner)
    assert row["jobs"] == {"unit": "failed"}, row
    reply = api.get(f"{A}/{aid}/results", token=student.token)
    assert reply.status == 200, reply.body
    [latest, *_] = reply.json
    assert latest["commit"] == head
    shown: Any = reply.body.decode()
    assert MARKER.encode().hex() not in shown, shown
    names = {t["name"] for job in latest["jobs"] for t in job["tests"]}
    # the hidden module's real tests keep their names; the planted one is shown unnamed
    assert {"counts_up", "reveals_itself"} <= names, names
    assert "(name withheld: not a test function of the hidden files)" in names, names
    [unit] = latest["jobs"]
    assert unit["message"].startswith("step '") and " exited with " in unit["message"], unit
    assert all(t["message"] is None for t in unit["tests"]), unit
