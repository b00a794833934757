"""Second security review, runner side: RAM disks and memory a job could take beyond its limits
(finding 2), and directory trees deep enough to crash the runner (finding 3).

Runner tier: a hostile tool is modelled by a shell or Python script run through `Sandbox.run`,
exactly as the tools are run (bubblewrap, the job's uid, rlimits, cgroup).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import runner.sandbox
from runner import cgroup, fstree, workspace
from runner.commit_tree import CommitFile, MaterialiseError
from runner.limits import MIB, Limits
from runner.sandbox import CommandResult, JobDirs, LogBudget, Sandbox
from tests.conftest import ROOT
from tests.jobs_support import stage_of

DEEP = 3000


def sandboxed(tmp_path: Path, argv: list[str], limits: Limits,
              keep_stage: bool = False) -> tuple[CommandResult, str, JobDirs]:
    workdir = tmp_path / "job"
    (workdir / "src").mkdir(parents=True, exist_ok=True)
    uid = runner.sandbox.sandbox_uid()
    box = Sandbox(stage_of(workdir), limits, sandboxed=True, uid=uid)
    out: list[bytes] = []
    try:
        result = box.run(argv, LogBudget(limits.log_bytes, sink=out.append), threading.Event())
    finally:
        if not keep_stage:
            box.dirs.remove_stage()
    return result, b"".join(out).decode(errors="replace"), box.dirs


# --- finding 2: every writable mount is capped and counted -------------------------------------


def test_ram_backed_mounts_cannot_hold_more_than_the_disk_limit(tmp_path: Path) -> None:
    # GIVEN a job with a 16 MiB disk limit whose tool writes 32 MiB into each RAM-backed mount
    # bubblewrap gives it (/dev/shm, /dev, /usr/local, /tmp) and reports what each kept
    script = """
for d in /dev/shm /dev /usr/local /tmp; do
  dd if=/dev/zero of=$d/fill bs=1M count=32 2>/dev/null
  echo "kept $d $(stat -c %s $d/fill 2>/dev/null || echo 0)"
done
"""
    limits = Limits(disk_bytes=16 * MIB, file_bytes=64 * MIB, wall_seconds=60)
    result, log, _ = sandboxed(tmp_path, ["/bin/sh", "-c", script], limits)
    kept = {line.split()[1]: int(line.split()[2]) for line in log.splitlines()
            if line.startswith("kept ")}
    # THEN /dev, /dev/shm and /usr/local refuse writes, and /tmp keeps less than the disk limit
    assert set(kept) == {"/dev/shm", "/dev", "/usr/local", "/tmp"}, log
    assert kept["/dev/shm"] == kept["/dev"] == kept["/usr/local"] == 0, kept
    assert 0 < kept["/tmp"] <= 4 * MIB, kept
    assert sum(kept.values()) <= limits.disk_bytes
    assert result.limit is None  # the script itself ignored the errors


def test_a_full_tmp_fails_the_step_naming_the_disk_limit(tmp_path: Path) -> None:
    # GIVEN a tool that writes past /tmp's share of the disk limit and stops on the error
    limits = Limits(disk_bytes=16 * MIB, file_bytes=64 * MIB, wall_seconds=60)
    # WHEN it runs
    result, log, _ = sandboxed(
        tmp_path, ["/bin/dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=32"], limits)
    # THEN the step ends with the disk limit named
    assert result.exit_code != 0, log
    assert result.limit == "disk limit of 16 MiB exceeded", log


def test_the_work_dir_and_tmp_share_one_disk_limit(tmp_path: Path) -> None:
    # GIVEN /tmp filled to its cap, then the work dir filled with what the limit has left + 2 MiB
    limits = Limits(disk_bytes=16 * MIB, file_bytes=64 * MIB, wall_seconds=60)
    script = ("dd if=/dev/zero of=/tmp/fill bs=1M count=4 2>/dev/null; "
              "dd if=/dev/zero of=work.bin bs=1M count=14 2>/dev/null; echo filled")
    # WHEN it runs
    result, log, _ = sandboxed(tmp_path, ["/bin/sh", "-c", script], limits)
    # THEN 4 + 14 MiB is over 16 MiB: the step fails on the disk limit
    assert result.limit == "disk limit of 16 MiB exceeded", log


def test_empty_files_are_not_free(tmp_path: Path) -> None:
    # GIVEN a tool creating 6,000 empty files (no data blocks, but inodes on the runner's disk)
    script = "import os\nfor i in range(6000): open(f'e{i}', 'w').close()\nprint('made')\n"
    limits = Limits(disk_bytes=16 * MIB, wall_seconds=60)
    result, log, _ = sandboxed(tmp_path, ["/usr/bin/python3", "-c", script], limits)
    # THEN they count (4 KiB each, over the 12 MiB the work dir may hold)
    assert result.limit == "disk limit of 16 MiB exceeded", log


MEMORY_HOG = """
import fcntl, os, time

