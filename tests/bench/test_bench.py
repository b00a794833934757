"""The bench (`make bench`) keeps working: its table, and one whole run on tiny sizes."""

from __future__ import annotations

import pytest

from bench.measure import parse_wrk
from bench.report import Row, format_table, percentile
from tests.bench.quick_run import quick_table

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8000/health
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.46ms    2.01ms  25.10ms   80.00%
  Latency Distribution
     50%    6.12ms
     75%    7.20ms
     90%    8.90ms
     99%  850.00us
  4868 requests in 2.00s, 1.02MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   2433.51
Transfer/sec:    520.77KB
"""


def test_wrk_output_is_parsed() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == pytest.approx(2433.51)
    assert result.p50_ms == pytest.approx(6.12)
    assert result.p99_ms == pytest.approx(0.85)
    assert result.errors == 3


def test_table_lines_up_and_judges_targets() -> None:
    # GIVEN rows with and without a target
    rows = [Row("req/s", "1,234", "uvicorn 2,000", ">= uvicorn", False),
            Row("import", "180 ms", "", "<= 250 ms", True),
            Row("calls", "2")]
    # WHEN printed
    lines = format_table(rows, "title").splitlines()
    # THEN a title, a heading, a rule, one line per row, verdicts where a target exists
    assert lines[0] == "title" and lines[1].startswith("measure")
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert lines[3].endswith("MISSED") and lines[4].endswith("ok") and lines[5].rstrip().endswith("2")
    assert lines[1].index("a6hub") == lines[3].index("1,234")


def test_percentile_picks_from_the_samples() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 50) in (50.0, 51.0)
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


@pytest.mark.slow
def test_quick_bench_prints_every_row() -> None:
    # GIVEN nothing running  WHEN the bench runs on tiny sizes (own emulator, servers, wrk)
    # (the git and jobs suites have their own quick tests)
    table = quick_table("bench", "a6hub bench", "--workers", "2", "--only", "api", timeout=240)
    # THEN it succeeds and prints one table row per benchmark
    for measure in ("GET /health req/s", "GET /api/v1/projects/{id}", "AWS calls per authenticated",
                    "GET /projects/public first page", "AWS calls per list page", "import app"):
        assert measure in table, table
    # AND the call counts (deterministic, unlike timings) meet their targets
    judged = {line.split("  ")[0]: line.rstrip().rsplit(" ", 1)[-1] for line in table.splitlines()}
    assert judged["AWS calls per authenticated GET /projects/{id}"] == "ok", table
    assert judged["AWS calls per list page"] == "ok", table
