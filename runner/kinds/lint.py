"""Lint jobs: Verilator `--lint-only` or Icarus with `-t null`; diagnostics as data.

Plan: one step running the tool over the chosen files with the job's defines and include dirs.
Results: the tool's messages parsed into [{file, line, column, severity, code, message}]
(diagnostics.json, counts in the summary); an error fails the job, warnings do not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.hdl.project import lint_set
from chalicelib.schemas.job_configs import V2005, LintConfig
from runner.kinds.base import JobFailed, JobKind
from runner.tools import (
    Plan,
    Step,
    as_files,
    compile_set,
    config_timescale,
    defines,
    first_error,
    icarus_sources,
    language_hint,
    plan_notes,
)

if TYPE_CHECKING:
    from runner.execute import JobRun


def plan_lint(config: LintConfig, src: Path, gen_dir: str) -> Plan:
    _, cs = compile_set(src, config, lambda p: lint_set(p, top=config.top, files=config.files))
    generated: dict[str, str] = {}
    if config.tool == "icarus":
        # -Wno-timescale: untimed files get the default `timescale by rule (see _icarus_sources);
        # "timescale inherited from another file" would only point at the runner's file.
        argv = ["iverilog", "-g2012", "-Wall", "-Wno-timescale", "-t", "null"]
        argv += [a for d in cs.include_dirs for a in ("-I", d)] + defines(config)
        argv += ["-s", config.top] if config.top else []
        files = icarus_sources(config, cs, generated, gen_dir)
    else:
        # --timing: a testbench's #delays are what it is for (without it: NEEDTIMINGOPT errors).
        argv = ["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--timing",
                "--timescale", config_timescale(config)]
        argv += ["+1364-2005ext+v"] if config.language == V2005 else []
        argv += [f"-I{d}" for d in cs.include_dirs] + defines(config)
        argv += ["--top-module", config.top] if config.top else []
        files = list(cs.files)
    plan = Plan(steps=[Step("lint", [*argv, *as_files(files)])], generated=generated,
                notes=plan_notes(config, cs), files=list(cs.files))
    plan.compile_set, plan.failure_hint = cs, language_hint(config, cs)
    return plan


_VERILATOR_DIAG = re.compile(
    r"^%(?P<sev>Warning|Error)(?:-(?P<code>[A-Za-z0-9_]+))?: (?P<file>[^:\s][^:]*):(?P<line>\d+):"
    r"(?:(?P<col>\d+):)? (?P<msg>.*)$"
)
_IVERILOG_DIAG = re.compile(
    r"^(?P<file>[^:\s][^:]*):(?P<line>\d+): (?:(?P<sev>error|warning|sorry): )?(?P<msg>.*)$"
)


def parse_diagnostics(tool: str, output: str, strip_prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Verilator or iverilog messages as [{file, line, column, severity, code, message}]."""
    diagnostics = []
    for raw in output.splitlines():
        line = raw.rstrip()
        m = (_VERILATOR_DIAG if tool == "verilator" else _IVERILOG_DIAG).match(line)
        if not m:
            continue
        if tool == "verilator":
            severity = m["sev"].lower()
            code = m["code"]
            column = int(m["col"]) if m["col"] else None
        else:
            severity = _iverilog_severity(m["sev"], m["msg"])
            code, column = None, None
        diagnostics.append({
            "file": relative_path(m["file"], strip_prefixes),
            "line": int(m["line"]),
            "column": column,
            "severity": severity,
            "code": code,
            "message": m["msg"].strip(),
        })
    return diagnostics


def _iverilog_severity(label: str | None, message: str) -> str:
    if label == "sorry":  # "sorry: ... not supported": the design cannot be compiled
        return "error"
    if label:
        return label
    return "error" if "error" in message.lower() else "info"


def relative_path(path: str, strip_prefixes: tuple[str, ...]) -> str:
    for prefix in strip_prefixes:
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    return path.removeprefix("./")


# --- results -----------------------------------------------------------------------------------

def collect(run: JobRun, config: LintConfig) -> None:
    """Diagnostics into diagnostics.json and the summary; fails on an error diagnostic, or on a
    non-zero exit the diagnostics do not explain."""
    output = run.captured.get("lint", b"").decode(errors="replace")
    prefixes = (f"{run.sandbox.inside('work')}/", f"{run.sandbox.inside('src')}/")
    gen = f"{run.sandbox.inside('gen')}/"
    diagnostics = [d for d in parse_diagnostics(config.tool, output, prefixes)
                   if not d["file"].startswith(gen)]
    counts: dict[str, int] = {}
    for d in diagnostics:
        counts[d["severity"]] = counts.get(d["severity"], 0) + 1
    run.result.summary["lint"] = {"tool": config.tool, "diagnostics": len(diagnostics), **counts}
    run.add_artifact("diagnostics.json", json.dumps(diagnostics, indent=2).encode(),
                     "diagnostics", "application/json")
    errors = [d for d in diagnostics if d["severity"] == "error"]
    lint_step = run.result.steps[-1]
    if errors:
        first = errors[0]
        raise JobFailed(f"lint found {len(errors)} error(s); first: "
                        f"{first['file']}:{first['line']}: {first['message']}")
    if lint_step.exit_code != 0:
        detail = first_error(output)
        raise JobFailed(f"lint failed (exit {lint_step.exit_code})" + (f": {detail}" if detail else ""))


KIND = JobKind(job_type="lint", config=LintConfig,
               tools=lambda config: ["verilator" if config.tool == "verilator" else "iverilog"],
               plan=plan_lint, collect=collect, judges_exit=frozenset({"lint"}))
