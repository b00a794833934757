"""bench/throughput.py stays runnable: its quick mode on its own stack (emulator, API, runners)."""

from __future__ import annotations

import pytest

from runner.sandbox import sandbox_problem
from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_throughput_bench_prints_its_rows_and_loses_nothing() -> None:
    # GIVEN nothing running  WHEN the throughput bench runs on tiny sizes
    table = quick_table("bench.throughput", "a6hub runner throughput", timeout=600)
    # THEN it succeeds, prints a row per setting, and every setting lost, duplicated and left
    # nothing (the check's verdict is "ok"; the rate targets depend on the machine's load)
    for setting in ("1 runner(s) x 1 slot(s)", "2 runner(s) x", "AWS calls per job"):
        assert setting in table, table
    checks = [line for line in table.splitlines() if "nothing lost" in line]
    assert len(checks) == 3 and all(line.rstrip().endswith("ok") for line in checks), table
    # AND where bubblewrap runs, the floor of any sandboxed runner is measured beside them
    assert ("floor: the same tools" in table) == (sandbox_problem() is None), table
