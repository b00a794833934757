"""FPGA builds: yosys synth_<family>, nextpnr place and route, the family's bitstream packer.

Plan: the synthesis kind's yosys script (runner/kinds/synthesis.py, which writes the JSON netlist
nextpnr reads), then `nextpnr-<family>` and the packer; every argument is generated here from the
validated BuildConfig, and the constraint file is a project path that must exist.
Results: nextpnr's `--report` JSON (nextpnr 0.4: {"utilization": {bel type: {used, available}},
"fmax": {clock net: {achieved, constraint}}, "critical_paths": [...]}) as the utilisation and the
maximum frequency per clock domain (summary.build); the bitstream, the placed design, the report
and the synthesis netlists as artifacts. nextpnr fails (exit 255) when a clock misses `--freq`
unless `--timing-allow-fail`, and when a cell type runs out of sites ("no BELs remaining to
implement cell type 'ICESTORM_LC'"); both become a message naming the clock or the resource.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.schemas.job_configs import BuildConfig, SynthesisConfig
from runner.kinds import synthesis
from runner.kinds.base import JobFailed, JobKind, copy_built
from runner.tools import BUILD_DIR, JobInputError, Plan, Step, as_files, first_error, project_paths

if TYPE_CHECKING:
    from runner.execute import JobRun

PLACED = f"{BUILD_DIR}/placed.asc"
BITSTREAM = f"{BUILD_DIR}/bitstream.bin"
REPORT = f"{BUILD_DIR}/nextpnr-report.json"


def _synthesis_config(config: BuildConfig) -> SynthesisConfig:
    return SynthesisConfig.model_validate({
        "files": config.files, "defines": config.defines, "include_dirs": config.include_dirs,
        "language": config.language, "top": config.top, "family": config.family,
    })


def plan_build(config: BuildConfig, src: Path, gen_dir: str) -> Plan:
    """Three steps: synthesis (yosys), place_route (nextpnr-ice40), bitstream (icepack)."""
    if config.constraints not in project_paths(src):
        raise JobInputError(f"constraint file not found in the project: {config.constraints}")
    plan = synthesis.plan_synthesis(_synthesis_config(config), src, gen_dir)
    pnr = [f"nextpnr-{config.family}", f"--{config.device}", "--package", config.package,
           "--json", synthesis.NETLIST_JSON, "--pcf", *as_files([config.constraints]),
           "--asc", PLACED, "--freq", f"{config.frequency_mhz:g}", "--report", REPORT]
    if config.timing_allow_fail:
        pnr.append("--timing-allow-fail")
    if config.seed is not None:
        pnr += ["--seed", str(config.seed)]
    plan.steps += [Step("place_route", pnr), Step("bitstream", ["icepack", PLACED, BITSTREAM])]
    plan.files.append(config.constraints)
    return plan


def summarise_report(raw: dict[str, Any], frequency_mhz: float) -> dict[str, Any]:
    """Utilisation per resource and Fmax per clock from nextpnr's --report JSON.

    Returns {"utilisation": {bel type: {used, available, percent}}, "clocks": [{clock, net,
    fmax_mhz, constraint_mhz, met}], "timing_met": bool, "fmax_mhz": lowest Fmax}; a resource
    the design does not use is left out.
    """
    utilisation = {}
    for name, use in sorted((raw.get("utilization") or {}).items()):
        used, available = int(use.get("used", 0)), int(use.get("available", 0))
        if used:
            utilisation[name] = {"used": used, "available": available,
                                 "percent": round(100 * used / available, 1) if available else None}
    clocks = []
    for net, timing in sorted((raw.get("fmax") or {}).items()):
        achieved = float(timing.get("achieved", 0))
        constraint = float(timing.get("constraint", frequency_mhz))
        clocks.append({"clock": _clock_name(net), "net": net, "fmax_mhz": round(achieved, 2),
                       "constraint_mhz": round(constraint, 2), "met": achieved >= constraint})
    return {
        "utilisation": utilisation,
        "clocks": clocks,
        "timing_met": all(c["met"] for c in clocks),
        "fmax_mhz": min((c["fmax_mhz"] for c in clocks), default=None),
    }


def _clock_name(net: str) -> str:
    """The design's clock behind nextpnr's buffered net ("clk$SB_IO_IN_$glb_clk" -> "clk")."""
    return net.split("$", 1)[0] or net


_NO_FIT = re.compile(r"no BELs remaining to implement cell type '([^']+)'")
_UTILISATION = re.compile(r"^Info:\s+(\S+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)
_TIMING = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz \(FAIL at ([\d.]+) MHz\)")


def failure_message(output: str, where: str) -> str | None:
    """What a failed nextpnr run means for the user, or None when it is neither case below.

    "the design does not fit up5k-sg48: ICESTORM_LC 1946 used of 1280 (152%)" or
    "timing not met: clock 'clk' reaches 79.76 MHz, constraint 300 MHz".
    """
    no_fit = _NO_FIT.search(output)
    over = [(name, int(used), int(avail)) for name, used, avail in _UTILISATION.findall(output)
            if int(used) > int(avail)]
    if no_fit or over:
        parts = [f"{name} {used} used of {avail} ({round(100 * used / avail)}%)"
                 for name, used, avail in over]
        if not parts and no_fit:
            parts = [f"not enough {no_fit.group(1)}"]
        return f"the design does not fit {where}: " + "; ".join(parts)
    # nextpnr reports each clock after placement (Info) and again after routing (ERROR): the
    # last report of a clock is the routed design's.
    timing = {net: (got, want) for net, got, want in _TIMING.findall(output)}
    if timing:
        return "timing not met: " + "; ".join(
            f"clock '{_clock_name(net)}' reaches {got} MHz, constraint {want} MHz"
            for net, (got, want) in timing.items()) + (
            " (set timing_allow_fail to get the bitstream anyway)")
    return None


# --- results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    family: str
    device: str
    package: str
    frequency_mhz: float

    @classmethod
    def of_config(cls, config: BuildConfig) -> _Target:
        return cls(config.family, config.device, config.package, config.frequency_mhz)

    @classmethod
    def of_argv(cls, argv: list[str]) -> _Target:
        """From the nextpnr command line plan_build wrote (after_step is not given the config)."""
        return cls(argv[0].removeprefix("nextpnr-"), argv[1].removeprefix("--"),
                   argv[argv.index("--package") + 1], float(argv[argv.index("--freq") + 1]))


def _report(run: JobRun, target: _Target) -> None:
    """nextpnr's --report JSON as summary.build (also after a failed place and route)."""
    build_dir = run.build_fd()
    try:
        raw = run.read_regular(build_dir, os.path.basename(REPORT))
    finally:
        os.close(build_dir)
    summary: dict[str, Any] = {"family": target.family, "device": target.device,
                               "package": target.package, "frequency_mhz": target.frequency_mhz}
    if raw is not None:
        try:
            summary.update(summarise_report(synthesis.load_json(raw), target.frequency_mhz))
        except ValueError:
            run.say("nextpnr's report is not valid JSON; no utilisation or Fmax")
    run.result.summary["build"] = summary


