"""bench/build.py stays runnable: its quick mode (a blinky) on its own stack with one runner."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_build_bench_prints_its_row() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.build", "--quick"], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout[out.stdout.index("a6hub build bench"):]
    assert "blinky for iCE40 UP5K: POST build -> completed seen" in table, table
    assert "yosys + nextpnr-ice40 + icepack by hand" in table, table
