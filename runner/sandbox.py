"""Run one tool command inside bubblewrap with resource limits: the bwrap command, rlimits, uid.

Directories live in runner/jobdirs.py, following the running command in runner/watch.py.

The tool sees: the toolchain read-only (/usr and the /lib, /bin links; /usr/local hidden behind
an empty read-only tmpfs), the job's sources read-only at /job/src, runner-generated scripts
read-only at /job/gen, a writable /job/work (its cwd), a private /tmp (a tmpfs capped at
`tmp_bytes`), a fresh /proc and a minimal read-only /dev (device nodes only; /dev/shm is not
writable: none of the tools use POSIX shared memory). Those two are the only writable places,
and both count in the job's disk limit: /tmp by its size cap, /job/work by the runner's check.
It has no network, no environment beyond PATH/HOME/LANG, its own pid/ipc/uts/cgroup namespaces,
cannot create user namespaces, and runs as uid 1000 inside; on the host it is a fresh
unprivileged uid per job when the runner is root (see job_uid), so RLIMIT_NPROC counts that
job only. Limits: rlimits on every process (CPU, address space, file size, processes), a cgroup
per step bounding the memory and the processes of all of them together where the host allows
one (runner/cgroup.py), and the runner watches wall time, output size, disk use of the work dir
and the cancel flag, killing the whole tree when one trips.
"""

from __future__ import annotations

import ctypes
import os
import resource
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from aws_lambda_powertools import Logger

from chalicelib.logs import SERVICE
from runner.cgroup import JobCgroup, remove_stale
from runner.jobdirs import JobDirs, SandboxUnavailable, remove_stale_stages
from runner.limits import Limits
from runner.settings import job_limits, runner_env
from runner.uids import UidLease, hold_uid
from runner.watch import CommandResult, LogBudget, Watch, reap_uid, size_text, tmp_bytes

logger = Logger(service=SERVICE, child=True)

# JobDirs, CommandResult, LogBudget and remove_stale_stages live in runner/jobdirs.py and
# runner/watch.py; they are re-exported for callers that hold a Sandbox.
__all__ = ["INSIDE_ROOT", "CommandResult", "JobDirs", "LogBudget", "Sandbox", "SandboxUnavailable",
           "remove_stale_stages", "job_uid", "sandbox_problem", "sandbox_uid", "unsandboxed_allowed"]

INSIDE_ROOT = "/job"
SANDBOX_UID = 1000  # the tool's uid inside its user namespace
TOOL_PATH = "/usr/bin:/bin"
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox, not the host's /tmp
NO_UID = UidLease(None, -1)  # a runner that is not root holds none

# Output that tells an allocation failed (RLIMIT_AS reports no signal of its own).
MEMORY_MARKERS = (b"out of memory", b"bad_alloc", b"cannot allocate memory", b"memory exhausted",
                  b"failed to allocate", b"virtual memory exhausted", b"insufficient memory")
DISK_MARKERS = (b"no space left on device", b"disk quota exceeded")
FORK_MARKERS = (b"resource temporarily unavailable", b"cannot fork", b"fork failed")

def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=1)
def _launch_tools() -> tuple[str, str, str] | None:
    """(sh, prlimit, setpriv) for the exec-chain launch, or None where one is missing (then
    steps start through a preexec_fn, the slower way)."""
    found = tuple(shutil.which(name, path="/usr/bin:/bin") for name in ("sh", "prlimit", "setpriv"))
    return None if None in found else found  # type: ignore[return-value]


_probe: dict[str, str | None] = {}


def sandbox_problem() -> str | None:
    """None when bubblewrap works here, else why not. Probed once per process by running
    /bin/true in a sandbox exactly as jobs are run (the runner calls this before polling)."""
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not installed"
    if "result" not in _probe:
        _probe["result"] = _run_probe()
    return _probe["result"]



