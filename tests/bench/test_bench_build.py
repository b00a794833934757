"""bench/build.py stays runnable: its quick mode (a blinky) on its own stack with one runner."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_build_bench_prints_its_row() -> None:
    table = quick_table("bench.build", "a6hub build bench")
    assert "blinky for iCE40 UP5K: POST build -> completed seen" in table, table
    assert "yosys + nextpnr-ice40 + icepack by hand" in table, table
