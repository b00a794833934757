"""bench/completion.py stays runnable: its quick mode on its own stack (emulator, API, runner,
stream pusher), every channel seeing every job complete, nothing lost."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_completion_bench_sees_every_job_through_every_channel() -> None:
    # GIVEN nothing running  WHEN the completion bench runs on tiny sizes
    # THEN it succeeds (each channel saw `completed`) and nothing was lost or duplicated
    table = quick_table("bench.completion", "a6hub completion bench", timeout=600)
    for channel in ("poll (20 ms)", "long-poll", "websocket"):
        assert f"POST -> completed seen, {channel}" in table, table
    assert "nothing lost, duplicated or stuck" in table and " yes " in table, table
