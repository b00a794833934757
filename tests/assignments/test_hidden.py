"""Which paths are hidden and what of a message a student may read (pure functions)."""

from __future__ import annotations

import pytest

from chalicelib.models.jobs import Job
from chalicelib.services.assignments.hidden import (
    MAX_MESSAGE_CHARS,
    UNNAMED,
    WITHHELD,
    defined_names,
    hidden_runs,
    is_hidden,
    scrub,
    show_name,
)
from chalicelib.services.assignments.results import step_outcome

pytestmark = pytest.mark.unit

HIDDEN = b"""\
module tb;
  initial begin
    if (count !== 4'd10) $fatal(1, "count is %0d, expected ten (SECRET_CHECK_42)", count);
  end
endmodule
"""


@pytest.mark.parametrize(("path", "hidden"), [
    ("hidden/tb.v", True), ("hidden/a/b.py", True), ("hidden", True), ("secret.v", True),
    ("hiddenx/tb.v", False), ("rtl/hidden/tb.v", False), ("secret.vh", False),
])
def test_a_path_is_hidden_when_it_is_or_lies_under_a_hidden_path(path: str, hidden: bool) -> None:
    assert is_hidden(path, ["hidden/", "secret.v"]) is hidden


@pytest.mark.parametrize("message", [
    'if (count !== 4\'d10) $fatal(1, "count is %0d"',  # a source line
    "count is 3, expected ten (SECRET_CHECK_42)",  # what the testbench printed, formatted
    "expected   ten   (SECRET_CHECK_42)",  # re-spaced
    HIDDEN.decode(),  # the whole file
])
def test_a_message_quoting_the_hidden_text_is_withheld(message: str) -> None:
    assert scrub(message, hidden_runs([HIDDEN])) == WITHHELD


def test_a_message_of_the_students_own_passes_capped() -> None:
    runs = hidden_runs([HIDDEN])
    assert scrub("assert 3 == 5", runs) == "assert 3 == 5"
    assert scrub(None, runs) is None
    long = "x y " * 500
    assert scrub(long, runs) == long[:MAX_MESSAGE_CHARS] + " ..."


def test_hidden_text_too_large_to_scan_withholds_every_message() -> None:
    runs = hidden_runs([b"a" * 2_000_000])
    assert runs is None
    assert scrub("anything", runs) == WITHHELD


def test_a_student_sees_only_test_names_the_hidden_files_define() -> None:
    module = b"import cocotb\n\n@cocotb.test()\nasync def counts_up(dut):\n    pass\n" \
             b"def  helper (x):\n    return x\n# def in_a_comment(\n"
    names = defined_names([module, HIDDEN])
    assert names == {"counts_up", "helper"}
    assert show_name("counts_up", names) == "counts_up"
    # a name the design printed into the log (hex of the hidden text) is not shown
    assert show_name(b"SECRET_CHECK_42".hex(), names) == UNNAMED


def _job(steps: list[dict[str, object]]) -> Job:
    return Job(1, 1, steps=steps)


@pytest.mark.parametrize(("status", "steps", "said"), [
    ("passed", [{"name": "simulate", "exit_code": 0}], None),
    ("failed", [{"name": "compile", "exit_code": 0}, {"name": "simulate", "exit_code": 1}],
     "step 'simulate' exited with 1"),
    ("failed", [{"name": "compile", "exit_code": None,
                 "limit": "CPU time limit of 10 s exceeded"}],
     "step 'compile': CPU time limit of 10 s exceeded"),
    ("failed", [], "failed before its tools ran"),
    ("cancelled", [], "cancelled (a job it needs did not pass, or the pipeline was cancelled)"),
])
def test_a_failure_in_outcome_mode_is_told_in_the_runners_words_only(
        status: str, steps: list[dict[str, object]], said: str | None) -> None:
    assert step_outcome(status, _job(steps)) == said
