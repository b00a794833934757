"""bench/timeline.py stays runnable: its quick mode on its own stack (emulator, API, an in-process
runner with its phases stamped) prints every phase of picorv32 testbench_ez's jobs."""

from __future__ import annotations

import pytest

from bench.timeline import PHASES
from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_timeline_bench_prints_every_phase() -> None:
    # GIVEN nothing running  WHEN the timeline bench runs two jobs
    # THEN each phase has a row (every stamp was taken: a missing one fails the run)
    table = quick_table("bench.timeline", "a6hub job timeline bench")
    for phase in PHASES:
        assert f"  {phase}: ms after POST" in table, table
    assert "overhead: seen by the long poll - tools by hand" in table, table
