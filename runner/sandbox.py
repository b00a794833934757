"""Run one tool command inside bubblewrap with resource limits, streaming its output.

The tool sees: the toolchain read-only (/usr and the /lib, /bin links; /usr/local hidden behind
an empty read-only tmpfs), the job's sources read-only at /job/src, runner-generated scripts
read-only at /job/gen, a writable /job/work (its cwd), a private /tmp (a tmpfs capped at
`tmp_bytes`), a fresh /proc and a minimal read-only /dev (device nodes only; /dev/shm is not
writable: none of the tools use POSIX shared memory). Those two are the only writable places,
and both count in the job's disk limit: /tmp by its size cap, /job/work by the runner's check.
It has no network, no environment beyond PATH/HOME/LANG, its own pid/ipc/uts/cgroup namespaces,
cannot create user namespaces, and runs as uid 1000 inside; on the host it is a fresh
unprivileged uid per job when the runner is root (see sandbox_uid), so RLIMIT_NPROC counts that
job only. Limits: rlimits on every process (CPU, address space, file size, processes), a cgroup
per step bounding the memory and the processes of all of them together where the host allows
one (runner/cgroup.py), and the runner watches wall time, output size, disk use of the work dir
and the cancel flag, killing the whole tree when one trips.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner import fstree
from runner.cgroup import JobCgroup, remove_stale
from runner.limits import MIB, Limits
from runner.settings import runner_env

logger = logging.getLogger(__name__)

INSIDE_ROOT = "/job"
SANDBOX_UID = 1000  # the tool's uid inside its user namespace
TOOL_PATH = "/usr/bin:/bin"
TAIL_BYTES = 64 * 1024
POLL_SECONDS = 0.1
KILL_WAIT_SECONDS = 1.5
DISK_CHECK_SECONDS = 1.0
SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox, not the host's /tmp
TMPFS_BYTES = 64 * MIB  # the sandbox's /tmp, at most; never more than a quarter of the disk limit
MIN_ENTRY_BYTES = 4096  # what a file or folder costs the disk limit at least (an inode, a block)

# Output that tells an allocation failed (RLIMIT_AS reports no signal of its own).
MEMORY_MARKERS = (b"out of memory", b"bad_alloc", b"cannot allocate memory", b"memory exhausted",
                  b"failed to allocate", b"virtual memory exhausted", b"insufficient memory")
DISK_MARKERS = (b"no space left on device", b"disk quota exceeded")
FORK_MARKERS = (b"resource temporarily unavailable", b"cannot fork", b"fork failed")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here and unsandboxed execution was not explicitly allowed."""


@dataclass(frozen=True)
class JobDirs:
    """Where one job's files live on the host.

    The tools' directories (src: a copy of the project's files, read-only to tools; gen:
    runner-generated scripts, read-only; work: the tools' writable cwd) sit in a private staging
    dir under a runner-owned base (A6HUB_RUNNER_SANDBOX_DIR, default $TMPDIR/a6hub-sandbox, mode
    0711) so the unprivileged sandbox uid can reach them wherever the caller's workdir is;
    out (artifacts) is `workdir/out`, written by the runner only.
    """

    stage: Path
    src: Path
    gen: Path
    work: Path
    out: Path

    @classmethod
    def prepare(cls, workdir: Path, sandbox_uid: int | None) -> JobDirs:
        workdir = Path(workdir).resolve()
        stage = Path(tempfile.mkdtemp(prefix="job-", dir=_stage_base()))
        dirs = cls(stage=stage, src=stage / "src", gen=stage / "gen", work=stage / "work",
                   out=workdir / "out")
        given = workdir / "src"
        if given.is_dir():
            shutil.copytree(given, dirs.src, symlinks=True)
        else:
            dirs.src.mkdir()
        dirs.gen.mkdir()
        dirs.work.mkdir()
        dirs.out.mkdir(parents=True, exist_ok=True)
        # The sandbox uid traverses the stage (without listing it) and reads src and gen.
        stage.chmod(0o711)
        dirs.gen.chmod(0o755)
        _make_readable(dirs.src)
        if sandbox_uid is not None:
            os.chown(dirs.work, sandbox_uid, sandbox_uid)
        return dirs

    def remove_stage(self) -> bool:
        """Delete the stage, however deep the tree a tool left in it; never raises (a clean-up
        failure must not fail the job nor stop the runner). False, logged, when something stays."""
        try:
            fstree.remove_tree(self.stage)
        except OSError as e:
            logger.warning("job stage %s not fully removed: %s", self.stage, e)
            return False
        return True


