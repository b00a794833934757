"""Command lines and scripts for the HDL tools, built by the runner from a validated job config.

Every argument is generated here: user values arrive already checked by
chalicelib/schemas/job_configs.py and only ever land in a position the tool reads as a value
(a -D define, a +plusarg after the simulation image, a file name without a leading '-'). Which
files, in which order, with which include path and roots comes from the project model
(chalicelib/hdl/project.py), built from a real parse of every file. Tools run with the project's
(writable) copy as their cwd, so relative paths in $dumpfile/$readmemh/$fopen resolve as they do
for a person who runs the tools from the project root.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from chalicelib.hdl.project import (
    CompileSet,
    Project,
    ProjectError,
    lint_set,
    load_project,
    simulation_set,
    synthesis_set,
)
from chalicelib.schemas.job_configs import (
    SV,
    V2005,
    LintConfig,
    SimulationConfig,
    SynthesisConfig,
    _JobConfig,
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



class JobInputError(ValueError):
    """The job's config does not fit the project's files (missing testbench, no HDL files...)."""


@dataclass
class Step:
    """One tool invocation; `argv` paths are relative to the tool's cwd (the project's copy)."""

    name: str
    argv: list[str]


@dataclass
class Plan:
    steps: list[Step]
    generated: dict[str, str] = field(default_factory=dict)  # gen/<name> -> text
    notes: list[str] = field(default_factory=list)  # told to the user in the log
    files: list[str] = field(default_factory=list)
    compile_set: CompileSet | None = None
    # A compile failure is explained with this (e.g. `.v files are compiled as SystemVerilog`).
    failure_hint: str | None = None


def project_paths(src: Path) -> list[str]:
    """Every regular file of the project (POSIX paths relative to `src`), links not followed."""
    found: list[str] = []
    for parent, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not os.path.islink(os.path.join(parent, d)))
        for name in filenames:
            full = os.path.join(parent, name)
            if os.path.isfile(full) and not os.path.islink(full):
                found.append(Path(os.path.relpath(full, src)).as_posix())
    return sorted(found)


def load(src: Path, config: _JobConfig) -> Project:
    """The project model of the files in `src`, parsed with the job's defines and include dirs."""
    paths = project_paths(src)
    if any(p == BUILD_DIR or p.startswith(BUILD_DIR + "/") for p in paths):
        raise JobInputError(f"the project has a top-level {BUILD_DIR!r} entry: the runner builds there")
    known = set(paths)

    def read(path: str) -> bytes | None:
        if path not in known:
            return None
        try:
            return (src / path).read_bytes()
        except OSError:
            return None

    return load_project(paths, read, defines={k: str(v) for k, v in config.defines.items()},
                        include_dirs=config.include_dirs, verilog_2005=config.language == V2005)


def _check_files(project: Project, wanted: list[str] | None) -> None:
    if wanted is None:
        if not project.sources:
            raise JobInputError("the project has no Verilog/SystemVerilog (.v, .sv) files")
        return
    missing = [f for f in wanted if f not in project.sources]
    if missing:
        raise JobInputError(f"file not found in the project: {', '.join(missing)}")


def _defines(config: _JobConfig) -> list[str]:
    return [f"-D{name}={value}" for name, value in config.defines.items()]


def _language_hint(config: _JobConfig, cs: CompileSet) -> str | None:
    if config.language != SV or not cs.verilog_2005_only:
        return None
    return (f".v files are compiled as SystemVerilog (IEEE 1800-2012) and "
            f"{', '.join(cs.verilog_2005_only[:3])} parses only as Verilog-2005 (a SystemVerilog "
            f"keyword used as a name?): set config.language to \"{V2005}\"")


def _plan_notes(config: _JobConfig, cs: CompileSet) -> list[str]:
    notes = list(cs.notes)
    hint = _language_hint(config, cs)
    if hint:
        notes.append(hint)
    return notes


def plan_simulation(config: SimulationConfig, src: Path, gen_dir: str) -> Plan:
    project = load(src, config)
    _check_files(project, config.files)
    testbench_file = config.testbench_file
    try:
        cs = simulation_set(project, testbench_file=testbench_file,
                            testbench_module=None if testbench_file else config.testbench,
                            top=config.top, files=config.files)
    except ProjectError as e:
        raise JobInputError(str(e)) from e
    notes = _plan_notes(config, cs)
    plusargs = [f"+{arg}" for arg in config.plusargs]
    if config.waveform and "+vcd" not in plusargs:
        plusargs.append("+vcd")
    wants_dump = config.waveform and not cs.dumps
    if config.simulator == "verilator":
        plan = _plan_verilator(config, cs, plusargs, wants_dump, notes)
    else:
        plan = _plan_icarus(config, cs, plusargs, wants_dump, notes, gen_dir)
    plan.compile_set, plan.failure_hint = cs, _language_hint(config, cs)
    return plan


