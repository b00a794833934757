"""Command lines and scripts for the HDL tools, built by the runner from a validated job config.

Every argument is generated here: user values arrive already checked by
chalicelib/schemas/job_configs.py and only ever land in a position the tool reads as a value
(a -D define, a +plusarg after the simulation image, a file name without a leading '-').
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from chalicelib.schemas.job_configs import (
    HDL_SUFFIXES,
    LintConfig,
    SimulationConfig,
    SynthesisConfig,
)

BUILD_DIR = "_a6hub"  # inside the work dir: the runner's intermediate files
SIM_IMAGE = f"{BUILD_DIR}/sim.vvp"
VERILATOR_DIR = f"{BUILD_DIR}/obj"
VERILATOR_BINARY = "Vsim"
STAT_RAW = f"{BUILD_DIR}/stat.raw.json"
NETLIST_JSON = f"{BUILD_DIR}/netlist.json"
NETLIST_VERILOG = f"{BUILD_DIR}/netlist.v"
WATCHDOG_MODULE = "a6hub_watchdog"
DUMP_MODULE = "a6hub_dump"
DEFAULT_TIMESCALE = "1ns/1ps"

_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@-]*(/[A-Za-z0-9_][A-Za-z0-9_.+@-]*)*")
_MODULE = re.compile(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.MULTILINE)
_DUMPVARS = re.compile(rb"\$dumpvars\b")


class JobInputError(ValueError):
    """The job's config does not fit the project's files (missing testbench, no HDL files...)."""


@dataclass
class Step:
    """One tool invocation; `argv` paths are relative to the tool's cwd (the job's work dir)."""

    name: str
    argv: list[str]


@dataclass
class Plan:
    steps: list[Step]
    generated: dict[str, str] = field(default_factory=dict)  # gen/<name> -> text
    notes: list[str] = field(default_factory=list)  # told to the user in the log
    files: list[str] = field(default_factory=list)


def discover_hdl_files(src: Path) -> tuple[list[str], list[str]]:
    """All .v/.sv files of the project (sorted), and those skipped for names tools cannot take."""
    found: list[str] = []
    skipped: list[str] = []
    for parent, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            rel = os.path.relpath(os.path.join(parent, name), src)
            if not name.endswith(HDL_SUFFIXES) or os.path.islink(os.path.join(parent, name)):
                continue
            (found if _SAFE_PATH.fullmatch(rel) else skipped).append(rel)
    return sorted(found), sorted(skipped)


def _select_files(src: Path, wanted: list[str] | None, notes: list[str]) -> list[str]:
    if wanted is None:
        files, skipped = discover_hdl_files(src)
        for name in skipped:
            notes.append(f"skipped {name!r}: use letters, digits and '_.+@-' in HDL file names")
    else:
        files = list(wanted)
        missing = [f for f in files if not (src / f).is_file()]
        if missing:
            raise JobInputError(f"file not found in the project: {', '.join(missing)}")
    if not files:
        raise JobInputError("the project has no Verilog/SystemVerilog (.v, .sv) files")
    return files


def _include_dirs(files: list[str]) -> list[str]:
    dirs = ["."]
    for f in files:
        d = os.path.dirname(f) or "."
        if d not in dirs:
            dirs.append(d)
    return dirs


def _modules_in(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return _MODULE.findall(text)


def _uses_dumpvars(src: Path, files: list[str]) -> bool:
    for f in files:
        try:
            if _DUMPVARS.search((src / f).read_bytes()):
                return True
        except OSError:
            continue
    return False


def _simulation_top(config: SimulationConfig, src: Path, files: list[str]) -> str | None:
    if config.top:
        return config.top
    if config.testbench_file is None:
        return config.testbench
    modules = _modules_in(src / config.testbench_file)
    return modules[0] if len(modules) == 1 else None


def _defines(config: SimulationConfig) -> list[str]:
    return [f"-D{name}={value}" for name, value in config.defines.items()]


def _sim_files(config: SimulationConfig, src: Path, notes: list[str]) -> list[str]:
    files = _select_files(src, config.files, notes)
    tb = config.testbench_file
    if tb is not None:
        if not (src / tb).is_file():
            raise JobInputError(f"testbench file not found in the project: {tb}")
        if tb not in files:
            files.append(tb)
    return files


def plan_simulation(config: SimulationConfig, src: Path, gen_dir: str) -> Plan:
    notes: list[str] = []
    files = _sim_files(config, src, notes)
    top = _simulation_top(config, src, files)
    if top is None and config.testbench_file is not None:
        notes.append(f"{config.testbench_file} holds several modules; every uninstantiated one is a root")
    plusargs = [f"+{arg}" for arg in config.plusargs]
    if config.waveform and "+vcd" not in plusargs:
        plusargs.append("+vcd")
    wants_dump = config.waveform and not _uses_dumpvars(src, files)
    if config.simulator == "verilator":
        return _plan_verilator(config, files, top, plusargs, wants_dump, notes)
    return _plan_icarus(config, files, top, plusargs, wants_dump, notes, gen_dir)


def _plan_icarus(config: SimulationConfig, files: list[str], top: str | None, plusargs: list[str],
                 wants_dump: bool, notes: list[str], gen_dir: str) -> Plan:
    generated: dict[str, str] = {}
    roots = ["-s", top] if top else []
    sources: list[str] = []
    timescale = config.timescale or DEFAULT_TIMESCALE
    if config.timescale:
        # A `timescale directive before the first file is the default for files that set none.
        generated["a6hub_timescale.v"] = f"`timescale {config.timescale}\n"
        sources.append(f"{gen_dir}/a6hub_timescale.v")
    sources += files
    if config.max_sim_time is not None:
        generated["a6hub_watchdog.v"] = (
            f"`timescale {timescale}\nmodule {WATCHDOG_MODULE};\n  initial begin\n"
            f"    #({config.max_sim_time});\n"
            f'    $display("a6hub: max_sim_time {config.max_sim_time} reached, stopping");\n'
            "    $finish;\n  end\nendmodule\n"
        )
        sources.append(f"{gen_dir}/a6hub_watchdog.v")
        roots += ["-s", WATCHDOG_MODULE] if top else []
    if wants_dump:
        if top:
            generated["a6hub_dump.v"] = (
                f"module {DUMP_MODULE};\n  initial begin\n    $dumpfile(\"waveform.vcd\");\n"
                f"    $dumpvars(0, {top});\n  end\nendmodule\n"
            )
            sources.append(f"{gen_dir}/a6hub_dump.v")
            roots += ["-s", DUMP_MODULE]
        else:
            notes.append("waveform requested but the top module is unknown; set config.top")
    includes = [arg for d in _include_dirs(files) for arg in ("-I", d)]
    compile_argv = ["iverilog", "-g2012", "-o", SIM_IMAGE, *roots, *includes, *_defines(config), *sources]
    run_argv = ["vvp", "-n", SIM_IMAGE, *plusargs]
    return Plan(steps=[Step("compile", compile_argv), Step("simulate", run_argv)],
                generated=generated, notes=notes, files=files)


def _plan_verilator(config: SimulationConfig, files: list[str], top: str | None, plusargs: list[str],
                    wants_dump: bool, notes: list[str]) -> Plan:
    argv = ["verilator", "--binary", "-j", "2", "-Wno-fatal", "-Mdir", VERILATOR_DIR,
            "-o", VERILATOR_BINARY]
    if top:
        argv += ["--top-module", top]
    if config.timescale:
        argv += ["--timescale", config.timescale]
    if config.waveform:
        argv.append("--trace")
    if wants_dump:
        notes.append("waveform with verilator needs $dumpfile/$dumpvars in the testbench")
    argv += [f"-I{d}" for d in _include_dirs(files)] + _defines(config) + files
    run_argv = [f"{VERILATOR_DIR}/{VERILATOR_BINARY}", *plusargs]
    return Plan(steps=[Step("compile", argv), Step("simulate", run_argv)], notes=notes, files=files)


def plan_synthesis(config: SynthesisConfig, src: Path, gen_dir: str) -> Plan:
    notes: list[str] = []
    files = _select_files(src, config.files, notes)
    includes = " ".join(f"-I{d}" for d in _include_dirs(files))
    lines = [f"read_verilog -sv {includes} {f}" for f in files]
    top = f"-top {config.top}" if config.top else "-auto-top"
    lines.append(f"hierarchy -check {top}")
    top_arg = f" -top {config.top}" if config.top else ""
    if config.family == "generic":
        lines.append(f"synth{top_arg}{' -flatten' if config.flatten else ''}")
    else:
        lines.append(f"synth_{config.family}{top_arg}")
    lines += [
        f"tee -q -o {STAT_RAW} stat -json",
        "stat",
        f"write_json {NETLIST_JSON}",
        f"write_verilog -noattr {NETLIST_VERILOG}",
    ]
    script = "\n".join(lines) + "\n"
    argv = ["yosys", "-Q", "-s", f"{gen_dir}/synth.ys"]
    return Plan(steps=[Step("synthesis", argv)], generated={"synth.ys": script}, notes=notes, files=files)


def plan_lint(config: LintConfig, src: Path, gen_dir: str) -> Plan:
    notes: list[str] = []
    files = _select_files(src, config.files, notes)
    if config.tool == "icarus":
        argv = ["iverilog", "-g2012", "-Wall", "-t", "null"]
        argv += [a for d in _include_dirs(files) for a in ("-I", d)]
        argv += ["-s", config.top] if config.top else []
    else:
        argv = ["verilator", "--lint-only", "-Wall", "-Wno-fatal"]
        argv += [f"-I{d}" for d in _include_dirs(files)]
        argv += ["--top-module", config.top] if config.top else []
    return Plan(steps=[Step("lint", [*argv, *files])], notes=notes, files=files)


# --- diagnostics -------------------------------------------------------------------------------

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


# --- synthesis statistics ----------------------------------------------------------------------

def stat_summary(raw: dict[str, Any]) -> dict[str, Any]:
    """Yosys 0.23 `stat -json` reduced to what a reader wants: totals, cells by type, area."""
    design = raw.get("design") or {}
    modules = raw.get("modules") or {}
    if not design and len(modules) == 1:
        design = next(iter(modules.values()))
    by_type = design.get("num_cells_by_type") or {}
    flip_flops = sum(n for cell, n in by_type.items() if "DFF" in cell.upper() or "FF" in cell.upper())
    return {
        "tool": raw.get("creator"),
        "cells": design.get("num_cells"),
        "cells_by_type": by_type,
        "flip_flops": flip_flops,
        "wires": design.get("num_wires"),
        "wire_bits": design.get("num_wire_bits"),
        "public_wires": design.get("num_pub_wires"),
        "memories": design.get("num_memories"),
        "memory_bits": design.get("num_memory_bits"),
        "area": design.get("area"),  # only with a liberty file; None for generic gates
        "modules": {name.lstrip("\\"): {
            "cells": m.get("num_cells"), "wires": m.get("num_wires"),
            "cells_by_type": m.get("num_cells_by_type") or {},
        } for name, m in modules.items()},
    }


def load_json(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


# --- versions ----------------------------------------------------------------------------------

VERSION_COMMANDS = {
    "iverilog": ["iverilog", "-V"],
    "vvp": ["vvp", "-V"],
    "yosys": ["yosys", "-V"],
    "verilator": ["verilator", "--version"],
}


@cache
def tool_version(tool: str) -> str:
    """First line of the tool's version output (fixed argv, run once per process)."""
    argv = VERSION_COMMANDS[tool]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable: {e}"
    text = (proc.stdout or proc.stderr).decode(errors="replace").strip()
    return text.splitlines()[0].strip() if text else f"unknown (exit {proc.returncode})"
