"""A runner of 2 slot processes (runner/slots.py) end to end: the API, `python -m runner` with
A6HUB_RUNNER_CONCURRENCY=2, real tools. Its supervisor killed outright leaves no slot and no job
behind; a slot killed mid-job is restarted and the job recovered; --max-jobs is a total.

SIGTERM with 2 slots (grace and no grace, one job or two) is in test_jobs_e2e.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from chalicelib.services import job_lifecycle
from tests.conftest import Api, UserCtx, make_file, make_project
from tests.jobs_support import api_queue, make_queues, wait_for
from tests.runner.test_jobs_e2e import (
    FOREVER_TB,
    SLOW_TB,
    RunnerProcess,
    job_of,
    logs_of,
    simulations_on_own_queue,
    submit,
    wait_status,
)

pytestmark = pytest.mark.slow


def slot_pids(supervisor: int) -> list[int]:
    """The live children of `supervisor` (its slot processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == supervisor and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def holder_pid(project: dict[str, Any], job_id: int | str) -> int:
    """The pid of the slot that holds the job: its runner id is host:pid:suffix."""
    job = job_lifecycle.load(int(project["id"]), int(job_id))
    assert job is not None and job.runner_id
    return int(str(job.runner_id).split(":")[1])


def test_a_killed_supervisor_leaves_no_slot_and_no_job_behind(
        api: Api, owner: UserCtx, tmp_path: Path, emulator: Any) -> None:
    # GIVEN a 2-slot runner (no stop grace) whose slot runs a never-ending simulation
    queues, project, [job_id] = simulations_on_own_queue(api, owner, "tb/forever_tb.v", FOREVER_TB)
    runner = RunnerProcess(queues, tmp_path / "runner.log", A6HUB_RUNNER_CONCURRENCY="2",
                           A6HUB_RUNNER_STOP_GRACE_SECONDS="0")
    wait_for(lambda: " vvp -n " in logs_of(api, owner, project, job_id), timeout=120,
             what="the simulation to start")
    slots = wait_for(lambda: len(pids := slot_pids(runner.process.pid)) == 2 and pids,
                     timeout=60, what="two slot processes")
    assert holder_pid(project, job_id) in slots
    # WHEN the supervisor is killed outright (SIGKILL: it forwards nothing)
    runner.process.send_signal(signal.SIGKILL)
    runner.process.wait(timeout=10)
    # THEN both slots exit by themselves (the kernel's SIGTERM at their parent's death): the
    # one running the job releases it, so it is pending and its message back in the queue
    wait_for(lambda: not any(alive(pid) for pid in slots), timeout=60,
             what="the slots to exit after the supervisor's death")
    assert job_of(api, owner, project, job_id)["status"] == "pending"
    assert "released back to the queue" in logs_of(api, owner, project, job_id)
    assert queues.visible() == 1


def test_a_slot_killed_mid_job_is_restarted_and_its_job_recovered(
        api: Api, owner: UserCtx, tmp_path: Path, emulator: Any) -> None:
    # GIVEN a 2-slot runner, one slot in the middle of a few-seconds simulation (8 s lease, as
    # in test_jobs_e2e's killed-runner test)
    queues, project, [job_id] = simulations_on_own_queue(api, owner, "tb/slow_tb.v", SLOW_TB,
                                                         visibility=8)
    runner = RunnerProcess(queues, tmp_path / "runner.log", A6HUB_RUNNER_CONCURRENCY="2")
    try:
        wait_for(lambda: " vvp -n " in logs_of(api, owner, project, job_id), timeout=120,
                 what="the simulation to start")
        victim = holder_pid(project, job_id)
        # WHEN that slot process dies (SIGKILL: no chance to release its job)
        os.kill(victim, signal.SIGKILL)
        # THEN the supervisor says so and starts a new slot, the job is taken over once its
        # lease lapses and completes on its second attempt, and the supervisor runs on
        wait_for(lambda: f"(pid {victim}) died (signal SIGKILL)" in runner.output(), timeout=30,
                 what="the supervisor to report the dead slot")
        job = wait_status(api, owner, project, job_id, timeout=180)
        assert job["status"] == "completed", (job, runner.output()[-3000:])
        assert job["attempts"] == 2
        assert holder_pid(project, job_id) != victim
        wait_for(lambda: len(slot_pids(runner.process.pid)) == 2, timeout=60,
                 what="two slots again")
        assert runner.process.poll() is None
    finally:
        code = runner.stop()
    assert code == 0, runner.output()[-3000:]
    assert queues.depth() == 0


def test_max_jobs_counts_jobs_across_the_slots(
        api: Api, owner: UserCtx, tmp_path: Path, emulator: Any) -> None:
    # GIVEN 5 quick simulations and a 2-slot runner told to run 3 jobs (--max-jobs 3)
    queues = make_queues(max_receives=3, visibility=10)
    with api_queue(queues.url):
        project = make_project(api, owner)
        make_file(api, owner, project["id"], "tb.v",
                  "module tb; initial begin $display(\"quick\"); $finish; end endmodule\n")
        ids = [submit(api, owner, project, "simulation", {"testbench": "tb.v"})
               for _ in range(5)]
    runner = RunnerProcess(queues, tmp_path / "runner.log", "--max-jobs", "3",
                           A6HUB_RUNNER_CONCURRENCY="2")
    # WHEN it runs: THEN it exits 0 by itself after 3 jobs in all, not 3 per slot
    assert runner.process.wait(timeout=240) == 0, runner.output()[-3000:]
    statuses = sorted(job_of(api, owner, project, i)["status"] for i in ids)
    assert statuses == ["completed"] * 3 + ["pending"] * 2, runner.output()[-3000:]
    assert queues.depth() == 2