def _icarus_sources(config: _JobConfig, cs: CompileSet, generated: dict[str, str],
                    gen_dir: str) -> list[str]:
    """The files in order, each untimed one after the default `timescale, each .v file under
    `begin_keywords "1364-2005"` when the job compiles .v files as Verilog-2005 (Icarus takes one
    -g for all files; these directives make the rule per file, as Verilator's +1364-2005ext+v)."""
    timescale = config_timescale(config)
    sources: list[str] = []
    for path in cs.files:
        if path in cs.untimed:
            generated["a6hub_timescale.v"] = f"`timescale {timescale}\n"
            sources.append(f"{gen_dir}/a6hub_timescale.v")
        if config.language == V2005 and path.endswith(".v"):
            generated["a6hub_v2005.v"] = '`begin_keywords "1364-2005"\n'
            generated["a6hub_end_keywords.v"] = "`end_keywords\n"
            sources += [f"{gen_dir}/a6hub_v2005.v", path, f"{gen_dir}/a6hub_end_keywords.v"]
        else:
            sources.append(path)
    return sources


def config_timescale(config: _JobConfig) -> str:
    """The default `timescale of files that declare none: config.timescale, else 1ns/1ps."""
    return getattr(config, "timescale", None) or DEFAULT_TIMESCALE


def _plan_icarus(config: SimulationConfig, cs: CompileSet, plusargs: list[str],
                 wants_dump: bool, notes: list[str], gen_dir: str) -> Plan:
    generated: dict[str, str] = {}
    roots = [arg for root in cs.roots for arg in ("-s", root)]
    sources = _icarus_sources(config, cs, generated, gen_dir)
    timescale = config_timescale(config)
    if config.max_sim_time is not None:
        generated["a6hub_watchdog.v"] = (
            f"`timescale {timescale}\nmodule {WATCHDOG_MODULE};\n  initial begin\n"
            f"    #({config.max_sim_time});\n"
            f'    $display("a6hub: max_sim_time {config.max_sim_time} reached, stopping");\n'
            "    $finish;\n  end\nendmodule\n"
        )
        sources.append(f"{gen_dir}/a6hub_watchdog.v")
        roots += ["-s", WATCHDOG_MODULE]
    if wants_dump:
        generated["a6hub_dump.v"] = (
            f"module {DUMP_MODULE};\n  initial begin\n    $dumpfile(\"{BUILD_DIR}/waveform.vcd\");\n"
            + "".join(f"    $dumpvars(0, {root});\n" for root in cs.roots)
            + "  end\nendmodule\n"
        )
        sources.append(f"{gen_dir}/a6hub_dump.v")
        roots += ["-s", DUMP_MODULE]
    includes = [arg for d in cs.include_dirs for arg in ("-I", d)]
    compile_argv = ["iverilog", "-g2012", "-o", SIM_IMAGE, *roots, *includes, *_defines(config),
                    *_as_files(sources)]
    # vvp writes stdout through stdio: into a pipe that is block-buffered and lost on SIGKILL or
    # SIGXCPU. Line buffering (coreutils stdbuf) keeps every line printed before a stop.
    run_argv = ["stdbuf", "-oL", "-eL", "vvp", "-n", SIM_IMAGE, *plusargs]
    return Plan(steps=[Step("compile", compile_argv), Step("simulate", run_argv)],
                generated=generated, notes=notes, files=list(cs.files))


def _as_files(paths: list[str]) -> list[str]:
    """Paths as tool arguments: one starting with '-' or '+' gets './' so it is never an option."""
    return [f"./{p}" if p.startswith(("-", "+")) else p for p in paths]


