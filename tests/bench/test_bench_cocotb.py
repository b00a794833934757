"""bench/cocotb_jobs.py stays runnable: its quick mode on its own stack (emulator, API, one runner)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_cocotb_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the cocotb bench runs on tiny sizes
    out = subprocess.run([sys.executable, "-m", "bench.cocotb_jobs", "--quick"], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=280)
    # THEN it succeeds (every job it submitted completed, every run by hand passed) with each row
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout[out.stdout.index("a6hub cocotb jobs bench"):]
    for measure in ("picorv32 cocotb tests (2), POST -> completed seen", "by hand",
                    "overhead of the service", "compile / test step"):
        assert measure in table, table
