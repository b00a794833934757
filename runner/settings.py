"""The runner's settings: every A6HUB_RUNNER_* knob (and the DLQ URL), typed and validated at once.

`runner_env()` parses the environment into `RunnerEnv`; a bad value (a word where a number goes,
a negative limit, an unknown boolean) raises `RunnerConfigError` naming the variable, and
`python -m runner` parses before it polls, so a misconfigured runner fails at start rather
than at its first job. The parse is cached on the variables' values: a process reads it once
(tests that change a variable get a fresh parse). Values the API shares (stage, bucket, table
prefix, jobs queue URL) come from its settings (chalicelib/config.py `get_settings()`), which
keep the JWT key apart, so the runner never holds it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runner.limits import Limits

PREFIX = "A6HUB_RUNNER_"


MAX_UID = 2**32 - 2  # (uid_t)-1 means "unchanged" to setresuid(2)


class RunnerConfigError(ValueError):
    """An A6HUB_RUNNER_* (or jobs queue) variable holds a value the runner cannot use."""


class RunnerEnv(BaseModel):
    """What the environment configures; defaults in brackets.

    Queue side: wait_seconds [20] long-poll time, cancel_poll_seconds [0.5] how often a running
    job's record is read for cancel / takeover, log_flush_seconds [0.5], stop_grace_seconds [20]
    time a job gets to finish after SIGTERM, dlq_check_seconds [30], concurrency [the cores this
    process may use] jobs one runner runs at once, each in its own sandbox (1 when sandbox_uid
    pins one uid: jobs sharing a uid could signal, and reap, each other's processes).
    Limits of one job (runner/limits.py): cpu_seconds, wall_seconds, memory_bytes, file_bytes,
    processes, log_bytes, disk_bytes.
    Sandbox: sandbox_dir [$TMPDIR/a6hub-sandbox] where job stages live; unsandboxed [false] runs
    tools without bubblewrap (only behind another boundary); sandbox_uid pins the tools' host uid,
    else each job holds one of sandbox_uids ["200000-265535"] that no other running job on the
    host holds, through a lock file per uid in uid_lock_dir ["/run/lock/a6hub-uids"] (runner/uids.py);
    cgroup ["" = find one, "off" = none, or a cgroup v2 directory].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs_dlq_url: str = ""  # A6HUB_JOBS_DLQ_URL, for a queue without a redrive policy

    wait_seconds: int = Field(default=20, ge=0, le=20)  # SQS long polls for at most 20 s
    cancel_poll_seconds: float = Field(default=0.5, gt=0)
    log_flush_seconds: float = Field(default=0.5, gt=0)
    stop_grace_seconds: float = Field(default=20.0, ge=0)
    dlq_check_seconds: float = Field(default=30.0, gt=0)
    concurrency: int | None = Field(default=None, gt=0, le=256)

    cpu_seconds: int = Field(default=Limits.cpu_seconds, gt=0)
    wall_seconds: int = Field(default=Limits.wall_seconds, gt=0)
    memory_bytes: int = Field(default=Limits.memory_bytes, gt=0)
    file_bytes: int = Field(default=Limits.file_bytes, gt=0)
    processes: int = Field(default=Limits.processes, gt=0)
    log_bytes: int = Field(default=Limits.log_bytes, gt=0)
    disk_bytes: int = Field(default=Limits.disk_bytes, gt=0)

    sandbox_dir: str = ""
    unsandboxed: bool = False
    sandbox_uid: int | None = Field(default=None, gt=0, le=MAX_UID)
    sandbox_uids: str = Field(default="200000-265535", pattern=r"^\d+(-\d+)?$")
    uid_lock_dir: str = "/run/lock/a6hub-uids"
    cgroup: str = ""

    @field_validator("sandbox_uids")
    @classmethod
    def _real_uids_not_root(cls, value: str) -> str:
        """A non-empty range of uids 1..4294967294: a job's uid is RLIMIT_NPROC's and the uid
        reaper's (watch.reap_uid), so uid 0 would let a job's processes ignore the limit and
        have the reaper SIGKILL every root process, the runner's own included; 4294967295 is
        (uid_t)-1, which setresuid(2) reads as "unchanged"."""
        first, _, last = value.partition("-")
        low, high = int(first), int(last or first)
        if not 1 <= low <= high <= MAX_UID:
            raise ValueError(f"want first-last with 1 <= first <= last <= {MAX_UID}")
        return value

    @model_validator(mode="after")
    def _one_uid_one_job(self) -> RunnerEnv:
        if self.sandbox_uid is not None and (self.concurrency or 1) > 1:
            raise ValueError("A6HUB_RUNNER_CONCURRENCY above 1 needs a uid per job: unset "
                             "A6HUB_RUNNER_SANDBOX_UID (jobs sharing a uid can kill each other's "
                             "processes)")
        first, last = self.uid_range
        if self.sandbox_uid is None and last - first + 1 < self.jobs_at_once:
            raise ValueError(f"A6HUB_RUNNER_SANDBOX_UIDS holds {last - first + 1} uid(s), fewer "
                             f"than the {self.jobs_at_once} jobs at once "
                             "(A6HUB_RUNNER_CONCURRENCY): a job would find none free")
        return self

    @property
    def jobs_at_once(self) -> int:
        """How many jobs a runner runs at once: `concurrency`, else the cores it may use."""
        if self.concurrency is not None:
            return self.concurrency
        if self.sandbox_uid is not None:
            return 1
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)

    @property
    def uid_range(self) -> tuple[int, int]:
        """sandbox_uids as (first, last), inclusive."""
        first, _, last = self.sandbox_uids.partition("-")
        return int(first), int(last or first)

    @property
    def cgroup_mode(self) -> Literal["auto", "off", "path"]:
        value = self.cgroup.strip().lower()
        if value in ("off", "0", "no"):
            return "off"
        return "path" if value else "auto"


def variable(field: str) -> str:
    """The environment variable behind a RunnerEnv field."""
    return f"A6HUB_{field.upper()}" if field.startswith("jobs_") else PREFIX + field.upper()


@lru_cache(maxsize=4)
def _parse(snapshot: tuple[tuple[str, str], ...]) -> RunnerEnv:
    try:
        return RunnerEnv.model_validate(dict(snapshot))
    except ValidationError as e:
        problems = [f"{variable(str(item['loc'][0]))}: {item['msg']}, got {item.get('input')!r}"
                    if item["loc"] else item["msg"] for item in e.errors()]
        raise RunnerConfigError(f"bad runner setting: {'; '.join(problems)}") from None


def runner_env() -> RunnerEnv:
    """The runner's settings from the environment; raises RunnerConfigError on a bad value.

    A variable set to "" counts as unset (its default applies); booleans are pydantic's
    (1/true/yes/on/t/y or 0/false/no/off/f/n, any case); variables no field names are ignored.
    """
    values = {field: raw.strip() for field in RunnerEnv.model_fields
              if (raw := os.environ.get(variable(field), "")).strip()}
    return _parse(tuple(sorted(values.items())))


def job_limits() -> Limits:
    """The limits of one job as the runner's settings name them (defaults: runner/limits.py).

    Raises RunnerConfigError on a bad value.
    """
    env = runner_env()
    return Limits(cpu_seconds=env.cpu_seconds, wall_seconds=env.wall_seconds,
                  memory_bytes=env.memory_bytes, file_bytes=env.file_bytes,
                  processes=env.processes, log_bytes=env.log_bytes, disk_bytes=env.disk_bytes)