def _run_probe() -> str | None:
    # Once per runner process: a job's stage cannot outlive twice the wall limit (and an hour).
    # Leftovers are a nuisance, not a reason to refuse to start.
    max_age = max(3600.0, 2.0 * job_limits().wall_seconds)
    try:
        removed = remove_stale_stages(max_age) + remove_stale(max_age)
    except OSError as e:
        logger.warning("stale job stages not cleaned up", extra={"error": str(e)})
        removed = 0
    if removed:
        logger.info(f"removed {removed} stale job stages and cgroups")
    with JobDirs.staged() as dirs, job_uid() as lease:
        box = Sandbox(dirs, Limits(wall_seconds=30), sandboxed=True, uid=lease.uid)
        output: list[bytes] = []
        result = box.run(["/bin/true"], LogBudget(4096, sink=output.append), threading.Event())
    if result.ok:
        return None
    detail = b"".join(output).decode(errors="replace").strip().splitlines()
    return f"bubblewrap cannot run here ({detail[-1] if detail else f'exit {result.exit_code}'})"


def unsandboxed_allowed() -> bool:
    return runner_env().unsandboxed


def sandbox_uid() -> int | None:
    """A uid of A6HUB_RUNNER_SANDBOX_UIDS drawn at random, held by nothing (the tests' and the
    sandbox bench's one-off sandboxes); None when not root. Jobs hold theirs: `job_uid`."""
    if os.geteuid() != 0:
        return None
    env = runner_env()
    if env.sandbox_uid is not None:
        return env.sandbox_uid
    first, last = env.uid_range
    return secrets.SystemRandom().randint(first, last)


def job_uid() -> UidLease:
    """The host uid of one job's tools, held until `release` (runner/uids.py): a uid of
    A6HUB_RUNNER_SANDBOX_UIDS ("first-last", default 200000-265535) that no other running job on
    this host holds, so RLIMIT_NPROC counts that job's processes only and concurrent jobs cannot
    signal, or reap, one another's. uid None (nothing held) when the runner is not root;
    A6HUB_RUNNER_SANDBOX_UID pins one uid instead, not held (it forces one job per runner).
    Raises UidsExhausted, or OSError when A6HUB_RUNNER_UID_LOCK_DIR is unusable."""
    if os.geteuid() != 0:
        return NO_UID
    env = runner_env()
    if env.sandbox_uid is not None:
        return UidLease(env.sandbox_uid, -1)
    first, last = env.uid_range
    return hold_uid(first, last, env.uid_lock_dir)