def _stage_base() -> str:
    base = runner_env().sandbox_dir or os.path.join(tempfile.gettempdir(), "a6hub-sandbox")
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o711)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SandboxUnavailable(f"{base} is not a directory owned by the runner; refusing to use it")
    os.chmod(base, 0o711)  # noqa: S103 - traverse only: job stages inside have random names
    return base


def _make_readable(top: Path) -> None:
    top.chmod(0o755)
    for parent, dirnames, filenames in os.walk(top):
        for name in dirnames:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)  # noqa: S103 - mounted read-only for the sandbox uid
        for name in filenames:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)


@dataclass
class CommandResult:
    """How one sandboxed command ended: exit status, the limit that stopped it, its output's tail."""

    exit_code: int | None  # the tool's exit status (128+N when killed by signal N)
    limit: str | None = None  # message naming the limit that ended the step, if one did
    cancelled: bool = False
    duration_s: float = 0.0
    cpu_s: float = 0.0
    output_bytes: int = 0
    tail: bytes = b""
    signal: int | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None and not self.cancelled


@dataclass
class LogBudget:
    """Tool output shared by all steps of a job; past `limit` bytes the running tool is stopped."""

    limit: int
    used: int = 0
    sink: Callable[[bytes], None] = field(default=lambda _chunk: None)
    tee: bytearray | None = None  # also keep what was forwarded (lint output to parse)

    def write(self, chunk: bytes) -> bool:
        """Forward what fits; False when the budget is exhausted."""
        room = self.limit - self.used
        if room <= 0:
            return False
        part = chunk[:room]
        self.used += len(part)
        self.sink(part)
        if self.tee is not None:
            self.tee += part
        return len(part) == len(chunk)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


_probe: dict[str, str | None] = {}


def sandbox_problem() -> str | None:
    """None when bubblewrap works here, else why not. Probed once per process by running
    /bin/true in a sandbox exactly as jobs are run (the runner calls this before polling)."""
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not installed"
    if "result" not in _probe:
        _probe["result"] = _run_probe()
    return _probe["result"]


def remove_stale_stages(max_age_s: float) -> int:
    """Delete job stages left by a runner that was killed mid-job (older than any live job)."""
    base = _stage_base()
    removed = 0
    for entry in os.scandir(base):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (entry.name.startswith("job-") and stat.S_ISDIR(info.st_mode)
                and time.time() - info.st_mtime > max_age_s):
            stage = Path(entry.path)
            if JobDirs(stage, stage / "src", stage / "gen", stage / "work", stage / "out").remove_stage():
                removed += 1
    return removed


def _run_probe() -> str | None:
    # Once per runner process: a job's stage cannot outlive twice the wall limit (and an hour).
    # Leftovers are a nuisance, not a reason to refuse to start.
    max_age = max(3600.0, 2.0 * Limits.from_env().wall_seconds)
    try:
        removed = remove_stale_stages(max_age) + remove_stale(max_age)
    except OSError as e:
        logger.warning("stale job stages not cleaned up: %s", e)
        removed = 0
    if removed:
        logger.info("removed %d stale job stages and cgroups", removed)
    with tempfile.TemporaryDirectory(prefix="a6hub-probe-") as tmp:
        uid = sandbox_uid()
        box = Sandbox(JobDirs.prepare(Path(tmp), uid), Limits(wall_seconds=30), sandboxed=True, uid=uid)
        output: list[bytes] = []
        try:
            result = box.run(["/bin/true"], LogBudget(4096, sink=output.append), threading.Event())
        finally:
            box.dirs.remove_stage()
    if result.ok:
        return None
    detail = b"".join(output).decode(errors="replace").strip().splitlines()
    return f"bubblewrap cannot run here ({detail[-1] if detail else f'exit {result.exit_code}'})"


def unsandboxed_allowed() -> bool:
    return runner_env().unsandboxed


