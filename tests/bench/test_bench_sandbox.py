"""bench/sandbox.py stays runnable: its quick mode prints every row, each launch next to its
reference (bwrap alone, the tools by hand) from the same run."""

from __future__ import annotations

import pytest

from runner.sandbox import sandbox_problem
from tests.bench.quick_run import quick_table


@pytest.mark.slow
@pytest.mark.skipif(sandbox_problem() is not None, reason="no bubblewrap sandbox on this host")
def test_quick_sandbox_bench_prints_each_launch_next_to_its_reference() -> None:
    # GIVEN a host where the sandbox works  WHEN the sandbox bench runs on tiny sizes
    # THEN it succeeds (every step passed in the sandbox) and prints each row with its reference
    table = quick_table("bench.sandbox", "a6hub sandbox step bench", timeout=300)
    for measure in ("/bin/true step, exec launch: wall ms", "/bin/true step, exec launch: CPU ms",
                    "picorv32 compile (iverilog -g2012) in the sandbox",
                    "picorv32 run (vvp -n testbench_ez) in the sandbox"):
        assert measure in table, table
    assert table.count("preexec launch") == 4 and "bwrap alone" in table and "by hand" in table, table
