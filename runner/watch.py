"""Following one sandboxed command: its output into the job's log budget, and its limits.

`Watch` pumps the command's output into a `LogBudget` while it watches wall time, the cancel
flag, the work dir's disk use and the step cgroup's OOM kills, killing the whole process tree
when one trips; `CommandResult` says how the command ended and which limit ended it.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner.cgroup import JobCgroup
from runner.limits import MIB, Limits

TAIL_BYTES = 64 * 1024
POLL_SECONDS = 0.1
KILL_WAIT_SECONDS = 1.5
DISK_CHECK_SECONDS = 1.0
TMPFS_BYTES = 64 * MIB  # the sandbox's /tmp, at most; never more than a quarter of the disk limit
MIN_ENTRY_BYTES = 4096  # what a file or folder costs the disk limit at least (an inode, a block)


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


class Watch:
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
        self._init_pid: int | None = None  # 0: bubblewrap reported none

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
        self._reap_init()
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
            self.result.limit = f"log limit of {size_text(self.limits.log_bytes)} exceeded"

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
            self.result.limit = f"memory limit of {size_text(self.limits.memory_bytes)} exceeded"
            return True
        return False

    def _over_disk(self) -> bool:
        budget = work_bytes(self.limits)
        if disk_usage(self.work, budget) > budget:
            self.result.limit = f"disk limit of {size_text(self.limits.disk_bytes)} exceeded"
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
        """The host pid of the sandbox's init, as bubblewrap reported it (read once)."""
        if self._init_pid is None and self.info_fd >= 0:
            os.set_blocking(self.info_fd, False)
            try:
                info = os.read(self.info_fd, 65536)
            except OSError:
                info = b""
            match = re.search(rb'"child-pid"\s*:\s*(\d+)', info)
            self._init_pid = int(match[1]) if match else 0
        return self._init_pid or None

    def _reap_init(self) -> None:
        """Reap the sandbox's init and add its CPU time (the tools', which it waited for).

        bubblewrap's monitor exits as soon as the init reports the tool's exit status, without
        waiting for it: the init is orphaned, and its CPU time was in no rusage the runner saw.
        The runner is a child subreaper (runner/sandbox.py), so the init is its child by the
        time the monitor has been reaped; one that lingers is killed. Where the init is not the
        runner's child (no subreaper), nothing is added."""
        init = self._sandbox_init_pid()
        if init is None:
            return
        kill_at = time.monotonic() + KILL_WAIT_SECONDS
        give_up_at = kill_at + KILL_WAIT_SECONDS  # a process stuck in the kernel stays a zombie
        pause = 0.0005
        while time.monotonic() < give_up_at:
            try:
                pid, _status, usage = os.wait4(init, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == init:
                self.result.cpu_s += usage.ru_utime + usage.ru_stime
                return
            if time.monotonic() > kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init, signal.SIGKILL)
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

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


def reap_uid(uid: int) -> None:
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


def size_text(n: int) -> str:
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
