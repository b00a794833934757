"""Resource limits of one job's tool processes (A6HUB_RUNNER_* variables, runner/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


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
