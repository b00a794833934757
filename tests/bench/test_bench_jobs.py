"""bench/jobs.py stays runnable: its quick mode on its own stack (emulator, API, one runner)."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_jobs_bench_prints_its_rows() -> None:
    # GIVEN nothing running  WHEN the jobs bench runs on tiny sizes
    # THEN it succeeds (every job it submitted completed) and prints each row
    table = quick_table("bench.jobs", "a6hub jobs bench")
    for measure in ("picorv32 testbench_ez, POST -> completed seen", "overhead of the service",
                    "without the client", "where a job's time goes", "files in, sandbox set-up",
                    "jobs/min with one runner"):
        assert measure in table, table