def sandbox_uid() -> int | None:
    """A host uid for one job's tools when the runner is root; None when it is not root.

    Each job draws its own uid from A6HUB_RUNNER_SANDBOX_UIDS ("first-last", default
    200000-265535) so that RLIMIT_NPROC counts that job's processes only and concurrent jobs
    cannot signal one another. A6HUB_RUNNER_SANDBOX_UID pins one uid instead.
    """
    if os.geteuid() != 0:
        return None
    env = runner_env()
    if env.sandbox_uid is not None:
        return env.sandbox_uid
    first, last = env.uid_range
    return secrets.SystemRandom().randint(first, last)


class Sandbox:
    """Runs argv lists for one job; `inside(...)` gives the paths tools see."""

    def __init__(self, dirs: JobDirs, limits: Limits, *, sandboxed: bool, uid: int | None = None) -> None:
        self.dirs = dirs
        self.limits = limits
        self.sandboxed = sandboxed
        self.uid = uid if sandboxed else None
        # Wall time counts for the whole job, across its steps.
        self.deadline = time.monotonic() + limits.wall_seconds

    @classmethod
    def for_job(cls, workdir: Path, limits: Limits) -> Sandbox:
        """Check bubblewrap (or the explicit development opt-out) and prepare the job's dirs."""
        problem = sandbox_problem()
        if problem is None:
            uid = sandbox_uid()
            return cls(JobDirs.prepare(workdir, uid), limits, sandboxed=True, uid=uid)
        if not unsandboxed_allowed():
            raise SandboxUnavailable(
                f"{problem}; refusing to run untrusted HDL tools. Install the Debian package "
                "'bubblewrap' on a kernel with user namespaces, or set A6HUB_RUNNER_UNSANDBOXED=1 "
                "for development only."
            )
        logger.warning("A6HUB_RUNNER_UNSANDBOXED=1: running tools WITHOUT a sandbox (%s)", problem)
        return cls(JobDirs.prepare(workdir, None), limits, sandboxed=False)

    def inside(self, name: str, *parts: str) -> str:
        """Path of job dir `name` ("src", "gen", "work") as the tool sees it."""
        if self.sandboxed:
            return "/".join((INSIDE_ROOT, name, *parts))
        return str(Path(getattr(self.dirs, name), *parts))

    def command(self, argv: list[str], info_fd: int | None = None) -> list[str]:
        if not self.sandboxed:
            return argv
        info = ["--info-fd", str(info_fd)] if info_fd is not None else []
        return [*self._bwrap_prefix(), *info, "--", *argv]

    def _bwrap_prefix(self) -> list[str]:
        args = [
            bwrap_path() or "bwrap",
            "--unshare-all", "--unshare-user", "--disable-userns",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            "--clearenv",
            "--setenv", "PATH", TOOL_PATH,
            "--setenv", "HOME", f"{INSIDE_ROOT}/work",
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "TMPDIR", SANDBOX_TMP,
            "--ro-bind", "/usr", "/usr",
            # Python and anything pip-installed (the runner itself in a slim image) live here:
            # hidden behind an empty tmpfs, read-only so that it is no uncounted RAM disk.
            "--tmpfs", "/usr/local", "--remount-ro", "/usr/local",
        ]
        args += _root_links()
        if os.path.isdir("/etc/alternatives"):
            # Only symlinks (cc, c++, awk...) that compilers and make resolve; no other /etc.
            args += ["--ro-bind", "/etc/alternatives", "/etc/alternatives"]
        args += [
            "--proc", "/proc",
            # bubblewrap's /dev is a tmpfs with no size (so was /dev/shm): device nodes only.
            "--dev", "/dev", "--remount-ro", "/dev",
            "--size", str(tmp_bytes(self.limits)), "--tmpfs", SANDBOX_TMP,
            "--ro-bind", str(self.dirs.src), f"{INSIDE_ROOT}/src",
            "--ro-bind", str(self.dirs.gen), f"{INSIDE_ROOT}/gen",
            "--bind", str(self.dirs.work), f"{INSIDE_ROOT}/work",
            # Everything else (/, /job) read-only: tools write only in work and /tmp.
            "--remount-ro", "/",
            "--chdir", f"{INSIDE_ROOT}/work",
        ]
        return args

    def run(self, argv: list[str], budget: LogBudget, cancelled: threading.Event) -> CommandResult:
        """Run argv to completion, a limit, or cancellation; output goes to `budget`."""
        started = time.monotonic()
        group = (JobCgroup.create(self.limits.memory_bytes, self.limits.processes + 2)
                 if self.sandboxed else None)
        # bubblewrap reports the host pid of the sandbox's init here, so a kill can wait for it.
        info_r, info_w = os.pipe()
        try:
            if group is not None:
                group.open_for_join()
            # argv is built by runner/tools.py from validated config, never taken from users.
            proc = subprocess.Popen(
                self.command(argv, info_w if self.sandboxed else None),
                pass_fds=(info_w,) if self.sandboxed else (),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=str(self.dirs.work),
                env=self._env(),
                start_new_session=True,
                close_fds=True,
                preexec_fn=lambda: self._in_child(group),
            )
        except BaseException:
            os.close(info_r)
            if group is not None:
                group.remove()
            raise
        finally:
            os.close(info_w)
            if group is not None:
                group.close_join_fds()
        watch = _Watch(proc, self.limits, budget, cancelled, self.deadline, info_r, self.dirs.work,
                       group)
        try:
            result = watch.follow()
        finally:
            os.close(info_r)
            if self.uid is not None:
                _reap_uid(self.uid)
            if group is not None:
                group.remove()
        result.duration_s = time.monotonic() - started
        self._explain(result)
        return result

    def _env(self) -> dict[str, str]:
        if self.sandboxed:
            return {}  # bwrap --clearenv sets the tool's environment
        return {"PATH": TOOL_PATH, "HOME": str(self.dirs.work), "LANG": "C.UTF-8"}

    def _in_child(self, group: JobCgroup | None) -> None:
        """Between fork and exec, in this order: join the step's cgroup (which needs the
        runner's privileges), drop to the job's uid, set the rlimits. Only system calls on
        values prepared before the fork: safe with the runner's other threads."""
        if group is not None:
            group.join()
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)
        self._apply_rlimits()

    def _apply_rlimits(self) -> None:
        lim = self.limits
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (lim.memory_bytes, lim.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.sandboxed:
            # bubblewrap needs two processes of its own (its monitor and the namespace's init).
            resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes + 2, lim.processes + 2))

    def _explain(self, result: CommandResult) -> None:
        """Name the limit behind a tool's death when the kernel, not the runner, enforced it."""
        if result.limit or result.cancelled or result.exit_code in (0, None):
            return
        lim = self.limits
        sig = result.exit_code - 128 if result.exit_code > 128 else None
        result.signal = sig
        tail = result.tail.lower()
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and result.cpu_s >= lim.cpu_seconds - 0.5):
            result.limit = f"CPU time limit of {lim.cpu_seconds} s exceeded"
        elif sig == signal.SIGXFSZ or b"file too large" in tail:
            result.limit = f"file size limit of {_size(lim.file_bytes)} exceeded"
        elif any(marker in tail for marker in DISK_MARKERS):  # /tmp's tmpfs is full
            result.limit = f"disk limit of {_size(lim.disk_bytes)} exceeded"
        elif any(marker in tail for marker in MEMORY_MARKERS):
            result.limit = f"memory limit of {_size(lim.memory_bytes)} exceeded"
        elif any(marker in tail for marker in FORK_MARKERS):
            result.limit = f"process limit of {lim.processes} processes exceeded"