def after_step(run: JobRun, step: Step, output: bytes) -> None:
    """A failed place and route ends the job with what nextpnr's output says went wrong."""
    exit_code = run.result.steps[-1].exit_code
    if step.name != "place_route" or exit_code == 0:
        return
    target = _Target.of_argv(step.argv)
    _report(run, target)
    text = output.decode(errors="replace")
    detail = failure_message(text, f"{target.device}-{target.package}")
    if detail is None:
        first = first_error(text)
        detail = f"place_route failed (exit {exit_code})" + (f": {first}" if first else "")
    raise JobFailed(detail)


def collect(run: JobRun, config: BuildConfig) -> None:
    """The synthesis results, summary.build from nextpnr's report, the bitstream and reports."""
    synthesis.collect(run, _synthesis_config(config))
    _report(run, _Target.of_config(config))
    build_dir = run.build_fd()
    try:
        copy_built(run, build_dir, [
            (BITSTREAM, "bitstream.bin", "bitstream", "application/octet-stream"),
            (PLACED, "placed.asc", "placed_design", "text/plain"),
            (REPORT, "nextpnr-report.json", "pnr_report", "application/json")], "the build")
    finally:
        os.close(build_dir)
    summary = run.result.summary["build"]
    summary["bitstream_bytes"] = (run.dirs.out / "bitstream.bin").stat().st_size
    if not summary.get("timing_met", True):
        late = [c for c in summary["clocks"] if not c["met"]]
        run.result.summary.setdefault("warnings", []).append(
            "timing not met (timing_allow_fail): " + ", ".join(
                f"{c['clock']} {c['fmax_mhz']} MHz < {c['constraint_mhz']} MHz" for c in late))


KIND = JobKind(job_type="build", config=BuildConfig,
               tools=lambda config: ["yosys", f"nextpnr-{config.family}"],
               plan=plan_build, collect=collect, after_step=after_step,
               judges_exit=frozenset({"place_route"}))
