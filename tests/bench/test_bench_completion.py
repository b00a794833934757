"""bench/completion.py stays runnable: its quick mode on its own stack (emulator, API, runner,
stream pusher), every channel seeing every job complete, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_completion_bench_sees_every_job_through_every_channel() -> None:
    # GIVEN nothing running  WHEN the completion bench runs on tiny sizes
    out = subprocess.run([sys.executable, "-m", "bench.completion", "--quick"], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=600)
    # THEN it succeeds (each channel saw `completed`) and nothing was lost or duplicated
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout[out.stdout.index("a6hub completion bench"):]
    for channel in ("poll (20 ms)", "long-poll", "websocket"):
        assert f"POST -> completed seen, {channel}" in table, table
    assert "nothing lost, duplicated or stuck" in table and " yes " in table, table