class _Watch:
    """Pumps one process's output into the log budget while watching wall time and cancel."""

    def __init__(self, proc: subprocess.Popen[bytes], limits: Limits, budget: LogBudget,
                 cancelled: threading.Event, deadline: float, info_fd: int, work: Path,
                 group: JobCgroup | None = None) -> None:
        self.proc = proc
        self.group = group
        self.info_fd = info_fd
        self.work = work
        self.next_disk_check = time.monotonic() + DISK_CHECK_SECONDS
        self.limits = limits
        self.budget = budget
        self.cancelled = cancelled
        self.deadline = deadline
        self.result = CommandResult(exit_code=None)
        self.tail = bytearray()

    def follow(self) -> CommandResult:
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            open_stream = True
            pause = 0.001  # after EOF the exit follows within a moment: poll fast, then back off
            while not self._stopped():
                if open_stream and selector.select(POLL_SECONDS):
                    chunk = os.read(stream.fileno(), 65536)
                    if not chunk:
                        selector.unregister(stream)
                        open_stream = False
                    else:
                        self._take(chunk)
                elif self._reap(os.WNOHANG):
                    break
                elif not open_stream:
                    time.sleep(pause)
                    pause = min(pause * 2, POLL_SECONDS)
        if self.result.limit or self.result.cancelled:
            self._kill()
        self._reap(0)
        if not (self.result.limit or self.result.cancelled):
            # A tool may fill the disk faster than the periodic check, and an OOM kill of one
            # child leaves the others (and a zero exit status) behind.
            self._over_memory() or self._over_disk()
        self._drain()
        stream.close()
        self.result.tail = bytes(self.tail)
        return self.result

    def _take(self, chunk: bytes) -> None:
        self.result.output_bytes += len(chunk)
        self.tail += chunk
        del self.tail[:-TAIL_BYTES]
        if not self.budget.write(chunk):
            self.result.limit = f"log limit of {_size(self.limits.log_bytes)} exceeded"

    def _stopped(self) -> bool:
        if self.result.limit:
            return True
        if self.cancelled.is_set():
            self.result.cancelled = True
            return True
        now = time.monotonic()
        if now > self.deadline:
            self.result.limit = f"wall time limit of {self.limits.wall_seconds} s exceeded"
            return True
        if now >= self.next_disk_check:
            self.next_disk_check = now + DISK_CHECK_SECONDS
            return self._over_memory() or self._over_disk()
        return False

    def _over_memory(self) -> bool:
        if self.group is not None and self.group.oom_kills():
            self.result.limit = f"memory limit of {_size(self.limits.memory_bytes)} exceeded"
            return True
        return False

    def _over_disk(self) -> bool:
        budget = work_bytes(self.limits)
        if disk_usage(self.work, budget) > budget:
            self.result.limit = f"disk limit of {_size(self.limits.disk_bytes)} exceeded"
            return True
        return False

    def _drain(self) -> None:
        """After exit: keep what is left in the pipe (still within the log budget)."""
        if self.result.limit or self.result.cancelled:
            return
        fd = self.proc.stdout.fileno() if self.proc.stdout else -1
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._take(chunk)
            if self.result.limit:
                return

    def _kill(self) -> None:
        """Kill bubblewrap and the sandbox's pid-namespace init; the kernel then kills every
        process in the namespace. Return once the init is gone (bounded), so the tree is."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        init = self._sandbox_init_pid()
        if init is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while time.monotonic() < deadline and _alive(init):
            time.sleep(0.01)

    def _sandbox_init_pid(self) -> int | None:
        os.set_blocking(self.info_fd, False)
        try:
            info = os.read(self.info_fd, 65536)
        except OSError:
            return None
        match = re.search(rb'"child-pid"\s*:\s*(\d+)', info)
        return int(match[1]) if match else None

    def _reap(self, flags: int) -> bool:
        if self.proc.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, flags)
        if pid == 0:
            return False
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code
        self.result.exit_code = 128 - code if code < 0 else code
        self.result.cpu_s = usage.ru_utime + usage.ru_stime
        return True


def tmp_bytes(limits: Limits) -> int:
    """Size cap of the sandbox's /tmp tmpfs: part of the disk limit, not on top of it."""
    return max(MIB, min(TMPFS_BYTES, limits.disk_bytes // 4))


def work_bytes(limits: Limits) -> int:
    """What the work dir may hold: the disk limit less what /tmp may hold."""
    return max(0, limits.disk_bytes - tmp_bytes(limits))


def disk_usage(top: Path, stop_above: int) -> int:
    """Bytes allocated under `top` (links not followed), each entry counted as at least
    MIN_ENTRY_BYTES (empty files and folders cost inodes: a million of them must not be free);
    stops counting once over `stop_above`."""
    total = 0
    stack = [str(top)]
    while stack and total <= stop_above:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += max(info.st_blocks * 512, MIN_ENTRY_BYTES)
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
    return total


def _reap_uid(uid: int) -> None:
    """Make sure no process of the job's uid outlives a step (the kernel tears the pid namespace
    down as bubblewrap exits, but a fork bomb's children can still be visible for a moment)."""
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while True:
        pids = _pids_of(uid)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid and _alive(int(name)):
                    pids.append(int(name))
    return pids


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (its namespace members are all gone then)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _size(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def _root_links() -> list[str]:
    """Mirror the host's /bin, /lib... : merged-/usr symlinks as symlinks, real dirs read-only."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args
