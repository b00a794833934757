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

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.jobs import Client, runner_process
from bench.report import Row, ms, percentile
from bench.stack import ROOT, Stack, stack_bench

RUNS = 10
FIXTURES = ROOT / "tests" / "fixtures" / "formal"  # the designs tests/runner/test_formal.py checks

FAILING = (FIXTURES / "counter_fails.sv").read_text()  # fails at step 6
MOD10 = (FIXTURES / "mod10.sv").read_text()  # counts 0..9: `count <= 9` is 1-inductive

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
    return stack_bench(argv, "python -m bench.formal", __doc__, run,
                       "a6hub formal bench", "a6hub-bench-formal-")


if __name__ == "__main__":
    sys.exit(main())
