"""Job uids (runner/uids.py): a uid a running job holds is no other job's on the host, across
threads and processes, and a holder that dies gives its uids back at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.uids import UidsExhausted, hold_uid
from tests.conftest import ROOT

# Each holder process: take a uid, mark it held with an O_EXCL file (a second holder of the
# same uid at the same time finds the mark and reports it), hold it a moment, unmark, release.
HOLDER = textwrap.dedent("""
    import os, random, sys, time
    from runner.uids import hold_uid
    lock_dir, marks, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    clashes = 0
    for _ in range(rounds):
        with hold_uid(300000, 300015, lock_dir) as lease:
            mark = os.path.join(marks, str(lease.uid))
            try:
                os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                clashes += 1
                continue
            time.sleep(random.random() * 0.003)
            os.unlink(mark)
    print(clashes)
""")


def test_concurrent_holders_in_many_processes_never_share_a_uid(tmp_path: Path) -> None:
    # GIVEN 8 processes that each take, hold and give back a uid 150 times, from a range of 16
    # (so the range is often half held and the random draws meet all the time)
    marks = tmp_path / "held"
    marks.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "locks"), str(marks),
                               "150"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    # WHEN they all run at once
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    # THEN every holder ended cleanly, and no uid was ever held by two of them at the same time
    assert [p.returncode for p in procs] == [0] * 8, outputs
    assert [int(out) for out in outputs] == [0] * 8
    assert list(marks.iterdir()) == []


def test_a_full_range_refuses_and_a_released_uid_is_handed_out_again(tmp_path: Path) -> None:
    # GIVEN both uids of a two-uid range held
    first = hold_uid(400000, 400001, str(tmp_path))
    second = hold_uid(400000, 400001, str(tmp_path))
    assert {first.uid, second.uid} == {400000, 400001}
    # WHEN a third job asks, THEN there is none to give
    with pytest.raises(UidsExhausted):
        hold_uid(400000, 400001, str(tmp_path))
    # WHEN one is released, THEN exactly that one is handed out next
    first.release()
    first.release()  # idempotent
    with hold_uid(400000, 400001, str(tmp_path)) as third:
        assert third.uid == first.uid
    second.release()


def test_the_hold_is_never_inherited_and_ends_with_its_holder(tmp_path: Path) -> None:
    # GIVEN a process holding the only uid of a range, which then starts a child (a tool)
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from runner.uids import hold_uid
        lease = hold_uid(500000, 500000, {str(tmp_path)!r})
        child = subprocess.Popen(["sleep", "60"], close_fds=False)
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(UidsExhausted):
            hold_uid(500000, 500000, str(tmp_path))
        # WHEN the holder is killed outright (its child lives on)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # THEN the uid is free at once: the child never held the lock (close-on-exec)
        with hold_uid(500000, 500000, str(tmp_path)) as lease:
            assert lease.uid == 500000
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_lock_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    # GIVEN a lock directory anyone may write (someone could plant or hold lock files there)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    # THEN no uid is handed out from it
    with pytest.raises(OSError, match="writable by it only"):
        hold_uid(600000, 600009, str(shared))
    # nor through a link to a directory
    good = tmp_path / "good"
    good.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(good)
    with pytest.raises(OSError, match="not a directory"):
        hold_uid(600000, 600009, str(tmp_path / "link"))
