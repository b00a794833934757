"""bench/store.py stays runnable: its quick mode, the store next to moto in one run."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_store_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the store bench runs on tiny sizes
    # THEN the store lost no update (exit 0) and every row is printed next to moto's
    table = quick_table("bench.store", "embedded store", timeout=600)
    for measure in ("updates lost, HTTP 500s", "p50 Get / Query / Transact ms at 10 items",
                    "RSS growth MB per 1k transactions", "snapshot of", "start-up s with that state"):
        assert measure in table, table
    assert table.count("moto") >= 5, table
