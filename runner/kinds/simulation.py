"""Simulation jobs: Icarus Verilog or Verilator, a testbench run to $finish; waveforms as VCD and FST.

Plan: compile the testbench's closure (runner/tools.py and the project model choose files and
roots), then run the image with the job's plusargs; a watchdog module enforces max_sim_time
and a dump module records a waveform when the testbench has no $dumpvars of its own.
Results: each VCD the run wrote (not one the project already held) becomes an artifact, indexed
as FST with `vcd2fst` inside the sandbox so the waveform API reads windows of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.hdl.project import CompileSet, simulation_set
from chalicelib.schemas.job_configs import V2005, SimulationConfig
from chalicelib.services.paths import MAX_PATH_DEPTH
from runner import fstree
from runner.kinds.base import JobFailed, JobKind
from runner.tools import (
    BUILD_DIR,
    Plan,
    Step,
    as_files,
    compile_set,
    config_timescale,
    defines,
    icarus_sources,
    language_hint,
    plan_notes,
)

if TYPE_CHECKING:
    from runner.execute import JobRun

SIM_IMAGE = f"{BUILD_DIR}/sim.vvp"
VERILATOR_DIR = f"{BUILD_DIR}/obj"
VERILATOR_BINARY = "Vsim"
WATCHDOG_MODULE = "a6hub_watchdog"
DUMP_MODULE = "a6hub_dump"
MAX_WAVEFORMS = 4


def plan_simulation(config: SimulationConfig, src: Path, gen_dir: str) -> Plan:
    testbench_file = config.testbench_file
    _, cs = compile_set(src, config, lambda p: simulation_set(
        p, testbench_file=testbench_file,
        testbench_module=None if testbench_file else config.testbench,
        top=config.top, files=config.files))
    notes = plan_notes(config, cs)
    plusargs = [f"+{arg}" for arg in config.plusargs]
    if config.waveform and "+vcd" not in plusargs:
        plusargs.append("+vcd")
    wants_dump = config.waveform and not cs.dumps
    if config.simulator == "verilator":
        plan = _plan_verilator(config, cs, plusargs, wants_dump, notes)
    else:
        plan = _plan_icarus(config, cs, plusargs, wants_dump, notes, gen_dir)
    plan.compile_set, plan.failure_hint = cs, language_hint(config, cs)
    return plan



def _plan_icarus(config: SimulationConfig, cs: CompileSet, plusargs: list[str],
                 wants_dump: bool, notes: list[str], gen_dir: str) -> Plan:
    generated: dict[str, str] = {}
    roots = [arg for root in cs.roots for arg in ("-s", root)]
    sources = icarus_sources(config, cs, generated, gen_dir)
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
    compile_argv = ["iverilog", "-g2012", "-o", SIM_IMAGE, *roots, *includes, *defines(config),
                    *as_files(sources)]
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
    argv += [f"-I{d}" for d in cs.include_dirs] + defines(config) + as_files(list(cs.files))
    run_argv = ["stdbuf", "-oL", "-eL", f"{VERILATOR_DIR}/{VERILATOR_BINARY}", *plusargs]
    return Plan(steps=[Step("compile", argv), Step("simulate", run_argv)], notes=notes,
                files=list(cs.files))


# Icarus' vvp prints these and exits 0: "VCD Error: Unable to open sim/x.vcd for output.",
# "ERROR: tb.v:6: $readmemh: Unable to open fw/prog.hex for reading.", "ERROR: tb.v:9: $fopen...".
_SILENT_ERROR = re.compile(
    r"^(?:VCD Error: .*|ERROR: .*|.*\$readmem[hb][^:]*: Unable to open .*)$", re.MULTILINE)


def silent_errors(output: str) -> list[str]:
    """Error lines a simulator printed although it exited 0, in order."""
    return [m.group(0).strip() for m in _SILENT_ERROR.finditer(output)]


# --- results -----------------------------------------------------------------------------------

def check_step(run: JobRun, step: Step, output: bytes) -> None:
    """Errors a simulator reports and still exits 0 on (Icarus: a VCD or memory file it
    cannot open) fail the job: the run did not do what the testbench says."""
    if step.name != "simulate":
        return
    found = silent_errors(output.decode(errors="replace"))
    if found:
        run.result.summary["tool_errors"] = found[:20]
        raise JobFailed(f"simulation reported an error (exit 0): {found[0]}")


def collect(run: JobRun, config: SimulationConfig) -> None:
    """Waveforms as artifacts (VCD, then FST), the simulator and its exit status in the summary."""
    collect_waveforms(run, config.waveform)
    run.result.summary["simulation"] = {
        "simulator": config.simulator,
        "exit_code": run.result.steps[-1].exit_code if run.result.steps else None,
    }
    index_waveforms(run)


def after_failure(run: JobRun, config: SimulationConfig) -> None:
    """What was dumped before a failure still helps the reader find it."""
    if config.waveform:
        collect_waveforms(run, True)


def collect_waveforms(run: JobRun, wanted: bool) -> None:
    """Copy out each .vcd the run wrote (at most MAX_WAVEFORMS), never following a link."""
    found = sum(a.kind == "waveform" for a in run.result.artifacts)
    # Iterative and depth-bounded: a tool may leave thousands of nested folders.
    for dirpath, dir_fd, files in fstree.walk_files(run.dirs.work, MAX_PATH_DEPTH):
        for name in files:
            if not name.endswith(".vcd") or found >= MAX_WAVEFORMS:
                continue
            rel = f"{dirpath}/{name}" if dirpath else name
            if _came_with_project(run, dir_fd, name, rel):
                continue
            out_name = run.unique_name(rel.removeprefix(f"{BUILD_DIR}/"))
            if run.copy_out(dir_fd, name, out_name, "waveform", "text/x-vcd", source=rel):
                found += 1
    run.result.summary["waveforms"] = found
    plan = run.plan
    if found == 0 and wanted and plan is not None:
        reason = ("the design's $dumpfile could not be written, or its $dumpvars did not run"
                  if plan.compile_set is not None and plan.compile_set.dumps
                  else "the simulator wrote no VCD")
        run.result.summary.setdefault("warnings", []).append(f"waveform requested but none: {reason}")
        run.say(f"warning: waveform requested but no VCD was produced: {reason}")


def _came_with_project(run: JobRun, dir_fd: int, name: str, rel: str) -> bool:
    """A .vcd the project holds, unchanged by the run, is an input, not a result."""
    try:
        mine = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        theirs = os.stat(run.dirs.src / rel, follow_symlinks=False)
    except OSError:
        return False
    return mine.st_size == theirs.st_size and mine.st_mtime_ns == theirs.st_mtime_ns


def index_waveforms(run: JobRun) -> None:
    """Convert each kept VCD to FST (gtkwave's `vcd2fst`, inside the sandbox) beside it.

    FST is compressed and indexed by time block and signal, so the API reads a window of a
    few signals without the whole trace (chalicelib/services/waveforms.py); the VCD artifact
    stays downloadable. A failed conversion is logged and leaves the job's status alone.
    """
    vcds = [a for a in list(run.result.artifacts) if a.kind == "waveform"]
    done = 0
    for vcd in vcds:
        fst_name = run.unique_name(vcd.name[:-len(".vcd")] + ".fst")
        built = os.path.join(BUILD_DIR, fst_name)
        # The tool's own file: its processes are gone, and the sandbox resolves any link.
        source = run.copied_from.get(vcd.name)
        if source is None:
            continue
        argv = ["vcd2fst", run.sandbox.inside("work", source), run.sandbox.inside("work", built)]
        result = run.run_extra_step("waveform_index", argv)
        build = run.build_fd()
        try:
            ok = result.exit_code == 0 and not result.limit and run.copy_out(
                build, fst_name, fst_name, "waveform_fst", "application/x-fst")
        finally:
            os.close(build)
        if ok:
            done += 1
        else:
            why = result.limit or f"exit {result.exit_code}"
            run.say(f"could not index {vcd.name} as FST ({why}); the VCD is kept, "
                    "the waveform API will not read it")
    run.result.summary["waveforms_indexed"] = done


def _tools(config: SimulationConfig) -> list[str]:
    return ["iverilog", "vvp"] if config.simulator == "icarus" else ["verilator"]


KIND = JobKind(job_type="simulation", config=SimulationConfig, tools=_tools, plan=plan_simulation,
               collect=collect, after_step=check_step, after_failure=after_failure)
