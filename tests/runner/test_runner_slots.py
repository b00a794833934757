"""The supervisor of a runner's slot processes (runner/slots.py), with stand-in slot programs:
signals reach every slot in order (even one still starting), a slot outlives no supervisor,
a dead slot is restarted, a slot that keeps dying stops the runner, --max-jobs is a total.

The same with real `python -m runner` slots, real jobs and the emulator: test_runner_slots_e2e.py.
Each supervisor runs in a process of its own: it waits for any child, which a test session
must not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.jobs_support import wait_for

# A stand-in slot: `argv` is "<script> --slot K --parent P --queue-url Q [--tickets-fd F]".
# It waits `delay` seconds before it handles signals (a slot still importing), then records each
# stop signal in <dir>/slot-K.log and exits after `stops` of them (exit `code` if given at once).
SLOT = textwrap.dedent("""
    import os, signal, sys, time
    from runner.slots import STOP_SIGNALS, die_with_parent
    out, delay, stops, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    args = dict(zip(sys.argv[5::2], sys.argv[6::2]))
    if code != "-":
        sys.exit(int(code))
    die_with_parent(int(args["--parent"]))
    log = os.path.join(out, f"slot-{args['--slot']}.log")
    seen = []
    def on(signum, frame):
        seen.append(signal.Signals(signum).name)
        with open(log, "a") as f:
            f.write(seen[-1] + "\\n")
    time.sleep(delay)
    for sig in STOP_SIGNALS:
        signal.signal(sig, on)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    with open(log, "a") as f:
        f.write(f"ready {os.getpid()}\\n")
    while len(seen) < stops:
        time.sleep(0.01)
    if "--tickets-fd" in args:  # take tickets until none is left; count them
        import select
        fd, got = int(args["--tickets-fd"]), 0
        while True:
            select.select([fd], [], [], 1)
            try:
                chunk = os.read(fd, 1)
            except BlockingIOError:
                continue
            if not chunk:
                break
            got += 1
            time.sleep(0.01)
        with open(log, "a") as f:
            f.write(f"tickets {got}\\n")
""")

SUPERVISOR = textwrap.dedent("""
    import sys
    from runner.slots import Supervisor
    from runner.worker import RunnerSettings
    out, slots, max_jobs, slot_args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    settings = RunnerSettings(queue_url="http://queue.invalid/q", dlq_url=None,
                              visibility_seconds=3, max_receives=None)
    command = [sys.executable, "-c", sys.stdin.read(), out, *slot_args]
    print("supervisor up", flush=True)
    sys.exit(Supervisor(settings, slots, max_jobs=max_jobs, command=command).run())
""")


def supervisor(out: Path, slots: int, *slot_args: str, max_jobs: int = 0) -> subprocess.Popen[str]:
    """A supervisor of `slots` stand-in slots (SLOT with `slot_args`: delay, stops, code)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(out), str(slots), str(max_jobs), *slot_args],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert process.stdin is not None
    process.stdin.write(SLOT)
    process.stdin.close()
    return process


def lines(out: Path, slot: int) -> list[str]:
    path = out / f"slot-{slot}.log"
    return path.read_text().split() if path.exists() else []


