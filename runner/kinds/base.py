"""What a job kind is: its config model, its tools, its plan and how its results are read.

A kind's `plan` turns a validated config and the project's files into tool steps (runner/tools.py
holds the parts kinds share: the project model, defines, timescale, file arguments); its
`collect` reads what the tools left in the work dir into the job's summary and artifacts through
the `JobRun` it is given (runner/execute.py), and raises `JobFailed` when the run did not do
what the job asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.schemas.job_configs import _JobConfig
from runner.tools import Plan, Step

if TYPE_CHECKING:
    from runner.execute import JobRun


class JobFailed(Exception):
    """The job ends with `status` ("failed" or "cancelled") and `message` as its error."""

    def __init__(self, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def copy_built(run: JobRun, build_fd: int, built: list[tuple[str, str, str, str]], producer: str) -> None:
    """Keep each (path under BUILD_DIR, artifact name, kind, MIME type) the tools built as an
    artifact; raises JobFailed "<producer> produced no <name>" for one that is missing."""
    for path, name, kind, mime in built:
        if not run.copy_out(build_fd, os.path.basename(path), name, kind, mime):
            raise JobFailed(f"{producer} produced no {name}")


Planner = Callable[[Any, Path, str], Plan]  # (config, project dir, generated-files dir inside)
Collector = Callable[["JobRun", Any], None]


@dataclass(frozen=True)
class JobKind:
    """One job type the runner executes with the HDL tools.

    job_type      the API's `job_type` string (chalicelib/schemas/job_configs.py validates it)
    config        the config model of that type (chalicelib/schemas/job_configs.py parses it;
                  execute_job checks the two agree)
    tools         the tool names whose versions the job records, for a config
    plan          config, project dir, generated dir as the tools see it -> Plan (raises
                  tools.JobInputError when the config does not fit the files)
    collect       reads results after every step succeeded; raises JobFailed
    after_step    called after each step with its captured output (e.g. errors printed with
                  exit 0); raises JobFailed
    after_failure what is still worth keeping when the job failed (e.g. a partial waveform)
    judges_exit   step names whose non-zero exit `collect` explains (lint: warnings exit 1)
    """

    job_type: str
    config: type[_JobConfig]
    tools: Callable[[Any], list[str]]
    plan: Planner
    collect: Collector
    after_step: Callable[[JobRun, Step, bytes], None] | None = None
    after_failure: Collector | None = None
    judges_exit: frozenset[str] = field(default_factory=frozenset)
