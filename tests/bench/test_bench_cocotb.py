"""bench/cocotb_jobs.py stays runnable: its quick mode on its own stack (emulator, API, one runner)."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_cocotb_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the cocotb bench runs on tiny sizes
    # THEN it succeeds (every job it submitted completed, every run by hand passed) with each row
    table = quick_table("bench.cocotb_jobs", "a6hub cocotb jobs bench")
    for measure in ("picorv32 cocotb tests (2), POST -> completed seen", "by hand",
                    "overhead of the service", "compile / test step"):
        assert measure in table, table
