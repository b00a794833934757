"""bench/jobs.py stays runnable: its quick mode on its own stack (emulator, API, one runner)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_quick_jobs_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the jobs bench runs on tiny sizes
    out = subprocess.run([sys.executable, "-m", "bench.jobs", "--quick"], cwd=ROOT,
                         env={**os.environ}, capture_output=True, text=True, timeout=280)
    # THEN it succeeds (every job it submitted completed) and prints each row
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout[out.stdout.index("a6hub jobs bench"):]
    for measure in ("picorv32 testbench_ez, POST -> completed seen", "overhead of the service",
                    "without the client", "where a job's time goes", "files in, sandbox set-up",
                    "jobs/min with one runner"):
        assert measure in table, table