def holding():  # children alive with their 100 MiB: each holds a lock on its file till it dies
    count = 0
    for name in os.listdir("."):
        if name.startswith("ready"):
            with open(name) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    count += 1
    return count

pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(b"x") * (100 << 20)   # 100 MiB, every page touched
        ready = open(f"ready{i}", "w")
        fcntl.flock(ready, fcntl.LOCK_EX)
        deadline = time.time() + 20
        while (held := holding()) < 4 and time.time() < deadline:
            time.sleep(0.05)
        print("child", i, "saw", held, "holding at once", flush=True)
        os._exit(0)
    pids.append(pid)
print("children", [os.waitpid(p, 0)[1] for p in pids], flush=True)
"""


@pytest.mark.skipif(cgroup.hierarchies() is None, reason="the host gives the runner no cgroup")
def test_children_together_cannot_exceed_the_memory_limit(tmp_path: Path) -> None:
    # GIVEN a 256 MiB memory limit (per process: RLIMIT_AS) and a tool whose 4 children each
    # hold 100 MiB at the same time (each well under the per-process limit)
    limits = Limits(memory_bytes=256 * MIB, processes=16, wall_seconds=60, cpu_seconds=60)
    # WHEN it runs
    result, log, _ = sandboxed(tmp_path, ["/usr/bin/python3", "-c", MEMORY_HOG], limits)
    # THEN the step fails naming the memory limit, and the 4 never held 400 MiB together (a
    # child killed after it was ready leaves its file, but not its lock, behind)
    assert result.limit == "memory limit of 256 MiB exceeded", log
    assert "saw 4 holding" not in log, log


@pytest.mark.skipif(cgroup.hierarchies() is None, reason="the host gives the runner no cgroup")
def test_job_cgroups_are_removed_after_each_step(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a note of every cgroup a step creates (by name: other runners on this host, such as
    # another test run, make and remove their own meanwhile)
    made: list[Path] = []
    create = cgroup.JobCgroup.create.__func__

    def noting(cls: type, memory_bytes: int, max_pids: int) -> cgroup.JobCgroup | None:
        group = create(cls, memory_bytes, max_pids)
        if group is not None:
            made.extend(path for _, path in group.dirs)
        return group

    monkeypatch.setattr(cgroup.JobCgroup, "create", classmethod(noting))
    # WHEN a step runs (one that leaves a background process behind)
    result, log, _ = sandboxed(tmp_path, ["/bin/sh", "-c", "sleep 30 & echo started"],
                               Limits(wall_seconds=30))
    # THEN it had a cgroup of its own, and that cgroup is gone afterwards
    assert result.exit_code == 0, log
    assert made and all(path.name.startswith(cgroup.PREFIX) for path in made), made
    assert [path for path in made if path.exists()] == []


# --- the two ways a step starts (runner/sandbox.py Sandbox.launch) ------------------------------

PRIVILEGES = ("grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status; "
              "grep -E '^Max (cpu time|file size|address space|processes"
              "|core file size) ' /proc/self/limits")


@pytest.mark.skipif(os.geteuid() != 0, reason="a job uid of its own needs a root runner")
@pytest.mark.parametrize("launch", ["exec", "preexec"])
def test_both_launches_give_a_step_its_uid_rlimits_and_no_capabilities(tmp_path: Path,
                                                                       launch: str) -> None:
    # GIVEN odd limits (a file size no multiple of a block) and a job uid
    limits = Limits(cpu_seconds=7, memory_bytes=300 * MIB, file_bytes=5 * MIB + 3, processes=9,
                    wall_seconds=30)
    uid = 200_000 + os.getpid() % 60_000
    (tmp_path / "src").mkdir()
    box = Sandbox(stage_of(tmp_path), limits, sandboxed=True, uid=uid, launch=launch)  # type: ignore[arg-type]
    out: list[bytes] = []
    # WHEN a step prints its ids, capabilities, uid map and limits
    try:
        result = box.run(["/bin/sh", "-c", PRIVILEGES], LogBudget(65536, sink=out.append),
                         threading.Event())
    finally:
        box.dirs.remove_stage()
    log = b"".join(out).decode()
    fields = {line.split(":")[0]: line.split(":", 1)[1].split() for line in log.splitlines()
              if ":" in line}
    limit_lines = {" ".join(line.split()[:-3]): line.split()[-3:-1] for line in log.splitlines()
                   if line.startswith("Max ")}
    # THEN it runs as uid 1000 inside (the job's uid outside: see the cgroup test), no groups,
    # no capability at all, and every rlimit exactly as set, soft and hard
    assert result.exit_code == 0, log
    assert fields["Uid"] == ["1000"] * 4 and fields["Gid"] == ["1000"] * 4, log
    assert fields["Groups"] == [], log
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap][0], 16) == 0, (cap, log)
    assert limit_lines == {"Max cpu time": ["7", "8"],
                           "Max file size": [str(5 * MIB + 3)] * 2,
                           "Max address space": [str(300 * MIB)] * 2,
                           "Max processes": ["11", "11"],
                           "Max core file size": ["0", "0"]}, log


@pytest.mark.parametrize("sandboxed", [True, False])
@pytest.mark.parametrize("launch", ["exec", "preexec"])
def test_argv_reaches_the_tool_verbatim_through_either_launch(tmp_path: Path, launch: str,
                                                              sandboxed: bool) -> None:
    # GIVEN argv values shaped like a project's file names an attacker picks: shell code, the
    # exec chain's own "--" sentinel, a cgroup.procs path, options of prlimit/setpriv/bwrap
    marker = tmp_path / "pwned"
    hostile = [f"$(touch {marker})", f"`touch {marker}`", f"; touch {marker}", "--",
               "/sys/fs/cgroup/pids/cgroup.procs", "--as=1", "--reuid=0", "--bind", "/", "/job",
               "a\nb'\"c", "-", ""]
    (tmp_path / "src").mkdir()
    if sandboxed and runner.sandbox.sandbox_problem() is not None:
        pytest.skip("bubblewrap cannot run here")
    uid = runner.sandbox.sandbox_uid() if sandboxed else None
    box = Sandbox(stage_of(tmp_path), Limits(wall_seconds=30), sandboxed=sandboxed, uid=uid,
                  launch=launch)  # type: ignore[arg-type]
    out: list[bytes] = []
    # WHEN a tool that prints its arguments is run with them
    try:
        result = box.run(["/usr/bin/python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))",
                          *hostile], LogBudget(65536, sink=out.append), threading.Event())
    finally:
        box.dirs.remove_stage()
    # THEN the tool got every value unchanged, and no shell ran any of them
    log = b"".join(out).decode()
    assert result.exit_code == 0, log
    assert json.loads(log.strip().splitlines()[-1]) == hostile, log
    assert not marker.exists()


@pytest.mark.skipif(cgroup.hierarchies() is None, reason="the host gives the runner no cgroup")
@pytest.mark.parametrize("launch", ["exec", "preexec"])
def test_every_process_of_a_step_is_in_its_cgroup(tmp_path: Path, launch: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a note of the step's cgroup, and a step that forks two children and waits
    groups: list[cgroup.JobCgroup] = []
    create = cgroup.JobCgroup.create.__func__

    def noting(cls: type, memory_bytes: int, max_pids: int) -> cgroup.JobCgroup | None:
        group = create(cls, memory_bytes, max_pids)
        groups.extend([group] if group is not None else [])
        return group

    monkeypatch.setattr(cgroup.JobCgroup, "create", classmethod(noting))
    uid = 200_000 + (os.getpid() + 1) % 60_000
    (tmp_path / "src").mkdir()
    box = Sandbox(stage_of(tmp_path), Limits(wall_seconds=60), sandboxed=True, uid=uid,
                  launch=launch)  # type: ignore[arg-type]
    out: list[bytes] = []
    cancel = threading.Event()
    results: list[CommandResult] = []
    step = threading.Thread(target=lambda: results.append(box.run(
        ["/bin/sh", "-c", "sleep 60 & sleep 60 & echo ready; wait"],
        LogBudget(65536, sink=out.append), cancel)))
    step.start()
    try:
        # WHEN it is running
        deadline = time.monotonic() + 30
        while b"ready" not in b"".join(out) and time.monotonic() < deadline and step.is_alive():
            time.sleep(0.02)
        assert groups, "the step had no cgroup"
        from runner.watch import _pids_of
        of_uid = set(_pids_of(uid))
        members = [{int(pid) for pid in Path(path).read_text().split()}
                   for path in groups[0].procs_files()]
    finally:
        cancel.set()
        step.join(30)
        box.dirs.remove_stage()
    # THEN every process of the job's uid (bwrap, the sandbox's init, sh, both sleeps) is in
    # each of the step's cgroups: the first process joined before anything forked
    assert len(of_uid) >= 4, (of_uid, b"".join(out))
    for found in members:
        assert of_uid <= found, (of_uid, found)
    assert results and results[0].cancelled


def _of_uid(uid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process of `uid` on the host, zombies included."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        found.append((int(name), f.read().rsplit(b")", 1)[-1].split()[0].decode()))
            except OSError:
                continue
    return found


BACK_TO_BACK = """
import json, sys, threading
from runner.limits import Limits
from runner.sandbox import JobDirs, LogBudget, Sandbox, become_subreaper
from tests.runner.test_runner_bounds import _of_uid
uid = int(sys.argv[1])
assert become_subreaper()  # as python -m runner does at start
with JobDirs.staged() as dirs:
    box = Sandbox(dirs, Limits(wall_seconds=120, processes=8), sandboxed=True, uid=uid)
    failed, left = [], []
    for _ in range(20):
        result = box.run(["/bin/true"], LogBudget(4096), threading.Event())
        failed += [] if result.ok else [result.limit or result.exit_code]
        left += _of_uid(uid)
    burn = box.run(["/usr/bin/python3", "-c", "import time\\nt = time.process_time()\\n"
                    "while time.process_time() - t < 0.3: pass"], LogBudget(4096), threading.Event())
