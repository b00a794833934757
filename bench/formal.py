"""Formal jobs through the service (POST -> final status seen) next to the same tools by hand.

Three checks: a counter whose assertion fails at step 6 (bmc, depth 20: the model, the solver
run and the counterexample trace, whose VCD the service also indexes as FST), a mod-10 counter
proved by 4-induction (base case and induction step), and the same proved by ABC's PDR. "By
hand" runs the very command lines and scripts the runner writes (runner/kinds/formal.py plan_formal) in a
scratch directory, without the sandbox, the queue or the API.

`python -m bench.formal [--quick]` runs it on its own stack with one `python -m runner`;
`run(stack)` returns the table rows (`python -m bench --only formal`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.jobs import Client, runner_process
from bench.report import Row, format_table, ms, percentile
from bench.stack import Stack, running_stack

RUNS = 10

FAILING = """module counter (input logic clk, input logic rst, output logic [3:0] count);
  always_ff @(posedge clk)
    if (rst) count <= 4'd0;
    else count <= count + 4'd1;
`ifdef FORMAL
  reg past_valid = 1'b0;
  always @(posedge clk) past_valid <= 1'b1;
  initial assume (rst);
  always @(*) if (past_valid) assert (count != 4'd5);
`endif
endmodule
"""
MOD10 = """module mod10 (input logic clk, input logic rst, output logic [3:0] count);
  initial count = 4'd0;
  always_ff @(posedge clk)
    if (rst || count == 4'd9) count <= 4'd0;
    else count <= count + 4'd1;
`ifdef FORMAL
  always @(*) assert (count <= 4'd9);
`endif
endmodule
"""

CASES: list[tuple[str, dict[str, str], dict[str, Any], str]] = [
    ("counter fails at step 6, bmc depth 20", {"counter.sv": FAILING},
     {"mode": "bmc", "depth": 20}, "failed"),
    ("mod-10 counter, prove by 4-induction", {"mod10.sv": MOD10},
     {"mode": "prove", "depth": 4}, "completed"),
    ("mod-10 counter, prove by ABC pdr", {"mod10.sv": MOD10},
     {"mode": "prove", "engine": "abc_pdr"}, "completed"),
]


def by_hand(files: dict[str, str], config: dict[str, Any]) -> tuple[float, str]:
    """The runner's own scripts and command lines (plan_formal), run in a scratch directory."""
    from chalicelib.schemas.job_configs import FormalConfig
    from runner.kinds.formal import plan_formal, read_pdr, replay_step

    work = Path(tempfile.mkdtemp(prefix="a6hub-bench-formal-"))
    try:
        for path, text in files.items():
            (work / path).write_text(text)
        gen = work / "gen"
        gen.mkdir()
        model = FormalConfig.model_validate(config)
        plan = plan_formal(model, work, str(gen))
        for name, text in plan.generated.items():
            (gen / name).write_text(text)
        (work / "_a6hub").mkdir()
        started = time.perf_counter()
        outputs = {}
        for step in plan.steps:
            proc = subprocess.run(step.argv, cwd=work, capture_output=True, text=True, check=False)
            outputs[step.name] = proc.stdout
        frame = read_pdr(outputs.get("pdr", ""))["frame"]
        if frame is not None:
            subprocess.run(replay_step(frame).argv, cwd=work, capture_output=True, check=False)
        if "basecase" in outputs and "FAILED" in outputs["basecase"]:
            subprocess.run(["vcd2fst", "_a6hub/trace.vcd", "_a6hub/trace.fst"], cwd=work,
                           capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        return elapsed, "\n".join(outputs.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _submit(client: Client, project_id: int, config: dict[str, Any]) -> int:
    status, job = client.http.request("POST", f"/api/v1/projects/{project_id}/jobs",
                                      {"job_type": "formal", "config": config}, client.token)
    assert status == 201, job
    return int(job["id"])


def bench_case(client: Client, runs: int, name: str, files: dict[str, str],
               config: dict[str, Any], expected: str) -> Row:
    project_id = client.project(files)
    for _ in range(2):  # warm the page cache, the runner's imports and connections
        by_hand(files, config)
        client.wait(project_id, _submit(client, project_id, config))
    raw = [by_hand(files, config)[0] for _ in range(runs)]
    api: list[float] = []
    tools: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        job = client.wait(project_id, _submit(client, project_id, config))
        api.append(time.perf_counter() - started)
        assert job["status"] == expected, (job["status"], job["error_message"])
        tools.append(sum(float(s["duration_s"]) for s in job["steps"]))
    over = statistics.median(api) - statistics.median(raw)
    return Row(f"formal: {name}, median / p90 ms ({runs} runs)",
               f"{ms(statistics.median(api))} / {ms(percentile(api, 90))}",
               f"by hand {ms(statistics.median(raw))} / {ms(percentile(raw, 90))}; "
               f"service overhead {ms(over)}; tools in the sandbox {ms(statistics.median(tools))}")


def run(stack: Stack, quick: bool = False) -> list[Row]:
    runs = 2 if quick else RUNS
    with runner_process(stack):
        client = Client(stack)
        try:
            return [bench_case(client, runs, *case) for case in CASES]
        finally:
            client.http.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.formal", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="a6hub-bench-formal-"))
    started = time.monotonic()
    with running_stack(args.workers, logs) as stack:
        rows = run(stack, quick=args.quick)
    print(format_table(rows, f"a6hub formal bench ({'quick' if args.quick else 'full'}; "
                             f"{os.cpu_count()} cores; {time.monotonic() - started:.0f} s; "
                             f"logs in {logs})"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
