"""bench/store.py stays runnable: its quick mode, the store next to moto in one run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_store_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the store bench runs on tiny sizes
    out = subprocess.run([sys.executable, "-m", "bench.store", "--quick"], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=600)
    # THEN the store lost no update (exit 0) and every row is printed next to moto's
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = out.stdout[out.stdout.index("embedded store"):]
    for measure in ("updates lost, HTTP 500s", "p50 Get / Query / Transact ms at 10 items",
                    "RSS growth MB per 1k transactions", "snapshot of", "start-up s with that state"):
        assert measure in table, table
    assert table.count("moto") >= 5, table