def _plan_verilator(config: SimulationConfig, cs: CompileSet, plusargs: list[str],
                    wants_dump: bool, notes: list[str]) -> Plan:
    argv = ["verilator", "--binary", "-j", "2", "-Wno-fatal", "-Mdir", VERILATOR_DIR,
            "-o", VERILATOR_BINARY, "--timescale", config_timescale(config)]
    if len(cs.roots) == 1:
        argv += ["--top-module", cs.roots[0]]
    if config.language == V2005:
        argv.append("+1364-2005ext+v")
    if config.waveform:
        argv.append("--trace")
    if wants_dump:
        notes.append("waveform with verilator needs $dumpfile/$dumpvars in the testbench")
    argv += [f"-I{d}" for d in cs.include_dirs] + _defines(config) + _as_files(list(cs.files))
    run_argv = ["stdbuf", "-oL", "-eL", f"{VERILATOR_DIR}/{VERILATOR_BINARY}", *plusargs]
    return Plan(steps=[Step("compile", argv), Step("simulate", run_argv)], notes=notes,
                files=list(cs.files))


def _yosys_word(text: str) -> str:
    """A yosys script argument: double-quoted (file names may hold spaces)."""
    if any(c in text for c in '"\\\n\r'):
        raise JobInputError(f"file name {text!r} cannot be passed to yosys (quote or backslash)")
    return f'"{text}"'


def plan_synthesis(config: SynthesisConfig, src: Path, gen_dir: str) -> Plan:
    project = load(src, config)
    _check_files(project, config.files)
    try:
        cs = synthesis_set(project, top=config.top, files=config.files)
    except ProjectError as e:
        raise JobInputError(str(e)) from e
    top = cs.roots[0]
    includes = " ".join(f"-I {_yosys_word(d)}" for d in cs.include_dirs)
    generated: dict[str, str] = {}
    lines = []
    if config.defines:
        # A header of `define lines read first: yosys keeps macros across read_verilog calls,
        # and a script line cannot carry a string value's quotes.
        generated["a6hub_defines.vh"] = "".join(
            f"`define {name} {value}\n" for name, value in config.defines.items())
        lines.append(f"read_verilog -sv {_yosys_word(gen_dir + '/a6hub_defines.vh')}")
    # Files outside top's hierarchy (config.files may list a testbench) are read with -defer:
    # parsed now, elaborated by `hierarchy` only if top needs them, so a testbench's $finish
    # never runs. Not otherwise: -defer changes what yosys' front end folds (pwm_unit: 25 cells
    # instead of the 29 of a plain read_verilog).
    defer = " -defer" if set(cs.files) - set(project.closure([top])) else ""
    for f in cs.files:
        sv = "" if config.language == V2005 and f.endswith(".v") else " -sv"
        lines.append(f"read_verilog{defer}{sv} {includes} {_yosys_word(f)}")
    lines.append(f"hierarchy -check -top {top}")
    if config.family == "generic":
        lines.append(f"synth -top {top}{' -flatten' if config.flatten else ''}")
    else:
        lines.append(f"synth_{config.family} -top {top}")
    lines += [
        f"tee -q -o {STAT_RAW} stat -json",
        "stat",
        f"write_json {NETLIST_JSON}",
        f"write_verilog -noattr {NETLIST_VERILOG}",
    ]
    script = "\n".join(lines) + "\n"
    argv = ["yosys", "-Q", "-s", f"{gen_dir}/synth.ys"]
    generated["synth.ys"] = script
    plan = Plan(steps=[Step("synthesis", argv)], generated=generated,
                notes=_plan_notes(config, cs), files=list(cs.files))
    plan.compile_set, plan.failure_hint = cs, _language_hint(config, cs)
    return plan


def plan_lint(config: LintConfig, src: Path, gen_dir: str) -> Plan:
    project = load(src, config)
    _check_files(project, config.files)
    try:
        cs = lint_set(project, top=config.top, files=config.files)
    except ProjectError as e:
        raise JobInputError(str(e)) from e
    generated: dict[str, str] = {}
    if config.tool == "icarus":
        # -Wno-timescale: untimed files get the default `timescale by rule (see _icarus_sources);
        # "timescale inherited from another file" would only point at the runner's file.
        argv = ["iverilog", "-g2012", "-Wall", "-Wno-timescale", "-t", "null"]
        argv += [a for d in cs.include_dirs for a in ("-I", d)] + _defines(config)
        argv += ["-s", config.top] if config.top else []
        files = _icarus_sources(config, cs, generated, gen_dir)
    else:
        # --timing: a testbench's #delays are what it is for (without it: NEEDTIMINGOPT errors).
        argv = ["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--timing",
                "--timescale", config_timescale(config)]
        argv += ["+1364-2005ext+v"] if config.language == V2005 else []
        argv += [f"-I{d}" for d in cs.include_dirs] + _defines(config)
        argv += ["--top-module", config.top] if config.top else []
        files = list(cs.files)
    plan = Plan(steps=[Step("lint", [*argv, *_as_files(files)])], generated=generated,
                notes=_plan_notes(config, cs), files=list(cs.files))
    plan.compile_set, plan.failure_hint = cs, _language_hint(config, cs)
    return plan


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


