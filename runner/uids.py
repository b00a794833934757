"""Host uids for jobs' tools that no two running jobs share: one flock'ed lock file per uid.

A root runner gives each job's tools a host uid of their own from A6HUB_RUNNER_SANDBOX_UIDS
(runner/sandbox.py), so that RLIMIT_NPROC counts that job's processes only and the uid reaper
(`watch.reap_uid`) of one job can never kill another's. Drawing at random is not enough once
several jobs run at once: two of them could draw the same uid (1 in 65,536 per pair, more with
more slots and runners). So a job *holds* its uid: `hold_uid` takes an exclusive, non-blocking
`flock` on `<lock dir>/<uid>` and the job keeps the descriptor until its sandbox is cleaned up
(`UidLease.release`, called once the last step's cgroup is removed or its uid reaped). A uid
whose lock is held is skipped; the draw starts at a random uid and walks the range from there,
so it fails only when every uid of the range is held (`UidsExhausted`).

The lock lives in the kernel's open file description, so a runner that dies (even by SIGKILL)
releases its uids at once; the descriptor is close-on-exec, so no tool ever holds it. Lock files
are never removed (unlinking a lock file others may hold races with them); a range holds at most
one empty file per uid.

The directory (A6HUB_RUNNER_UID_LOCK_DIR, default /run/lock/a6hub-uids) must be the same for
every runner that shares a kernel: uids are the kernel's, not a container's. Two runners that
share a kernel but not that directory (two containers, each with its own /run/lock, on one host
without a shared mount) are back to drawing independently: each keeps its own jobs apart, but a
job of one can draw a uid a job of the other holds. Mount one host directory into every runner
container there (infra/runner.yaml does, for Platform=ec2), or give each runner a disjoint
A6HUB_RUNNER_SANDBOX_UIDS range.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LOCK_DIR = "/run/lock/a6hub-uids"


class UidsExhausted(RuntimeError):
    """Every uid of the range is held by a running job on this host."""


@dataclass
class UidLease:
    """A uid held for one job: `uid`, and the locked descriptor that holds it (-1 once released,
    or for a uid nothing holds: a pinned one, or None where the runner is not root)."""

    uid: int | None
    fd: int

    def release(self) -> None:
        """Let another job have the uid; call once nothing of the job's uid is left. Idempotent."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)  # the last descriptor of the open file description drops the flock

    def __enter__(self) -> UidLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_dir(path: str) -> Path:
    """The lock directory at `path`, made (mode 0700) if missing; raises OSError when it is not a
    real directory of this process's euid that only that uid can write (a planted directory or
    link would let someone else hold, or fake holding, every uid)."""
    base = Path(path)
    try:
        base.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(errno.ENOTDIR, "the uid lock directory is not a directory", str(base))
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OSError(errno.EPERM, "the uid lock directory must be this user's and writable by "
                      "it only", str(base))
    return base


def hold_uid(first: int, last: int, directory: str = DEFAULT_LOCK_DIR) -> UidLease:
    """Hold a uid of [first, last] that no other holder on this kernel (sharing `directory`) has.

    Starts at a random uid and tries each in turn with a non-blocking exclusive flock; raises
    UidsExhausted when all are held, OSError when the directory is unusable (see `lock_dir`).
    """
    if last < first:
        raise ValueError(f"empty uid range {first}-{last}")
    base = lock_dir(directory)
    span = last - first + 1
    start = secrets.randbelow(span)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for step in range(span):
        uid = first + (start + step) % span
        fd = os.open(base / str(uid), flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        return UidLease(uid, fd)
    raise UidsExhausted(f"every uid of {first}-{last} is held by a running job on this host")
