"""Synthesis jobs: yosys reads the design under `top`, synthesises for a family, reports cells.

Plan: a generated yosys script (never the project's own .ys) reads each file, checks the
hierarchy, runs `synth` or `synth_<family>` and writes statistics and the netlist.
Results: `stat -json` reduced to totals and flip-flop / LUT / block-RAM counts for the family's
cell names (summary and stat.json), netlist.json and netlist.v as artifacts.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.hdl.project import CompileSet, Project, synthesis_set
from chalicelib.schemas.job_configs import V2005, FormalConfig, SynthesisConfig
from runner import schematic
from runner.kinds.base import JobFailed, JobKind, copy_built
from runner.tools import (
    BUILD_DIR,
    JobInputError,
    Plan,
    Step,
    compile_set,
    language_hint,
    plan_notes,
)

if TYPE_CHECKING:
    from runner.execute import JobRun

STAT_RAW = f"{BUILD_DIR}/stat.raw.json"
NETLIST_JSON = f"{BUILD_DIR}/netlist.json"
NETLIST_VERILOG = f"{BUILD_DIR}/netlist.v"


def _yosys_word(text: str) -> str:
    """A yosys script argument: double-quoted (file names may hold spaces)."""
    if any(c in text for c in '"\\\n\r'):
        raise JobInputError(f"file name {text!r} cannot be passed to yosys (quote or backslash)")
    return f'"{text}"'


def yosys_reads(config: SynthesisConfig | FormalConfig, project: Project, cs: CompileSet,
                gen_dir: str, generated: dict[str, str], *, formal: bool = False) -> list[str]:
    """The yosys script lines reading the job's defines and `cs.files` under `cs.roots[0]`;
    `formal` reads with -formal (defines FORMAL, keeps assert/assume/cover). The defines header
    is added to `generated` (written into `gen_dir`)."""
    read = "read_verilog -formal" if formal else "read_verilog"
    includes = " ".join(f"-I {_yosys_word(d)}" for d in cs.include_dirs)
    lines = []
    if config.defines:
        # A header of `define lines read first: yosys keeps macros across read_verilog calls,
        # and a script line cannot carry a string value's quotes.
        generated["a6hub_defines.vh"] = "".join(
            f"`define {name} {value}\n" for name, value in config.defines.items())
        lines.append(f"{read} -sv {_yosys_word(gen_dir + '/a6hub_defines.vh')}")
    # Files outside top's hierarchy (config.files may list a testbench) are read with -defer:
    # parsed now, elaborated by `hierarchy` only if top needs them, so a testbench's $finish
    # never runs. Not otherwise: -defer changes what yosys' front end folds (pwm_unit: 25 cells
    # instead of the 29 of a plain read_verilog).
    defer = " -defer" if set(cs.files) - set(project.closure(cs.roots[:1])) else ""
    for f in cs.files:
        sv = "" if config.language == V2005 and f.endswith(".v") else " -sv"
        lines.append(f"{read}{defer}{sv} {includes} {_yosys_word(f)}")
    return lines


def plan_synthesis(config: SynthesisConfig, src: Path, gen_dir: str) -> Plan:
    project, cs = compile_set(
        src, config, lambda p: synthesis_set(p, top=config.top, files=config.files))
    top = cs.roots[0]
    generated: dict[str, str] = {}
    lines = yosys_reads(config, project, cs, gen_dir, generated)
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
                notes=plan_notes(config, cs), files=list(cs.files))
    plan.compile_set, plan.failure_hint = cs, language_hint(config, cs)
    return schematic.with_schematic(config, plan)


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


# --- results -----------------------------------------------------------------------------------

def collect(run: JobRun, config: SynthesisConfig) -> None:
    """Statistics into the summary and stat.json; netlist.json and netlist.v as artifacts."""
    build = run.build_fd()
    try:
        raw = run.read_regular(build, os.path.basename(STAT_RAW))
        if raw is None:
            raise JobFailed("synthesis produced no statistics")
        try:
            summary = stat_summary(load_json(raw))
        except ValueError as e:
            raise JobFailed(f"synthesis statistics are not valid JSON: {e}") from e
        run.result.summary["synthesis"] = {k: v for k, v in summary.items() if k != "modules"}
        run.add_artifact("stat.json", json.dumps(summary, indent=2).encode(), "stat",
                         "application/json")
        copy_built(run, build, [
            (NETLIST_JSON, "netlist.json", "netlist_json", "application/json"),
            (NETLIST_VERILOG, "netlist.v", "netlist_verilog", "text/x-verilog")], "synthesis")
    finally:
        os.close(build)
    if config.schematic:
        schematic.collect_schematic(run)


KIND = JobKind(job_type="synthesis", config=SynthesisConfig,
               tools=lambda config: ["yosys", "dot"] if config.schematic else ["yosys"],
               plan=plan_synthesis, collect=collect)
