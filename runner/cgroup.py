"""A control group per sandboxed step, so the job's processes *together* stay under its memory
and process limits (RLIMIT_AS and RLIMIT_NPROC bound each process and the count, not the sum:
six children of 1 GiB each fit a 4 GiB RLIMIT_AS).

Where the runner may create cgroups (root on a cgroup v1 host with the memory and pids
controllers, as here; or a cgroup v2 directory whose `cgroup.subtree_control` already enables
`memory` and `pids`, named by A6HUB_RUNNER_CGROUP or the runner's own cgroup), each step gets
`<base>/a6hub-job-<random>` with:

- v1: `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`: no swap either), `pids.max`;
- v2: `memory.max`, `memory.swap.max = 0`, `pids.max`.

The kernel then charges every page the job's processes touch, including files they write on
tmpfs, to that group, and OOM-kills inside it when the sum passes the limit; `oom_kills()`
tells the runner so it can name the limit. Elsewhere (no root, no delegation, Fargate) there is
no cgroup and `JobCgroup.create` returns None: see runner/README.md for what bounds a job then.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aws_lambda_powertools import Logger

from chalicelib.logs import SERVICE
from runner.settings import runner_env

logger = Logger(service=SERVICE, child=True)

PREFIX = "a6hub-job-"
REMOVE_WAIT_SECONDS = 0.5  # how long `remove` waits for a cgroup's members to go
_unavailable_logged: list[str] = []


@dataclass(frozen=True)
class _Hierarchy:
    version: int  # 1 or 2
    controller: str  # "memory" or "pids" (v1); "" for v2's single hierarchy
    base: Path  # where job cgroups are created


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of every cgroup mount, from /proc/self/mountinfo."""
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                found.append((fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """Controller ("" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _v2_ready(base: Path) -> bool:
    try:
        enabled = (base / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False
    return {"memory", "pids"} <= set(enabled) and _writable_dir(base)


def hierarchies() -> list[_Hierarchy] | None:
    """Where this runner can create job cgroups, or None when it cannot.

    Found once per process and setting (A6HUB_RUNNER_CGROUP): the cgroup mounts and the
    runner's own cgroup do not change under it, and re-reading /proc/self/mountinfo cost every
    step about a millisecond. Should a base vanish anyway, `JobCgroup.create` fails its mkdir and
    the step runs without a cgroup, as where there is none (logged)."""
    env = runner_env()
    found = _find(env.cgroup_mode, env.cgroup.strip())
    return list(found) if found is not None else None


@lru_cache(maxsize=4)
def _find(mode: str, explicit: str) -> tuple[_Hierarchy, ...] | None:
    if mode == "off":
        return None
    if mode == "path":
        return (_Hierarchy(2, "", Path(explicit)),) if _v2_ready(Path(explicit)) else None
    mounts, own = _mounts(), _own_paths()
    v1 = [found for controller in ("memory", "pids") if (found := _v1(controller, mounts, own))]
    if len(v1) == 2:
        return tuple(v1)
    for point, fstype, _options in mounts:
        if fstype == "cgroup2" and "" in own:
            base = Path(point) / own[""].lstrip("/")
            if _v2_ready(base):
                return (_Hierarchy(2, "", base),)
    return None


def _v1(controller: str, mounts: list[tuple[str, str, set[str]]],
        own: dict[str, str]) -> _Hierarchy | None:
    """This process's cgroup in the v1 hierarchy of `controller`, if the runner may write it."""
    for point, fstype, options in mounts:
        if fstype == "cgroup" and controller in options and controller in own:
            base = Path(point) / own[controller].lstrip("/")
            if not base.is_dir():  # a cgroup namespace shows "/" for a deeper path
                base = Path(point)
            return _Hierarchy(1, controller, base) if _writable_dir(base) else None
    return None


class JobCgroup:
    """One step's cgroup(s): created before the step, joined by its first process, removed after."""

    def __init__(self, dirs: list[tuple[_Hierarchy, Path]], memory_bytes: int) -> None:
        self.dirs = dirs
        self.memory_bytes = memory_bytes
        self._procs_fds: list[int] = []

    @classmethod
    def create(cls, memory_bytes: int, max_pids: int) -> JobCgroup | None:
        """A fresh cgroup with these limits, or None where the host gives the runner none."""
        found = hierarchies()
        if not found:
            _log_unavailable("no cgroup the runner may create (not root, or no delegated "
                             "cgroup with memory and pids): a job's memory is bounded per process "
                             "only (RLIMIT_AS x RLIMIT_NPROC)")
            return None
        name = PREFIX + secrets.token_hex(8)
        made: list[tuple[_Hierarchy, Path]] = []
        try:
            for hierarchy in found:
                path = hierarchy.base / name
                path.mkdir()
                made.append((hierarchy, path))
                _configure(hierarchy, path, memory_bytes, max_pids)
        except OSError as e:
            _log_unavailable(f"cannot create a job cgroup ({e}): memory bounded per process only")
            cls(made, memory_bytes).remove()
            return None
        return cls(made, memory_bytes)

    def open_for_join(self) -> None:
        """Open cgroup.procs now (as the runner), so the child can join before it drops root."""
        self._procs_fds = [os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                           for _, path in self.dirs]

    def procs_files(self) -> list[str]:
        """The cgroup.procs files a process writes its pid to, as root, to join."""
        return [str(path / "cgroup.procs") for _, path in self.dirs]

    def join(self) -> None:
        """Move the calling process into the cgroup (called in the child between fork and exec;
        only os.write on descriptors opened by `open_for_join`)."""
        pid = str(os.getpid()).encode()
        for fd in self._procs_fds:
            os.write(fd, pid)

    def close_join_fds(self) -> None:
        for fd in self._procs_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._procs_fds = []

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for going over the memory limit."""
        for hierarchy, path in self.dirs:
            if hierarchy.controller not in ("memory", ""):
                continue
            source = "memory.oom_control" if hierarchy.version == 1 else "memory.events"
            with contextlib.suppress(OSError, ValueError):
                for line in (path / source).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def remove(self) -> bool:
        """Kill anything left in the cgroup and delete it; never raises (logs instead).

        True when every directory is gone: the kernel refuses to remove a cgroup that still has
        a live process (EBUSY), so no process of the step is left (zombies are not members)."""
        self.close_join_fds()
        emptied = True
        for _hierarchy, path in self.dirs:
            # Right after a step the kernel may still count an exiting process for a moment
            # (EBUSY in about one step of five): retry soon, backing off, killing what is alive.
            pause, waited = 0.0005, 0.0
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if waited >= REMOVE_WAIT_SECONDS:
                        emptied = False
                        logger.warning("job cgroup could not be removed", extra={"path": str(path)})
                        break
                    _kill_members(path)
                    time.sleep(pause)
                    waited += pause
                    pause = min(pause * 2, 0.01)
        return emptied


def _configure(hierarchy: _Hierarchy, path: Path, memory_bytes: int, max_pids: int) -> None:
    def put(name: str, value: int | str) -> None:
        (path / name).write_text(str(value))

    if hierarchy.version == 2:
        put("memory.max", memory_bytes)
        with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to cap
            put("memory.swap.max", 0)
        put("pids.max", max_pids)
    elif hierarchy.controller == "memory":
        put("memory.limit_in_bytes", memory_bytes)
        with contextlib.suppress(FileNotFoundError):
            put("memory.memsw.limit_in_bytes", memory_bytes)
    else:
        put("pids.max", max_pids)


def _kill_members(path: Path) -> None:
    with contextlib.suppress(OSError):
        for line in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line), signal.SIGKILL)


def remove_stale(max_age_s: float) -> int:
    """Delete empty job cgroups a killed runner left behind (older than any live step)."""
    removed = 0
    for hierarchy in hierarchies() or []:
        with contextlib.suppress(OSError):
            for entry in os.scandir(hierarchy.base):
                if entry.name.startswith(PREFIX) and entry.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        if time.time() - entry.stat().st_mtime > max_age_s:
                            os.rmdir(entry.path)
                            removed += 1
    return removed


def _log_unavailable(message: str) -> None:
    if message not in _unavailable_logged:
        _unavailable_logged.append(message)
        logger.warning(message)
