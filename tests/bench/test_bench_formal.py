"""bench/formal.py stays runnable: its quick mode on its own stack (emulator, API, one runner)."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_formal_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the formal bench runs on tiny sizes
    # THEN it succeeds (every job ended as expected) and prints a row per check
    table = quick_table("bench.formal", "a6hub formal bench")
    for measure in ("counter fails at step 6, bmc depth 20", "prove by 4-induction",
                    "prove by ABC pdr"):
        assert measure in table, table
    assert "by hand" in table and "service overhead" in table, table