@lru_cache(maxsize=1)
def become_subreaper() -> bool:
    """Make this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER), once: orphans of
    its descendants, such as the init of a sandbox whose bubblewrap has exited, are then
    reparented to it rather than to PID 1, so Watch reaps them by pid and counts their CPU time
    (a runner that is PID 1, as in its container, gets them anyway). Called by `python -m
    runner` once its sandbox probe passed (runner/__main__.reap_sandbox_inits) and by the
    sandbox bench: a process that also starts other process trees
    and waits only for its own children (a test session) must not call it, or the orphans of
    those trees stay its zombies. False where the kernel refuses (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class StepExtras:
    """What one step adds to the sandbox: environment variables, read-only mounts (host path,
    path inside) and folders of the toolchain hidden behind an empty read-only tmpfs. Built by
    the runner (the testbench Python of cocotb jobs, runner/kinds/cocotb.py); never a user value."""

    env: dict[str, str] = field(default_factory=dict)
    ro_binds: tuple[tuple[str, str], ...] = ()
    hidden: tuple[str, ...] = ()


Launch = Literal["exec", "preexec"]

# The exec chain's first link: join each cgroup named before "--", then become the rest.
JOIN_SCRIPT = ('while [ "$1" != -- ]; do echo $$ >"$1" || { echo "a6hub: cannot join the step '
               'cgroup" >&2; exit 125; }; shift; done; shift; exec "$@"')


class Sandbox:
    """Runs argv lists for one job in its stage (`dirs`, the caller's to remove); `inside(...)`
    gives the paths tools see. A sandboxed job's uid is given the stage's work dir.

    `launch` is how a step's first process gets its cgroup, uid and rlimits before bubblewrap
    runs: "exec" (the default where util-linux's prlimit and setpriv exist) through a chain of
    execs, `sh` (joins the cgroup) -> `prlimit` -> `setpriv` (drops to the job's uid) -> bwrap,
    which lets CPython start the child with vfork; "preexec" in Python between fork and exec,
    which forks the whole runner (about 8 ms more per step for a runner-sized process)."""

    def __init__(self, dirs: JobDirs, limits: Limits, *, sandboxed: bool, uid: int | None = None,
                 launch: Launch | None = None, lease: UidLease | None = None) -> None:
        self.dirs = dirs
        self.lease = lease  # the job's hold on its uid (for_job), released by `release`
        self.limits = limits
        self.sandboxed = sandboxed
        self.uid = uid if sandboxed else None
        self.launch: Launch = launch or ("exec" if _launch_tools() else "preexec")
        if self.uid is not None:
            os.chown(dirs.work, self.uid, self.uid)
        # Wall time counts for the whole job, across its steps.
        self.deadline = time.monotonic() + limits.wall_seconds

    @classmethod
    def for_job(cls, dirs: JobDirs, limits: Limits) -> Sandbox:
        """Check bubblewrap (or the explicit development opt-out), take the job's stage and hold
        its uid (`job_uid`) until `release`."""
        problem = sandbox_problem()
        if problem is None:
            lease = job_uid()
            try:
                return cls(dirs, limits, sandboxed=True, uid=lease.uid, lease=lease)
            except BaseException:
                lease.release()
                raise
        if not unsandboxed_allowed():
            raise SandboxUnavailable(
                f"{problem}; refusing to run untrusted HDL tools. Install the Debian package "
                "'bubblewrap' on a kernel with user namespaces, or set A6HUB_RUNNER_UNSANDBOXED=1 "
                "for development only."
            )
        logger.warning(f"A6HUB_RUNNER_UNSANDBOXED=1: running tools WITHOUT a sandbox ({problem})")
        return cls(dirs, limits, sandboxed=False)

    def release(self) -> None:
        """Give the job's uid back (for_job holds it): call once its last step has ended, which
        leaves no process of the uid (each step's cgroup removed, or the uid reaped)."""
        if self.lease is not None:
            self.lease.release()

    def inside(self, name: str, *parts: str) -> str:
        """Path of job dir `name` ("src", "gen", "work") as the tool sees it."""
        if self.sandboxed:
            return "/".join((INSIDE_ROOT, name, *parts))
        return str(Path(getattr(self.dirs, name), *parts))

    def command(self, argv: list[str], info_fd: int | None = None,
                extra: StepExtras | None = None) -> list[str]:
        if not self.sandboxed:
            return argv
        info = ["--info-fd", str(info_fd)] if info_fd is not None else []
        return [*self._bwrap_prefix(extra or StepExtras()), *info, "--", *argv]

    def _bwrap_prefix(self, extra: StepExtras) -> list[str]:
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
            *[a for name, value in extra.env.items() for a in ("--setenv", name, value)],
            "--ro-bind", "/usr", "/usr",
            # Python and anything pip-installed (the runner itself in a slim image) live here:
            # hidden behind an empty tmpfs, read-only so that it is no uncounted RAM disk.
            "--tmpfs", "/usr/local", "--remount-ro", "/usr/local",
            *[a for path in extra.hidden for a in ("--tmpfs", path, "--remount-ro", path)],
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
            *[a for host, inside in extra.ro_binds for a in ("--ro-bind", host, inside)],
            # Everything else (/, /job) read-only: tools write only in work and /tmp.
            "--remount-ro", "/",
            "--chdir", f"{INSIDE_ROOT}/work",
        ]
        return args

    def run(self, argv: list[str], budget: LogBudget, cancelled: threading.Event,
            extra: StepExtras | None = None) -> CommandResult:
        """Run argv to completion, a limit, or cancellation; output goes to `budget`.
        `extra`: environment variables, read-only mounts and hidden folders for this
        step only (runner-made values, never a user's)."""
        started = time.monotonic()
        group = (JobCgroup.create(self.limits.memory_bytes, self.limits.processes + 2)
                 if self.sandboxed else None)
        # bubblewrap reports the host pid of the sandbox's init here, so a kill can wait for it.
        info_r, info_w = os.pipe()
        try:
            if group is not None and self.launch == "preexec":
                group.open_for_join()
            # argv is built by runner/tools.py from validated config, never taken from users.
            command = self.command(argv, info_w if self.sandboxed else None, extra)
            pass_fds = (info_w,) if self.sandboxed else ()
            preexec: Callable[[], None] | None = None
            if self.launch == "exec":
                command = self._exec_chain(group) + command
            else:
                preexec = lambda: self._in_child(group)  # noqa: E731
            proc = subprocess.Popen(
                command,
                pass_fds=pass_fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=str(self.dirs.work),
                env=self._env(extra),
                start_new_session=True,
                close_fds=True,
                preexec_fn=preexec,
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
        watch = Watch(proc, self.limits, budget, cancelled, self.deadline, info_r, self.dirs.work,
                       group)
        try:
            result = watch.follow()
        finally:
            os.close(info_r)
            # A removed cgroup had no live member left: every process of the step descends from
            # its first one, which joined before anything forked. Else look for the job's uid.
            emptied = group.remove() if group is not None else False
            if self.uid is not None and not emptied:
                reap_uid(self.uid)
        result.duration_s = time.monotonic() - started
        self._explain(result)
        return result

    def _env(self, extra: StepExtras | None) -> dict[str, str]:
        if self.sandboxed:
            return {}  # bwrap --clearenv sets the tool's environment
        return {"PATH": TOOL_PATH, "HOME": str(self.dirs.work), "LANG": "C.UTF-8",
                **(extra.env if extra else {})}

    def _exec_chain(self, group: JobCgroup | None) -> list[str]:
        """The commands a step's first process execs through before bubblewrap, each replacing
        the last (no fork): the same three things, in the same order, as `_in_child`.

        `sh` (still root) writes its pid to the step cgroup's cgroup.procs files (a failed write
        ends the step with exit 125 before anything ran; no descriptor of them is left open),
        `prlimit` sets the rlimits (soft and hard, exact bytes), `setpriv` drops
        to the job's uid and gid with no supplementary groups (setresuid: real, effective and
        saved, so the capabilities go too). Paths are absolute: the environment is empty."""
        tools = _launch_tools()
        assert tools is not None, "exec launch without sh, prlimit and setpriv"
        sh, prlimit, setpriv = tools
        chain: list[str] = []
        if group is not None:
            chain += [sh, "-c", JOIN_SCRIPT, "sh", *group.procs_files(), "--"]
        lim = self.limits
        chain += [prlimit, f"--cpu={lim.cpu_seconds}:{lim.cpu_seconds + 1}",
                  f"--as={lim.memory_bytes}", f"--fsize={lim.file_bytes}", "--core=0"]
        if self.sandboxed:
            chain.append(f"--nproc={lim.processes + 2}")  # see _apply_rlimits
        chain.append("--")
        if self.uid is not None:
            chain += [setpriv, f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--"]
        return chain

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
            result.limit = f"file size limit of {size_text(lim.file_bytes)} exceeded"
        elif any(marker in tail for marker in DISK_MARKERS):  # /tmp's tmpfs is full
            result.limit = f"disk limit of {size_text(lim.disk_bytes)} exceeded"
        elif any(marker in tail for marker in MEMORY_MARKERS):
            result.limit = f"memory limit of {size_text(lim.memory_bytes)} exceeded"
        elif any(marker in tail for marker in FORK_MARKERS):
            result.limit = f"process limit of {lim.processes} processes exceeded"


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
