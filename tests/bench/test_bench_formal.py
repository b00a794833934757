"""bench/formal.py stays runnable: its quick mode on its own stack (emulator, API, one runner)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_formal_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the formal bench runs on tiny sizes
    out = subprocess.run([sys.executable, "-m", "bench.formal", "--quick"], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=280)
    # THEN it succeeds (every job ended as expected) and prints a row per check
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout[out.stdout.index("a6hub formal bench"):]
    for measure in ("counter fails at step 6, bmc depth 20", "prove by 4-induction",
                    "prove by ABC pdr"):
        assert measure in table, table
    assert "by hand" in table and "service overhead" in table, table
