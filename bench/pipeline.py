"""A 10-job pipeline (.a6hub.yml): commit -> pipeline `passed` seen, next to the same tools by hand.

One `python -m runner` (jobs run one after another, as the tools by hand do). The figures:
the pipeline of a design no earlier run built (a comment of its own: no key matches, every
tool runs), the same tools run back to back in a scratch directory (before and after the
service's run: the shared machine's load moves), the pipeline of a
README-only commit, whose jobs are all cache hits, and the server time of the same tree pushed
again: main moved, in this process, to new commits of the same tree (what a push runs once its
pack is stored), timed from the ref update until the pipeline and its ten cached job records
are written, with the AWS calls it made, next to one bare GetItem on the same store.

`python -m bench.pipeline` runs it on its own stack; `run(stack)` returns the table rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.jobs import COUNTER, COUNTER_TB, Client, _ts, runner_process
from bench.report import Row, format_table, ms
from bench.stack import Stack, running_stack

POLL_SECONDS = 0.05
JOBS: list[tuple[str, str, dict[str, Any], list[str]]] = [
    # (verilator -Wall fails on this counter's width warnings: both lints use Icarus)
    ("lint", "lint", {"tool": "icarus", "top": "counter"}, []),
    ("lint_icarus", "lint", {"tool": "icarus"}, []),
    ("sim", "simulation", {"testbench": "counter_tb.v"}, ["lint"]),
    ("sim_verilator", "simulation", {"testbench": "counter_tb.v", "simulator": "verilator"},
     ["lint"]),
    ("sim_2005", "simulation", {"testbench": "counter_tb.v", "language": "verilog-2005"},
     ["lint_icarus"]),
    ("synth", "synthesis", {"top": "counter"}, ["sim"]),
    ("synth_ice40", "synthesis", {"top": "counter", "family": "ice40"}, ["sim"]),
    ("synth_ecp5", "synthesis", {"top": "counter", "family": "ecp5"}, ["sim"]),
    ("synth_gowin", "synthesis", {"top": "counter", "family": "gowin"}, ["sim"]),
    ("synth_nexus", "synthesis", {"top": "counter", "family": "nexus"}, ["sim"]),
]
# What a person types for the same ten jobs, in the same order (tools only, no service).
# Lint runs with Icarus's null target, as the service's lint does: never `-o /dev/null`, since
# iverilog chmods its output file to 0755 through the path, so the bench, run as root, made the
# host's /dev/null 0755 and broke every sandboxed job writing to it.
BY_HAND: list[list[str]] = [
    ["iverilog", "-g2012", "-s", "counter", "-t", "null", "counter.v"],
    ["iverilog", "-g2012", "-t", "null", "counter.v"],
    ["sh", "-c", "iverilog -g2012 -o sim.vvp counter_tb.v counter.v && vvp -n sim.vvp"],
    ["sh", "-c", "verilator --binary -j 2 -Wno-fatal --top-module counter_tb -Mdir obj "
                 "counter_tb.v counter.v >/dev/null && ./obj/Vcounter_tb"],
    ["sh", "-c", "iverilog -g2005 -o sim5.vvp counter_tb.v counter.v && vvp -n sim5.vvp"],
    *(["yosys", "-q", "-p", f"read_verilog -sv counter.v; {cmd} -top counter; stat"]
      for cmd in ("synth", "synth_ice40", "synth_ecp5", "synth_gowin", "synth_nexus")),
]


def design() -> dict[str, str]:
    """The counter with a comment of its own: keys no earlier run stored (every job runs)."""
    return {"counter.v": f"// run {uuid.uuid4().hex}\n{COUNTER}", "counter_tb.v": COUNTER_TB}


def pipeline_file(no_cache: bool = False) -> str:
    lines = ["jobs:"]
    for name, job_type, config, needs in JOBS:
        lines += [f"  {name}:", f"    type: {job_type}", f"    config: {config!r}"]
        if needs:
            lines.append(f"    needs: {needs!r}")
        if no_cache:
            lines.append("    no_cache: true")
    return "\n".join(lines).replace("'", '"') + "\n"


def by_hand() -> float:
    work = Path(tempfile.mkdtemp(prefix="a6hub-bench-pipeline-"))
    (work / "counter.v").write_text(COUNTER)
    (work / "counter_tb.v").write_text(COUNTER_TB)
    started = time.perf_counter()
    for argv in BY_HAND:
        subprocess.run(argv, cwd=work, check=True, capture_output=True)
    return time.perf_counter() - started


def _newest(client: Client, project_id: int) -> dict[str, Any] | None:
    status, pipelines = client.http.request("GET", f"/api/v1/projects/{project_id}/pipelines"
                                                   "?limit=1", token=client.token)
    assert status == 200, pipelines
    return pipelines[0] if pipelines else None


def commit_and_wait(client: Client, project_id: int, path: str, content: str,
                    timeout: float = 600) -> tuple[float, dict[str, Any]]:
    """Commit one file through the files API; seconds until the new pipeline is seen ended."""
    before = _newest(client, project_id)
    started = time.perf_counter()
    status, body = client.http.request("POST", f"/api/v1/projects/{project_id}/files",
                                       {"filename": path, "filepath": path, "content": content},
                                       client.token)
    assert status == 201, body
    deadline = time.monotonic() + timeout
    while True:
        pipeline = _newest(client, project_id)
        if (pipeline and (before is None or pipeline["id"] != before["id"])
                and pipeline["status"] in ("passed", "failed", "cancelled")):
            return time.perf_counter() - started, pipeline
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline still running after {timeout:.0f} s: {pipeline}")
        time.sleep(POLL_SECONDS)


SAME_TREE_MOVES = 9


def same_tree_again(project_id: int, moves: int = SAME_TREE_MOVES) -> tuple[list[float], int, str]:
    """Move main of `project_id` to `moves` + 1 new commits of its head's tree (the first warms
    this process: imports, connections, the git object cache), each timed from the ref update
    (GitRef's conditional PutItem, services/git/store.py) until main's move has run: the
    pipeline written with its jobs. Returns the seconds of the
    timed moves, the AWS calls of the last and their names; raises if a job was not a hit."""
    from collections import Counter

    from dulwich.objects import Commit

    from bench.measure import counting_backend_calls
    from chalicelib.models.jobs import Job
    from chalicelib.models.pipelines import Pipeline
    from chalicelib.services.git.store import DEFAULT_BRANCH, open_repo

    took: list[float] = []
    calls: Counter[str] = Counter()
    for n in range(moves + 1):
        repo = open_repo(project_id)
        head = repo.head_commit()
        assert head is not None
        parent = repo.object_store[head]
        assert isinstance(parent, Commit)
        commit = Commit()
        commit.tree = parent.tree
        commit.parents = [parent.id]
        commit.author = commit.committer = b"bench <bench@example.test>"
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = f"the same tree again ({n})\n".encode()
        repo.object_store.add_object(commit)
        repo.object_store.flush()
        with counting_backend_calls() as counted:
            started = time.perf_counter()
            assert repo.refs.set_if_equals(DEFAULT_BRANCH, head, commit.id)
            elapsed = time.perf_counter() - started
        [pipeline] = Pipeline.query(project_id, scan_index_forward=False, limit=1)
        assert pipeline.commit == commit.id.decode() and pipeline.status == "passed", pipeline
        for entry in pipeline.jobs:
            job = Job.get(project_id, int(entry["job_id"]))
            assert (job.summary or {}).get("cache", {}).get("served") == "pipeline", entry
        if n:
            took.append(elapsed)
            calls = counted.copy()
    return took, sum(calls.values()), ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))


def bare_get_item(samples: int = 30) -> float:
    """Median seconds of one GetItem of the toolchain item on the same store (the round trip)."""
    from chalicelib.models.pipelines import JobCache

    took = []
    for _ in range(samples):
        started = time.perf_counter()
        JobCache.get("toolchain")
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def run(stack: Stack) -> list[Row]:
    hand_before = by_hand()  # before and after the service's run: the shared machine's load moves
    # One job at a time, as by hand (a runner runs as many at once as it has cores by default).
    saved = os.environ.get("A6HUB_RUNNER_CONCURRENCY")
    os.environ["A6HUB_RUNNER_CONCURRENCY"] = "1"
    with runner_process(stack):
        if saved is None:
            os.environ.pop("A6HUB_RUNNER_CONCURRENCY")
        else:
            os.environ["A6HUB_RUNNER_CONCURRENCY"] = saved
        client = Client(stack)
        try:
            warm = client.project(design())  # the runner's imports, connections, page cache
            commit_and_wait(client, warm, ".a6hub.yml", "jobs:\n  lint: {type: lint}\n")
            project_id = client.project(design())
            full, pipeline = commit_and_wait(client, project_id, ".a6hub.yml", pipeline_file())
            assert pipeline["status"] == "passed", pipeline
            cached, hit = commit_and_wait(client, project_id, "README.md", "# counter\n")
            assert hit["status"] == "passed", hit
            hits = sum(1 for j in hit["jobs"] if j["cached"])
            records = [client.job(project_id, int(j["job_id"])) for j in pipeline["jobs"]]
            moves, move_calls, move_ops = same_tree_again(project_id)
            get_item = bare_get_item()
        finally:
            client.http.close()
    hand_after = by_hand()
    hand = (hand_before + hand_after) / 2
    ran = sum(1 for j in pipeline["jobs"] if not j["cached"])
    queue = statistics.median(_ts(r["started_at"]) - _ts(r["created_at"]) for r in records)
    by_name = {j["name"]: r for j, r in zip(pipeline["jobs"], records, strict=True)}
    handoff = statistics.median(
        _ts(by_name[j["name"]]["created_at"]) - max(_ts(by_name[n]["completed_at"])
                                                     for n in j["needs"])
        for j in pipeline["jobs"] if j["needs"])
    return [
        Row(f"10-job pipeline, commit -> passed seen s ({ran} jobs ran, one runner)",
            f"{full:.2f}", f"same tools by hand, back to back: {hand_before:.2f} s before, "
                           f"{hand_after:.2f} s after (service overhead against their mean "
                           f"{ms((full - hand) / len(JOBS))} ms a job)"),
        Row("  README-only commit, every job a cache hit, commit -> passed seen s",
            f"{cached:.2f}", f"{hits}/{len(JOBS)} jobs from the cache"),
        Row(f"  same tree pushed again: ref update -> pipeline + {len(JOBS)} cached jobs "
            f"written, median / max ms of {len(moves)}",
            f"{ms(statistics.median(moves))} / {ms(max(moves))}",
            f"one bare GetItem, median: {ms(get_item)} ms; the move's AWS calls: {move_calls} "
            f"({move_ops})", "median <= 50 ms", statistics.median(moves) <= 0.050),
        Row("  the run's jobs, median ms: created -> claimed (behind the others: one at a time)",
            ms(queue), f"their needs' end -> the job created: {ms(handoff)} ms"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="a6hub-bench-pipeline-"))
    started = time.monotonic()
    with running_stack(args.workers, logs) as stack:
        rows = run(stack)
    print(format_table(rows, f"a6hub pipeline bench ({os.cpu_count()} cores; "
                             f"{time.monotonic() - started:.0f} s; logs in {logs})"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
