"""Execute one job (simulation, synthesis, lint) in its work directory and describe the outcome.

The queue side materialises the project's files in `workdir/src/` and calls `execute_job`; this
module plans the tool steps (runner/tools.py), runs each inside the sandbox (runner/sandbox.py)
and copies artifacts into `workdir/out/` with checks that a hostile tool cannot subvert (no
symlinks followed, regular files only, sizes capped).

Log policy: tool output (and each command line, prefixed "$ ") goes to `log` as it comes, up to
`limits.log_bytes` for the whole job; output past the cap stops the tool and the job fails with
"log limit of ... exceeded" (the log holds the first `log_bytes` bytes).
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from chalicelib.schemas.job_configs import LintConfig, SimulationConfig, SynthesisConfig, parse_job_config
from chalicelib.services.paths import MAX_PATH_DEPTH
from runner import fstree, tools
from runner.limits import Limits
from runner.sandbox import INSIDE_ROOT, LogBudget, RunResult, Sandbox, SandboxUnavailable
from runner.tools import JobInputError, Plan

logger = logging.getLogger(__name__)

__all__ = ["Artifact", "Outcome", "SandboxUnavailable", "StepResult", "execute_job"]

MAX_WAVEFORMS = 4
ERROR_MESSAGE_CHARS = 500


@dataclass
class Artifact:
    name: str
    path: Path
    kind: str  # "waveform" | "netlist_json" | "netlist_verilog" | "stat" | "diagnostics"
    mime: str


@dataclass
class StepResult:
    name: str
    argv: list[str]
    exit_code: int | None
    duration_s: float
    limit: str | None


@dataclass
class Outcome:
    status: str  # "completed" | "failed" | "cancelled"
    error_message: str | None
    steps: list[StepResult] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    log_truncated: bool = False  # tool output reached the log limit (the log says so)


class _Failed(Exception):
    def __init__(self, message: str, status: str = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def execute_job(job_type: str, config: dict[str, Any], workdir: Path, limits: Limits,
                log: Callable[[bytes], None], cancelled: threading.Event) -> Outcome:
    """Run the job's tools; raises SandboxUnavailable when bubblewrap is missing (and not waived)."""
    try:
        model = parse_job_config(job_type, config)
    except Unprocessable as e:
        return Outcome(status="failed", error_message=f"invalid config: {e.detail}")
    sandbox = Sandbox.for_job(Path(workdir), limits)
    try:
        return _JobRun(job_type, sandbox, limits, log, cancelled).execute(model)
    finally:
        sandbox.dirs.remove_stage()