print(json.dumps({"failed": failed, "left": left, "burn_ok": burn.ok, "burn_cpu_s": burn.cpu_s}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a job uid of its own needs a root runner")
def test_steps_leave_no_process_not_even_a_zombie_and_count_the_tools_cpu() -> None:
    # GIVEN a process that is a child subreaper as `python -m runner` is (not this test session:
    # it would keep the orphans of other tests' process trees), one job uid, a process limit of 8
    uid = 200_000 + (os.getpid() + 2) % 60_000
    # WHEN 20 steps run back to back (each bubblewrap's init outlives its monitor), then a step
    # that spends 0.3 s of CPU by its own clock
    done = subprocess.run([sys.executable, "-c", BACK_TO_BACK, str(uid)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # THEN none failed or left a process of the job's uid behind, not even a zombie that would
    # count against the next step's process limit, and the step's CPU time is the tool's
    assert found["failed"] == [] and found["left"] == [], found
    assert found["burn_ok"] and found["burn_cpu_s"] >= 0.3, found


UNSANDBOXED_ORPHANS = """
import json, os, sys, threading
import runner.sandbox
from runner.__main__ import reap_sandbox_inits
from runner.limits import Limits
from runner.sandbox import JobDirs, LogBudget, Sandbox
runner.sandbox._probe["result"] = "bubblewrap cannot run here (this test)"
became = reap_sandbox_inits()  # as python -m runner does after its sandbox probe
with JobDirs.staged() as dirs:
    box = Sandbox(dirs, Limits(wall_seconds=60), sandboxed=False)
    # each `(cmd &)` orphans cmd as its subshell exits, before the step ends
    result = box.run(["sh", "-c", "for i in 1 2 3; do (sleep 2 &); (true &); done"],
                     LogBudget(4096), threading.Event())
children = []
for name in os.listdir("/proc"):
    try:
        with open(f"/proc/{name}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[-1].split()
    except OSError:
        continue
    if name.isdigit() and int(fields[1]) == os.getpid():
        children.append(fields[0].decode())
print(json.dumps({"became": became, "ok": result.ok, "children": children}))
"""


def test_an_unsandboxed_runner_is_left_no_orphan_of_a_tool() -> None:
    # GIVEN a runner process whose sandbox probe failed (A6HUB_RUNNER_UNSANDBOXED=1 development)
    # WHEN a step double-forks six processes, three of which outlive it
    done = subprocess.run([sys.executable, "-c", UNSANDBOXED_ORPHANS], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # THEN the runner did not become their reaper: as a subreaper it would hold every one that
    # ended as a zombie nobody waits for (a pid each, for the runner's lifetime)
    assert found["ok"] and not found["became"], found
    assert found["children"] == [], found


FORGER = """
import os, signal, sys, time
if os.fork():
    while not os.path.exists("heartbeat"):  # leave once the forger runs
        time.sleep(0.005)
    print("left behind", flush=True)
    os._exit(0)
os.setsid()
null = os.open("/dev/null", os.O_WRONLY)
for fd in (0, 1, 2):
    os.dup2(null, fd)
end = time.time() + 30
while time.time() < end:
    with open("heartbeat", "a") as beat:
        beat.write(f"{time.time()}\\n")
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = open(f"/proc/{name}/cmdline", "rb").read()
        except OSError:
            continue
        if b"step" + b"-two" in cmdline:  # the next step (not this script): forge it, or kill it
            for fd in os.listdir(f"/proc/{name}/fd"):
                try:
                    with open(f"/proc/{name}/fd/{fd}", "w") as out:
                        out.write("forged: exit 0\\n")
                except OSError:
                    pass
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
    time.sleep(0.005)
"""


def test_a_step_cannot_forge_the_next_steps_result(tmp_path: Path) -> None:
    # GIVEN a first step that leaves a process behind, which watches for the next step's
    # processes to write into their pipes and kill them
    (tmp_path / "src").mkdir()
    box = Sandbox(stage_of(tmp_path), Limits(wall_seconds=60), sandboxed=True,
                  uid=runner.sandbox.sandbox_uid())
    logs: list[list[bytes]] = [[], []]
    try:
        first = box.run(["/usr/bin/python3", "-c", FORGER], LogBudget(65536, sink=logs[0].append),
                        threading.Event())
        second_started = time.time()
        # WHEN the next step runs (and fails on its own: exit 3)
        second = box.run(["/bin/sh", "-c", "echo step-two; sleep 0.5; exit 3"],
                         LogBudget(65536, sink=logs[1].append), threading.Event())
        beats = [float(line) for line in (box.dirs.work / "heartbeat").read_text().split()]
    finally:
        box.dirs.remove_stage()
    log = b"".join(logs[1]).decode()
    # THEN its exit status, its output and its end are its own: the first step's processes were
    # gone before it started (their last heartbeat is older than it)
    assert first.exit_code == 0 and b"left behind" in b"".join(logs[0]), logs[0]
    assert beats, "the forger never ran"
    assert max(beats) < second_started, (max(beats), second_started)
    assert second.exit_code == 3 and second.limit is None, (second, log)
    assert log == "step-two\n", log


# --- finding 3: deep trees ----------------------------------------------------------------------

DEEP_TREE = f"""
import os
for i in range({DEEP}):
    os.mkdir("d")
    os.chdir("d")
open("wave.vcd", "w").write("$end")
os.chmod(".", 0)
print("deep tree made", flush=True)
"""


def test_a_deep_tree_left_by_a_tool_is_removed_with_its_stage(tmp_path: Path) -> None:
    # GIVEN a tool that leaves 3,000 nested folders (paths far over PATH_MAX), the last one
    # without permissions
    result, log, dirs = sandboxed(tmp_path, ["/usr/bin/python3", "-c", DEEP_TREE],
                                  Limits(wall_seconds=60, disk_bytes=256 * MIB), keep_stage=True)
    assert result.exit_code == 0 and "deep tree made" in log, log
    # WHEN the stage is removed / THEN nothing is left and nothing raised
    assert dirs.remove_stage() is True
    assert not dirs.stage.exists()


def test_stale_stage_clean_up_survives_deep_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a stage left behind by a killed runner, holding a 3,000-deep tree
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_DIR", str(tmp_path / "stages"))
    workdir = tmp_path / "job"
    (workdir / "src").mkdir(parents=True)
    stale = stage_of(workdir)
    fd = os.open(stale.work, os.O_RDONLY)
    for _ in range(DEEP):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    long_ago = time.time() - 7200
    os.utime(stale.stage, (long_ago, long_ago))
    # WHEN the runner starts and cleans up / THEN the stage is gone
    assert runner.sandbox.remove_stale_stages(3600) == 1
    assert not stale.stage.exists()


def test_the_waveform_walk_is_iterative_and_depth_bounded(tmp_path: Path) -> None:
    # GIVEN a work dir with a .vcd at depth 2 and one 3,000 levels down
    top = tmp_path / "work"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "near.vcd").write_text("x")
    fd = os.open(top, os.O_RDONLY)
    for _ in range(DEEP):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(os.open("far.vcd", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    # WHEN it is walked 32 levels deep / THEN it finds the near one, without RecursionError
    found = [f"{rel}/{name}" for rel, _fd, names in fstree.walk_files(top, 32) for name in names]
    assert found == ["a/b/near.vcd"]
    fstree.remove_tree(top)
    assert not top.exists()


@pytest.mark.slow
def test_a_job_whose_tool_makes_a_deep_tree_ends_cleanly(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.runner.test_runner_sandbox import run

    # GIVEN a verilator testbench whose $system makes 3,000 nested folders in its work dir, and
    # a stage directory of its own (the default one is shared with other runners on this host)
    stages = Path(tempfile.mkdtemp(prefix="a6hub-stages-"))
    stages.chmod(0o711)  # the sandbox uid traverses it, as the default base
    monkeypatch.setenv("A6HUB_RUNNER_SANDBOX_DIR", str(stages))
    tb = f"""\
module tb;
  integer rc;
  initial begin
    rc = $system("python3 -c 'import os\\nfor i in range({DEEP}): os.mkdir(\\"d\\"); os.chdir(\\"d\\")'");
    $display("deep rc=%0d", rc);
    $finish;
  end
endmodule
"""
    workdir = tmp_path / "job"
    (workdir / "src").mkdir(parents=True)
    (workdir / "src" / "tb.v").write_text(tb)
    # WHEN it runs as a job
    outcome, log = run(workdir, "simulation", {"testbench": "tb.v", "simulator": "verilator"},
                       Limits(wall_seconds=180, cpu_seconds=180, disk_bytes=256 * MIB))
    # THEN it completes (no RecursionError), and its stage is gone
    assert outcome.status == "completed", (outcome.error_message, log)
    assert "deep rc=0" in log
    assert os.listdir(stages) == []
    stages.rmdir()


def _commit_file(path: str, text: str) -> CommitFile:
    data = text.encode()
    return CommitFile(path=path, blob=hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),  # noqa: S324 - git's blob id
                      data=data)


def test_a_commit_is_written_once_into_the_stage_readable_whatever_the_umask() -> None:
    # GIVEN a runner whose umask lets nobody else read, and a commit with a nested file
    files = [_commit_file("rtl/core/alu.v", "module alu; endmodule\n"),
             _commit_file("top.v", "module top; endmodule\n")]
    old_umask = os.umask(0o077)
    try:
        with JobDirs.staged() as dirs:
            # WHEN its files are written into a fresh stage
            inputs = workspace.write_files(dirs.src, files, {})
            # THEN they are in src/ (what the sandbox mounts), folders 0755 and files 0644
            modes = {str(p.relative_to(dirs.src)): stat.S_IMODE(p.stat().st_mode)
                     for p in dirs.src.rglob("*")}
            assert modes == {"rtl": 0o755, "rtl/core": 0o755, "rtl/core/alu.v": 0o644,
                             "top.v": 0o644}
            assert (dirs.src / "top.v").read_text() == "module top; endmodule\n"
            assert [i.path for i in inputs] == ["rtl/core/alu.v", "top.v"]
            assert inputs[1].sha256 == hashlib.sha256(b"module top; endmodule\n").hexdigest()
            assert stat.S_IMODE(dirs.out.stat().st_mode) == 0o700  # the runner's only
    finally:
        os.umask(old_umask)
    assert not dirs.stage.exists()


@pytest.mark.parametrize("bad", ["../escape.v", "/abs.v", "a/" * 40 + "deep.v"])
def test_a_path_leaving_the_stage_is_refused_before_anything_is_written(bad: str) -> None:
    # GIVEN a commit whose last file names a path outside src/ (or too deep)
    files = [_commit_file("ok.v", "module ok; endmodule\n"), _commit_file(bad, "x\n")]
    with JobDirs.staged() as dirs:
        # WHEN it is written / THEN it is refused, and nothing was written at all
        with pytest.raises(MaterialiseError):
            workspace.write_files(dirs.src, files, {})
        assert list(dirs.src.iterdir()) == []
        assert not (dirs.stage / "escape.v").exists()


def test_a_link_in_src_is_never_written_through(tmp_path: Path) -> None:
    # GIVEN a host file, and a stage whose src/ holds a link to it (none does: src/ is fresh)
    victim = tmp_path / "victim"
    victim.write_text("host\n")
    with JobDirs.staged() as dirs:
        (dirs.src / "a.v").symlink_to(victim)
        # WHEN a commit file at the link's path is written / THEN it is refused, the host file kept
        with pytest.raises(MaterialiseError):
            workspace.write_files(dirs.src, [_commit_file("a.v", "module a; endmodule\n")], {})
    assert victim.read_text() == "host\n"
