"""bench/waveform.py stays runnable: its quick mode (a ~2 MB trace) prints every row."""

from __future__ import annotations

from tests.bench.quick_run import quick_table


def test_quick_waveform_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the waveform bench runs on a small trace
    # THEN it succeeds (the API's window agrees with vcdvcd's) and prints each row, within budget
    table = quick_table("bench.waveform", "a6hub waveform bench")
    for measure in ("VCD / FST size", "first signals page", "10 signals, last 1000 cycles",
                    "SVG of 10 signals"):
        assert measure in table, table
    assert "MISSED" not in table, table
