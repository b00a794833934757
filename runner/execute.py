"""Execute one job of a tool kind (runner/kinds/) and describe the outcome.

The queue side writes the commit's files into a job stage's src/ (runner/jobdirs.py,
runner/workspace.py) and calls `execute_job`; this module has the job's kind plan the tool
steps, runs each inside the sandbox (runner/sandbox.py) and lets the kind copy artifacts into
the stage's out/ with checks that a hostile tool cannot subvert (no symlinks followed, regular
files only, sizes capped).

Log policy: tool output (and each command line, prefixed "$ ") goes to `log` as it comes, up to
`limits.log_bytes` for the whole job; output past the cap stops the tool and the job fails with
"log limit of ... exceeded" (the log holds the first `log_bytes` bytes).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel

from chalicelib.errors import Unprocessable
from chalicelib.hdl.project import COMPILE_SUFFIXES, HEADER_SUFFIXES
from chalicelib.schemas.job_configs import parse_job_config
from chalicelib.schemas.jobs import StepPublic
from runner import tools
from runner.kinds import KINDS, JobFailed, JobKind
from runner.limits import Limits
from runner.sandbox import CommandResult, JobDirs, LogBudget, Sandbox, SandboxUnavailable
from runner.tools import JobInputError, Plan, first_error

__all__ = ["Artifact", "ExecutionResult", "SandboxUnavailable", "execute_job"]

ERROR_MESSAGE_CHARS = 500


@dataclass
class Artifact:
    """A file the run left in out/ for upload (workspace.upload_artifacts checks it again)."""

    name: str
    path: Path
    kind: str  # "waveform" | "netlist_json" | "netlist_verilog" | "stat" | "diagnostics"
    mime: str


@dataclass
class ExecutionResult:
    """What running one job's tools produced: how it ended, each step (the shared StepPublic),
    artifacts still on the runner's disk, tool versions and the kind's summary."""

    status: str  # "completed" | "failed" | "cancelled"
    error_message: str | None
    steps: list[StepPublic] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    log_truncated: bool = False  # tool output reached the log limit (the log says so)


def execute_job(job_type: str, config: dict[str, Any], dirs: JobDirs, limits: Limits,
                log: Callable[[bytes], None], cancelled: threading.Event) -> ExecutionResult:
    """Run the job's tools over the project in `dirs.src`, artifacts into `dirs.out` (the stage
    stays the caller's to remove); raises SandboxUnavailable when bubblewrap is missing (and
    not waived)."""
    kind = KINDS.get(job_type)
    if kind is None:
        return ExecutionResult(status="failed", error_message=f"unknown job type {job_type!r}")
    try:
        model = parse_job_config(job_type, config)
    except Unprocessable as e:
        return ExecutionResult(status="failed", error_message=f"invalid config: {e.detail}")
    if not isinstance(model, kind.config):  # the registry and job_configs.py disagree: a bug
        raise TypeError(f"{job_type} config parsed as {type(model).__name__}, "
                        f"kind expects {kind.config.__name__}")
    sandbox = Sandbox.for_job(dirs, limits)
    try:
        return JobRun(kind, sandbox, limits, log, cancelled).execute(model)
    finally:
        sandbox.release()  # every step has been cleaned up: no process of the job's uid is left


class JobRun:
    """One job's run: its kind's plan, each step in the sandbox, then its kind's collection.

    Kinds (runner/kinds/) read the run's results through `result`, `captured` (each step's
    output), `dirs`, `sandbox`, and the helpers below that copy a tool's file out safely.
    """

    def __init__(self, kind: JobKind, sandbox: Sandbox, limits: Limits, log: Callable[[bytes], None],
                 cancelled: threading.Event) -> None:
        self.kind = kind
        self.sandbox = sandbox
        self.dirs = sandbox.dirs
        self.dirs.out.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.limits = limits
        self.cancelled = cancelled
        self.budget = LogBudget(limits.log_bytes, sink=log)
        self.result = ExecutionResult(status="completed", error_message=None)
        self.captured: dict[str, bytes] = {}
        self.plan: Plan | None = None
        self.copied_from: dict[str, str] = {}  # artifact name -> the tool's file (path in work/)

    def execute(self, model: BaseModel) -> ExecutionResult:
        if not self.sandbox.sandboxed:
            self.say("WARNING: A6HUB_RUNNER_UNSANDBOXED=1: this job runs WITHOUT a sandbox")
        try:
            plan = self._plan(model)
            self.plan = plan
            self._record_inputs(plan)
            self._prepare(plan)
            for step in plan.steps:
                self._run_step(step)
            self.kind.collect(self, model)
        except JobFailed as e:
            self.result.status = e.status
            self.result.error_message = e.message[:ERROR_MESSAGE_CHARS]
            if self.kind.after_failure is not None and e.status == "failed":
                self.kind.after_failure(self, model)
        self.say(f"job {self.result.status}" + (
            f": {self.result.error_message}" if self.result.error_message else ""))
        return self.result

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, model: BaseModel) -> Plan:
        self.result.tool_versions = {name: tools.tool_version(name)
                                      for name in self.kind.tools(model)}
        try:
            return self.kind.plan(model, self.dirs.src, self.sandbox.inside("gen"))
        except JobInputError as e:
            raise JobFailed(str(e)) from e

    def _record_inputs(self, plan: Plan) -> None:
        files = []
        for rel in plan.files:
            digest = hashlib.sha256((self.dirs.src / rel).read_bytes()).hexdigest()
            files.append({"path": rel, "sha256": digest})
        self.result.summary["files"] = files
        self.result.summary["generated"] = plan.generated
        for note in plan.notes:
            self.say(f"note: {note}")

    def _prepare(self, plan: Plan) -> None:
        """Write generated files and copy the project into the work dir, the tools' cwd.

        The tools run in a writable copy of the project tree, as a person runs them from the
        project root: `$dumpfile("sim/x.vcd")`, `$readmemh("fw/prog.hex")` and `$fopen` resolve
        there, for every tool. Done before any tool runs, so nothing here follows a link a tool
        could have planted (the copy takes regular files only).
        """
        for name, text in plan.generated.items():
            (self.dirs.gen / name).write_text(text)
        uid = self.sandbox.uid
        for rel in tools.project_paths(self.dirs.src):
            target = self.dirs.work / rel
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True)
            shutil.copy2(self.dirs.src / rel, target)
            if rel.lower().endswith(HDL_TEXT_SUFFIXES):
                _normalise_source(target)
        (self.dirs.work / tools.BUILD_DIR).mkdir()
        if uid is not None:
            for parent, dirnames, filenames in os.walk(self.dirs.work):
                for name in (*dirnames, *filenames):
                    os.chown(os.path.join(parent, name), uid, uid, follow_symlinks=False)

    # --- running ------------------------------------------------------------------------------

    def _run_step(self, step: tools.Step) -> None:
        if self.cancelled.is_set():
            raise JobFailed("cancelled", status="cancelled")
        self.budget.write(f"$ {shlex.join(step.argv)}\n".encode())
        self.budget.tee = bytearray()
        try:
            result = self.sandbox.run(step.argv, self.budget, self.cancelled, step.extra)
        finally:
            self.captured[step.name] = bytes(self.budget.tee)
            self.budget.tee = None
        self.result.steps.append(_step(step.name, step.argv, result))
        if result.limit and result.limit.startswith("log limit"):
            self.result.log_truncated = True
            self.say(f"tool output stopped here: {result.limit} (the rest was not kept)",
                      newline_first=True)
        self._check(step, result)
        if self.kind.after_step is not None:
            self.kind.after_step(self, step, self.captured[step.name])

    def _check(self, step: tools.Step, result: CommandResult) -> None:
        if result.cancelled:
            raise JobFailed("cancelled", status="cancelled")
        if result.limit:
            raise JobFailed(f"{step.name}: {result.limit}")
        if result.exit_code != 0 and step.name not in self.kind.judges_exit:
            detail = first_error(result.tail.decode(errors="replace"))
            message = f"{step.name} failed (exit {result.exit_code})" + (f": {detail}" if detail else "")
            if self.plan is not None and self.plan.failure_hint:
                message += f" — {self.plan.failure_hint}"
            raise JobFailed(message)

    def say(self, text: str, newline_first: bool = False) -> None:
        # The runner's own lines bypass the tools' budget: the log stream keeps room for them
        # (runner/worker.py RUNNER_LOG_ALLOWANCE), so they are there even after the tools' cap.
        self.budget.sink(f"{chr(10) if newline_first else ''}[a6hub] {text}\n".encode())

    def run_extra_step(self, name: str, argv: list[str]) -> CommandResult:
        """Run a command a kind adds after the plan's steps (e.g. indexing a waveform); its exit
        status is the kind's to judge, a cancel ends the job."""
        self.budget.write(f"$ {shlex.join(argv)}\n".encode())
        result = self.sandbox.run(argv, self.budget, self.cancelled)
        self.result.steps.append(_step(name, argv, result))
        if result.cancelled:
            raise JobFailed("cancelled", status="cancelled")
        return result

    # --- artifacts ----------------------------------------------------------------------------

    def build_fd(self) -> int:
        work = os.open(self.dirs.work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            return os.open(tools.BUILD_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=work)
        except OSError as e:
            raise JobFailed("the tool removed its build directory") from e
        finally:
            os.close(work)

    def _open_regular(self, dir_fd: int, name: str) -> BinaryIO | None:
        """Open a file a tool wrote, refusing links, FIFOs, devices and anything over the cap."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > self.limits.file_bytes:
            os.close(fd)
            return None
        return os.fdopen(fd, "rb")

    def read_regular(self, dir_fd: int, name: str) -> bytes | None:
        f = self._open_regular(dir_fd, name)
        if f is None:
            return None
        with f:
            return f.read(self.limits.file_bytes)

    def copy_out(self, dir_fd: int, name: str, out_name: str, kind: str, mime: str,
                 source: str | None = None) -> bool:
        """Copy a tool's regular file `name` (in `dir_fd`) to out/`out_name` as an artifact;
        False when it is missing, not a regular file or over the file cap."""
        f = self._open_regular(dir_fd, name)
        if f is None:
            return False
        path = self.dirs.out / out_name
        with f, open(path, "wb") as target:
            shutil.copyfileobj(f, target, 1024 * 1024)
        self.result.artifacts.append(Artifact(name=out_name, path=path, kind=kind, mime=mime))
        if source is not None:
            self.copied_from[out_name] = source
        return True

    def unique_name(self, rel: str) -> str:
        """A plain file name for a tool-chosen path: [A-Za-z0-9._-], starting alphanumeric."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", rel).lstrip("._-")[-100:] or "waveform.vcd"
        taken = {a.name for a in self.result.artifacts}
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{n}-{name}"
        return candidate

    def add_artifact(self, name: str, data: bytes, kind: str, mime: str) -> None:
        path = self.dirs.out / name
        path.write_bytes(data)
        self.result.artifacts.append(Artifact(name=name, path=path, kind=kind, mime=mime))


def _step(name: str, argv: list[str], result: CommandResult) -> StepPublic:
    return StepPublic(name=name, argv=list(argv), exit_code=result.exit_code,
                      duration_s=round(result.duration_s, 3), limit=result.limit)


HDL_TEXT_SUFFIXES = (*COMPILE_SUFFIXES, *HEADER_SUFFIXES)


def _normalise_source(path: Path) -> None:
    """Drop a UTF-8 byte-order mark and turn CRLF into LF in an HDL source, in the tools' copy.

    Icarus reads a BOM as text before `module` and silently drops the module; a CR before a
    macro's line continuation ends the macro. Line numbers do not change; the project's own file
    (src/, hashed in the job's inputs) is untouched.
    """
    data = path.read_bytes()
    fixed = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    if fixed != data:
        stat_before = path.stat()
        path.write_bytes(fixed)
        os.utime(path, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
