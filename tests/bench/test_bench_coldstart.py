"""bench/coldstart.py stays runnable: its quick mode starts one fresh API process per variant
(shared botocore session, and the baseline with one session per client) and prints both."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_coldstart_bench_prints_cold_and_warm_requests_next_to_the_baseline() -> None:
    # GIVEN nothing running  WHEN the cold-start bench runs one fresh process per variant
    # THEN every request has a cold and a warm row, each with the baseline's figure beside it
    table = quick_table("bench.coldstart", "API cold start")
    for request in ("login", "project list", "file GET", "job POST"):
        assert f"{request}, cold" in table and f"{request}, warm" in table, table
    assert table.count("unshared sessions: ") == 12, table