def ready_pid(out: Path, slot: int) -> int:
    words = lines(out, slot)
    return int(words[words.index("ready") + 1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_signals_reach_every_slot_in_order_even_one_still_starting(tmp_path: Path) -> None:
    # GIVEN a supervisor of 3 slots that take 1.5 s before they handle signals
    sup = supervisor(tmp_path, 3, "1.5", "2", "-")
    assert sup.stdout is not None and sup.stdout.readline().strip() == "supervisor up"
    time.sleep(0.3)  # the slots exist, none handles signals yet
    # WHEN it receives SIGINT, then SIGTERM (Ctrl-C, then `devstack run`'s stop)
    sup.send_signal(signal.SIGINT)
    time.sleep(0.1)
    sup.send_signal(signal.SIGTERM)
    # THEN every slot got both, once each, in that order, none died of one, and it exits 0
    assert sup.wait(timeout=60) == 0, sup.stdout.read()
    for slot in range(3):
        assert [w for w in lines(tmp_path, slot) if w.startswith("SIG")] == ["SIGINT", "SIGTERM"]


def test_a_slot_does_not_outlive_its_supervisor(tmp_path: Path) -> None:
    # GIVEN a supervisor of 2 slots, both ready
    sup = supervisor(tmp_path, 2, "0", "1", "-")
    wait_for(lambda: all("ready" in lines(tmp_path, n) for n in range(2)), timeout=60,
             what="both slots to be ready")
    pids = [ready_pid(tmp_path, n) for n in range(2)]
    # WHEN the supervisor is killed outright (no chance to forward anything)
    sup.send_signal(signal.SIGKILL)
    sup.wait(timeout=10)
    # THEN each slot gets SIGTERM from the kernel (PR_SET_PDEATHSIG) and exits
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=30,
             what="the slots to exit after their supervisor's death")
    assert all(lines(tmp_path, n)[-1] == "SIGTERM" for n in range(2))


def test_a_dead_slot_is_reported_and_restarted(tmp_path: Path) -> None:
    # GIVEN a supervisor of 2 slots, both ready
    sup = supervisor(tmp_path, 2, "0", "1", "-")
    wait_for(lambda: all("ready" in lines(tmp_path, n) for n in range(2)), timeout=60,
             what="both slots to be ready")
    first = ready_pid(tmp_path, 1)
    # WHEN slot 1 dies (killed from outside)
    os.kill(first, signal.SIGKILL)
    # THEN a new slot 1 starts, and the supervisor still runs
    wait_for(lambda: lines(tmp_path, 1).count("ready") == 2, timeout=60,
             what="slot 1 to be restarted")
    assert sup.poll() is None
    # and on SIGTERM every slot stops and the supervisor exits 0, having said what happened
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=60) == 0
    assert sup.stdout is not None
    output = sup.stdout.read()
    assert f"runner slot 1 (pid {first}) died (signal SIGKILL)" in output
    assert output.count(" died ") == 1



def test_a_slot_stopped_from_outside_is_restarted(tmp_path: Path) -> None:
    # GIVEN a supervisor of 2 slots, both ready, that is not stopping
    sup = supervisor(tmp_path, 2, "0", "1", "-")
    wait_for(lambda: all("ready" in lines(tmp_path, n) for n in range(2)), timeout=60,
             what="both slots to be ready")
    first = ready_pid(tmp_path, 1)
    # WHEN slot 1 alone is sent SIGTERM by someone else (an operator, a cgroup-wide kill) and
    # exits 0 as a stopped runner does
    os.kill(first, signal.SIGTERM)
    # THEN a new slot 1 starts: the runner keeps its 2 slots, and says what happened
    wait_for(lambda: lines(tmp_path, 1).count("ready") == 2 or sup.poll() is not None,
             timeout=60, what="slot 1 to be restarted")
    assert lines(tmp_path, 1).count("ready") == 2
    assert sup.poll() is None
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=60) == 0
    assert sup.stdout is not None
    assert f"runner slot 1 (pid {first}) ended (exit 0) unasked" in sup.stdout.read()

def test_slots_that_keep_dying_stop_the_runner_with_an_error(tmp_path: Path) -> None:
    # GIVEN slots that exit 3 as soon as they start (a broken host, say)
    sup = supervisor(tmp_path, 2, "0", "1", "3")
    # THEN the supervisor gives up after 5 deaths within a minute and exits 1
    assert sup.wait(timeout=120) == 1
    assert sup.stdout is not None
    output = sup.stdout.read()
    assert "5 slot deaths within 60s; stopping the runner" in output
    assert output.count("died (exit 3)") >= 4


def test_max_jobs_is_handed_out_as_tickets_across_the_slots(tmp_path: Path) -> None:
    # GIVEN a supervisor of 3 slots and --max-jobs 7 (7 tickets), each slot taking tickets
    # until none is left once it got one stop signal
    sup = supervisor(tmp_path, 3, "0", "1", "-", max_jobs=7)
    wait_for(lambda: all("ready" in lines(tmp_path, n) for n in range(3)), timeout=60,
             what="the slots to be ready")
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=60) == 0
    # THEN the slots took 7 tickets between them, and each then saw that none was left
    got = [int(lines(tmp_path, n)[lines(tmp_path, n).index("tickets") + 1]) for n in range(3)]
    assert sum(got) == 7