class _JobRun:
    def __init__(self, job_type: str, sandbox: Sandbox, limits: Limits, log: Callable[[bytes], None],
                 cancelled: threading.Event) -> None:
        self.job_type = job_type
        self.sandbox = sandbox
        self.dirs = sandbox.dirs
        self.limits = limits
        self.cancelled = cancelled
        self.budget = LogBudget(limits.log_bytes, sink=log)
        self.outcome = Outcome(status="completed", error_message=None)
        self.captured: dict[str, bytes] = {}
        self.plan: Plan | None = None
        self.vcd_sources: dict[str, str] = {}  # VCD artifact name -> its path in work/

    def execute(self, model: BaseModel) -> Outcome:
        if not self.sandbox.sandboxed:
            self._say("WARNING: A6HUB_RUNNER_UNSANDBOXED=1: this job runs WITHOUT a sandbox")
        try:
            plan = self._plan(model)
            self.plan = plan
            self._record_inputs(plan)
            self._prepare(plan)
            for step in plan.steps:
                self._run_step(step)
            self._collect(model)
        except _Failed as e:
            self.outcome.status = e.status
            self.outcome.error_message = e.message[:ERROR_MESSAGE_CHARS]
            if isinstance(model, SimulationConfig) and model.waveform and e.status == "failed":
                self._collect_waveforms(True)  # what was dumped before the failure still helps
        self._say(f"job {self.outcome.status}" + (
            f": {self.outcome.error_message}" if self.outcome.error_message else ""))
        return self.outcome

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, model: BaseModel) -> Plan:
        gen = self.sandbox.inside("gen")
        try:
            if isinstance(model, SimulationConfig):
                self._versions(["iverilog", "vvp"] if model.simulator == "icarus" else ["verilator"])
                return tools.plan_simulation(model, self.dirs.src, gen)
            if isinstance(model, SynthesisConfig):
                self._versions(["yosys"])
                return tools.plan_synthesis(model, self.dirs.src, gen)
            assert isinstance(model, LintConfig)
            self._versions(["verilator" if model.tool == "verilator" else "iverilog"])
            return tools.plan_lint(model, self.dirs.src, gen)
        except JobInputError as e:
            raise _Failed(str(e)) from e

    def _versions(self, names: list[str]) -> None:
        self.outcome.tool_versions = {name: tools.tool_version(name) for name in names}

    def _record_inputs(self, plan: Plan) -> None:
        files = []
        for rel in plan.files:
            digest = hashlib.sha256((self.dirs.src / rel).read_bytes()).hexdigest()
            files.append({"path": rel, "sha256": digest})
        self.outcome.summary["files"] = files
        self.outcome.summary["generated"] = plan.generated
        for note in plan.notes:
            self._say(f"note: {note}")

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
            raise _Failed("cancelled", status="cancelled")
        self.budget.write(f"$ {shlex.join(step.argv)}\n".encode())
        self.budget.tee = bytearray()
        try:
            result = self.sandbox.run(step.argv, self.budget, self.cancelled)
        finally:
            self.captured[step.name] = bytes(self.budget.tee)
            self.budget.tee = None
        self.outcome.steps.append(StepResult(step.name, step.argv, result.exit_code,
                                             round(result.duration_s, 3), result.limit))
        if result.limit and result.limit.startswith("log limit"):
            self.outcome.log_truncated = True
            self._say(f"tool output stopped here: {result.limit} (the rest was not kept)",
                      newline_first=True)
        self._check(step, result)
        if step.name == "simulate":
            self._check_silent_errors(self.captured[step.name])

    def _check(self, step: tools.Step, result: RunResult) -> None:
        if result.cancelled:
            raise _Failed("cancelled", status="cancelled")
        if result.limit:
            raise _Failed(f"{step.name}: {result.limit}")
        if result.exit_code != 0 and step.name != "lint":
            detail = _first_error(result.tail.decode(errors="replace"))
            message = f"{step.name} failed (exit {result.exit_code})" + (f": {detail}" if detail else "")
            if self.plan is not None and self.plan.failure_hint:
                message += f" — {self.plan.failure_hint}"
            raise _Failed(message)

    def _check_silent_errors(self, output: bytes) -> None:
        """Errors a simulator reports and still exits 0 on (Icarus: a VCD or memory file it
        cannot open) fail the job: the run did not do what the testbench says."""
        found = tools.silent_errors(output.decode(errors="replace"))
        if found:
            self.outcome.summary["tool_errors"] = found[:20]
            raise _Failed(f"simulation reported an error (exit 0): {found[0]}")

    def _say(self, text: str, newline_first: bool = False) -> None:
        # The runner's own lines bypass the tools' budget: the log stream keeps room for them
        # (runner/worker.py RUNNER_LOG_ALLOWANCE), so they are there even after the tools' cap.
        self.budget.sink(f"{chr(10) if newline_first else ''}[a6hub] {text}\n".encode())

    # --- artifacts ----------------------------------------------------------------------------

    def _collect(self, model: BaseModel) -> None:
        if isinstance(model, SimulationConfig):
            self._collect_waveforms(model.waveform)
            self.outcome.summary["simulation"] = {
                "simulator": model.simulator,
                "exit_code": self.outcome.steps[-1].exit_code if self.outcome.steps else None,
            }
            self._index_waveforms()
        elif isinstance(model, SynthesisConfig):
            self._collect_synthesis()
        else:
            assert isinstance(model, LintConfig)
            self._collect_lint(model)

    def _collect_waveforms(self, wanted: bool) -> None:
        found = sum(a.kind == "waveform" for a in self.outcome.artifacts)
        # Iterative and depth-bounded: a tool may leave thousands of nested folders.
        for dirpath, dir_fd, files in fstree.walk_files(self.dirs.work, MAX_PATH_DEPTH):
            for name in files:
                if not name.endswith(".vcd") or found >= MAX_WAVEFORMS:
                    continue
                rel = f"{dirpath}/{name}" if dirpath else name
                if self._came_with_project(dir_fd, name, rel):
                    continue
                out_name = self._unique_name(rel.removeprefix(f"{tools.BUILD_DIR}/"))
                if self._copy_out(dir_fd, name, out_name, "waveform", "text/x-vcd"):
                    self.vcd_sources[out_name] = rel
                    found += 1
        self.outcome.summary["waveforms"] = found
        model = self.plan
        if found == 0 and wanted and model is not None:
            reason = ("the design's $dumpfile could not be written, or its $dumpvars did not run"
                      if model.compile_set is not None and model.compile_set.dumps
                      else "the simulator wrote no VCD")
            self.outcome.summary.setdefault("warnings", []).append(f"waveform requested but none: {reason}")
            self._say(f"warning: waveform requested but no VCD was produced: {reason}")

    def _came_with_project(self, dir_fd: int, name: str, rel: str) -> bool:
        """A .vcd the project holds, unchanged by the run, is an input, not a result."""
        try:
            mine = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            theirs = os.stat(self.dirs.src / rel, follow_symlinks=False)
        except OSError:
            return False
        return mine.st_size == theirs.st_size and mine.st_mtime_ns == theirs.st_mtime_ns

    def _index_waveforms(self) -> None:
        """Convert each kept VCD to FST (gtkwave's `vcd2fst`, inside the sandbox) beside it.

        FST is compressed and indexed by time block and signal, so the API reads a window of a
        few signals without the whole trace (chalicelib/services/waveforms.py); the VCD artifact
        stays downloadable. A failed conversion is logged and leaves the job's status alone.
        """
        vcds = [a for a in list(self.outcome.artifacts) if a.kind == "waveform"]
        done = 0
        for vcd in vcds:
            fst_name = self._unique_name(vcd.name[:-len(".vcd")] + ".fst")
            built = os.path.join(tools.BUILD_DIR, fst_name)
            # The tool's own file: its processes are gone, and the sandbox resolves any link.
            source = self.vcd_sources.get(vcd.name)
            if source is None:
                continue
            argv = ["vcd2fst", self.sandbox.inside("work", source), self.sandbox.inside("work", built)]
            self.budget.write(f"$ {shlex.join(argv)}\n".encode())
            result = self.sandbox.run(argv, self.budget, self.cancelled)
            self.outcome.steps.append(StepResult("waveform_index", argv, result.exit_code,
                                                 round(result.duration_s, 3), result.limit))
            if result.cancelled:
                raise _Failed("cancelled", status="cancelled")
            build = self._build_fd()
            try:
                ok = result.exit_code == 0 and not result.limit and self._copy_out(
                    build, fst_name, fst_name, "waveform_fst", "application/x-fst")
            finally:
                os.close(build)
            if ok:
                done += 1
            else:
                why = result.limit or f"exit {result.exit_code}"
                self._say(f"could not index {vcd.name} as FST ({why}); the VCD is kept, "
                          "the waveform API will not read it")
        self.outcome.summary["waveforms_indexed"] = done

    def _collect_synthesis(self) -> None:
        build = self._build_fd()
        try:
            raw = self._read_regular(build, os.path.basename(tools.STAT_RAW))
            if raw is None:
                raise _Failed("synthesis produced no statistics")
            try:
                summary = tools.stat_summary(tools.load_json(raw))
            except ValueError as e:
                raise _Failed(f"synthesis statistics are not valid JSON: {e}") from e
            self.outcome.summary["synthesis"] = {k: v for k, v in summary.items() if k != "modules"}
            self._artifact("stat.json", json.dumps(summary, indent=2).encode(), "stat", "application/json")
            for built, name, kind, mime in (
                    (tools.NETLIST_JSON, "netlist.json", "netlist_json", "application/json"),
                    (tools.NETLIST_VERILOG, "netlist.v", "netlist_verilog", "text/x-verilog")):
                if not self._copy_out(build, os.path.basename(built), name, kind, mime):
                    raise _Failed(f"synthesis produced no {name}")
        finally:
            os.close(build)

    def _collect_lint(self, model: LintConfig) -> None:
        output = self.captured.get("lint", b"").decode(errors="replace")
        prefixes = (f"{self.sandbox.inside('work')}/", f"{self.sandbox.inside('src')}/")
        gen = f"{self.sandbox.inside('gen')}/"
        diagnostics = [d for d in tools.parse_diagnostics(model.tool, output, prefixes)
                       if not d["file"].startswith(gen)]
        counts: dict[str, int] = {}
        for d in diagnostics:
            counts[d["severity"]] = counts.get(d["severity"], 0) + 1
        self.outcome.summary["lint"] = {"tool": model.tool, "diagnostics": len(diagnostics), **counts}
        self._artifact("diagnostics.json", json.dumps(diagnostics, indent=2).encode(),
                       "diagnostics", "application/json")
        errors = [d for d in diagnostics if d["severity"] == "error"]
        lint_step = self.outcome.steps[-1]
        if errors:
            first = errors[0]
            raise _Failed(f"lint found {len(errors)} error(s); first: "
                          f"{first['file']}:{first['line']}: {first['message']}")
        if lint_step.exit_code != 0:
            detail = _first_error(output)
            raise _Failed(f"lint failed (exit {lint_step.exit_code})" + (f": {detail}" if detail else ""))

    def _build_fd(self) -> int:
        work = os.open(self.dirs.work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            return os.open(tools.BUILD_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=work)
        except OSError as e:
            raise _Failed("the tool removed its build directory") from e
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

    def _read_regular(self, dir_fd: int, name: str) -> bytes | None:
        f = self._open_regular(dir_fd, name)
        if f is None:
            return None
        with f:
            return f.read(self.limits.file_bytes)

    def _copy_out(self, dir_fd: int, name: str, out_name: str, kind: str, mime: str) -> bool:
        f = self._open_regular(dir_fd, name)
        if f is None:
            return False
        path = self.dirs.out / out_name
        with f, open(path, "wb") as target:
            shutil.copyfileobj(f, target, 1024 * 1024)
        self.outcome.artifacts.append(Artifact(name=out_name, path=path, kind=kind, mime=mime))
        return True

    def _unique_name(self, rel: str) -> str:
        """A plain file name for a tool-chosen path: [A-Za-z0-9._-], starting alphanumeric."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", rel).lstrip("._-")[-100:] or "waveform.vcd"
        taken = {a.name for a in self.outcome.artifacts}
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{n}-{name}"
        return candidate

    def _artifact(self, name: str, data: bytes, kind: str, mime: str) -> None:
        path = self.dirs.out / name
        path.write_bytes(data)
        self.outcome.artifacts.append(Artifact(name=name, path=path, kind=kind, mime=mime))


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


_ERROR_WORDS = ("error", "fatal", "sorry", "assert", "not found", "unable", "cannot")
_LOCATED = re.compile(r"(^|\s)[^\s:]+:\d+:")


def _first_error(output: str) -> str | None:
    """The tool's first error line, preferring one with a file:line, else its last line."""
    prefix = f"{INSIDE_ROOT}/src/"
    lines = [line.strip().replace(prefix, "") for line in output.splitlines() if line.strip()]
    errors = [line for line in lines
              if any(word in line.lower() for word in _ERROR_WORDS) and "warning" not in line.lower()]
    located = [line for line in errors if _LOCATED.search(line)]
    if located:
        return located[0]
    if errors:
        return errors[0]
    return lines[-1] if lines else None
