"""Resource limits of one job's tool processes, read from A6HUB_RUNNER_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

MIB = 1024 * 1024


class LimitsError(ValueError):
    """An A6HUB_RUNNER_* limit variable is not a positive integer."""


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise LimitsError(f"{name} must be a positive integer, got {raw!r}") from e
    if value <= 0:
        raise LimitsError(f"{name} must be a positive integer, got {raw!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """Per-step limits; each one broken ends the job `failed` with a message naming it.

    cpu_seconds  RLIMIT_CPU of every process (SIGXCPU, then SIGKILL one second later)
    wall_seconds elapsed time of one step; the whole sandbox is killed
    memory_bytes RLIMIT_AS (address space) of every process
    file_bytes   RLIMIT_FSIZE: largest file a tool may write
    processes    RLIMIT_NPROC of the sandbox's unprivileged uid (bubblewrap itself uses 2)
    log_bytes    tool output kept for the job log; more stops the tool
    disk_bytes   space the job's files may take in its work dir (checked every second)
    """

    cpu_seconds: int = 300
    wall_seconds: int = 600
    memory_bytes: int = 4096 * MIB
    file_bytes: int = 256 * MIB
    processes: int = 64
    log_bytes: int = 2 * MIB
    disk_bytes: int = 1024 * MIB

    @classmethod
    def from_env(cls) -> Limits:
        default = cls()
        return cls(
            cpu_seconds=_positive("A6HUB_RUNNER_CPU_SECONDS", default.cpu_seconds),
            wall_seconds=_positive("A6HUB_RUNNER_WALL_SECONDS", default.wall_seconds),
            memory_bytes=_positive("A6HUB_RUNNER_MEMORY_BYTES", default.memory_bytes),
            file_bytes=_positive("A6HUB_RUNNER_FILE_BYTES", default.file_bytes),
            processes=_positive("A6HUB_RUNNER_PROCESSES", default.processes),
            log_bytes=_positive("A6HUB_RUNNER_LOG_BYTES", default.log_bytes),
            disk_bytes=_positive("A6HUB_RUNNER_DISK_BYTES", default.disk_bytes),
        )