# --- errors reported with exit status 0 --------------------------------------------------------

# Icarus' vvp prints these and exits 0: "VCD Error: Unable to open sim/x.vcd for output.",
# "ERROR: tb.v:6: $readmemh: Unable to open fw/prog.hex for reading.", "ERROR: tb.v:9: $fopen...".
_SILENT_ERROR = re.compile(
    r"^(?:VCD Error: .*|ERROR: .*|.*\$readmem[hb][^:]*: Unable to open .*)$", re.MULTILINE)


def silent_errors(output: str) -> list[str]:
    """Error lines a simulator printed although it exited 0, in order."""
    return [m.group(0).strip() for m in _SILENT_ERROR.finditer(output)]


# --- synthesis statistics ----------------------------------------------------------------------

# Cell types per resource, by family: yosys' internal gates for "generic", each vendor's
# primitives otherwise (the cell libraries in yosys' techlibs/<family>/cells_sim.v).
# fnmatch patterns; a cell counts in the first class it matches.
_FLIP_FLOPS = ("$_DFF*", "$_DFFE*", "$_SDFF*", "$_ALDFF*", "$_DFFSR*", "$dff", "$adff", "$sdff*",
               "$dffe", "$adffe", "$dffsr*", "$aldff*",
               "SB_DFF*", "TRELLIS_FF", "FD1P3*", "FD1S3*", "IFD1P3*", "OFD1P3*",
               "FDRE*", "FDSE*", "FDCE*", "FDPE*", "FDRE_1", "DFF", "DFFE", "DFF[RSCPN]*",
               "CC_DFF", "EFX_FF", "dffeas", "MISTRAL_FF")
_LUTS = ("$lut", "SB_LUT4", "LUT[1-6]", "LUT4", "CC_LUT[1-4]", "CC_L2T[45]", "EFX_LUT4",
         "*_lcell_comb", "MISTRAL_ALUT*", "WIDEFN9")
_BLOCK_RAMS = ("SB_RAM40_4K*", "SB_SPRAM256KA", "DP16KD", "PDPW16KD", "RAMB18E[12]", "RAMB36E[12]",
               "RAMB18", "RAMB36", "DP16K", "PDP16K", "PDPSC16K", "SP16K", "SP512K", "DPSC512K",
               "PDPSC512K", "SP", "SPX9", "DP", "DPX9", "SDP", "SDPX9", "DPB", "DPX9B", "SDPB",
               "SDPX9B", "pROM", "pROMX9", "CC_BRAM_20K", "CC_BRAM_40K", "EFX_RAM_5K",
               "altsyncram", "MISTRAL_M10K", "*_ram_block")


def cell_class(cell: str) -> str | None:
    """"flip_flop", "lut", "block_ram" or None for a yosys or vendor cell type name."""
    name = cell.lstrip("\\")
    for kind, patterns in (("flip_flop", _FLIP_FLOPS), ("lut", _LUTS), ("block_ram", _BLOCK_RAMS)):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return kind
    return None


def resource_counts(by_type: dict[str, int]) -> dict[str, int]:
    """Flip-flops, LUTs and block RAMs among `num_cells_by_type` (see _FLIP_FLOPS...)."""
    counts = {"flip_flop": 0, "lut": 0, "block_ram": 0}
    for cell, n in by_type.items():
        kind = cell_class(cell)
        if kind is not None:
            counts[kind] += int(n)
    return counts


def stat_summary(raw: dict[str, Any]) -> dict[str, Any]:
    """Yosys 0.23 `stat -json` reduced to what a reader wants: totals, cells by type, area,
    and flip-flop / LUT / block-RAM counts for the family's cell names."""
    design = raw.get("design") or {}
    modules = raw.get("modules") or {}
    if not design and len(modules) == 1:
        design = next(iter(modules.values()))
    by_type = design.get("num_cells_by_type") or {}
    counts = resource_counts(by_type)
    return {
        "tool": raw.get("creator"),
        "cells": design.get("num_cells"),
        "cells_by_type": by_type,
        "flip_flops": counts["flip_flop"],
        "luts": counts["lut"],
        "block_rams": counts["block_ram"],
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
