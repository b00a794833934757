"""The `formal` job: SymbiYosys-style checks of a design's assert/assume/cover statements.

The runner writes the whole flow itself from a validated `FormalConfig` (no `.sby` file, no user
script): one Yosys run builds the model, a solver run checks it, and a failing check's
counterexample is kept as a VCD that the runner indexes as FST for the waveform API.

The flow is SymbiYosys' own (YosysHQ/sby `sbysrc/sby_core.py` `make_model`, `sby_engine_smtbmc.py`,
`sby_engine_abc.py`, as of its yosys-0.26 tag) cut to what Debian 12's Yosys 0.23 has
(no `formalff`, `rename -witness` or `write_jny`); SymbiYosys itself is not packaged for Debian
12 and runs external commands from its `.sby` file, so the runner does not use it:

- model (yosys): `read_verilog -formal` (defines `FORMAL`), `prep -top`, `async2sync`,
  `chformal -assume -early`, covers removed for bmc/prove (liveness always), `setundef -anyseq`,
  `dffunmap`, `write_smt2 -wires`; for `abc_pdr` also a flattened AND-inverter graph
  (`write_aiger -I -B -zinit -map`).
- `smtbmc` engine (`yosys-smtbmc -s z3`): bmc = assertions checked in steps 0..depth-1; prove =
  that base case plus k-induction (`-i`, k = depth): passed when both hold, failed when the
  base case fails (a real counterexample), unknown when only the induction step fails (the
  property may hold but is not k-inductive: raise depth or add assertions); cover = `-c`, each
  cover statement reached within depth steps, with a trace per reached cover.
- `abc_pdr` engine (`yosys-abc`: `pdr` on the AIGER model): proved, or a counterexample frame
  that `yosys-smtbmc --aig` replays into a VCD naming the failing assertion.

Solver: z3 (Debian `z3` 4.8.12). Debian's boolector (1.5.118, 2013) rejects the SMT-LIB2 that
yosys-smtbmc sends ("unsupported command 'set-option'"); yices2 is not in Debian 12; PyPI's
solver wheels install into the runner's virtualenv, which the sandbox does not mount.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.hdl.project import synthesis_set
from chalicelib.schemas.job_configs import FormalConfig
from runner.kinds.base import JobFailed, JobKind
from runner.kinds.simulation import index_waveforms
from runner.kinds.synthesis import yosys_reads
from runner.tools import BUILD_DIR, Plan, Step, compile_set, language_hint, plan_notes

if TYPE_CHECKING:
    from runner.execute import JobRun

MODEL_SMT2 = f"{BUILD_DIR}/model.smt2"
MODEL_AIG = f"{BUILD_DIR}/model.aig"
MODEL_AIM = f"{BUILD_DIR}/model.aim"
WITNESS = f"{BUILD_DIR}/trace.aiw"
TRACE_VCD = "trace.vcd"  # in BUILD_DIR: the counterexample (bmc, prove)
COVER_VCD = "cover%.vcd"  # in BUILD_DIR: smtbmc replaces % with the cover's index
MAX_TRACES = 4
SOLVER = "z3"
STEP_TIME = 10  # yosys-smtbmc's VCD: one solver step every 10 time units (timescale 1ns)

# Steps whose exit status is a verdict read from their output (yosys-smtbmc exits 1 on FAILED).
VERDICT_STEPS = frozenset({"basecase", "induction", "cover", "pdr"})


def plan_formal(config: FormalConfig, src: Path, gen_dir: str) -> Plan:
    """The model build and solver steps for `config` over the project in `src`.

    Raises JobInputError when the files do not fit (no HDL file, unknown top or file).
    """
    project, cs = compile_set(
        src, config, lambda p: synthesis_set(p, top=config.top, files=config.files))
    top = cs.roots[0]
    generated: dict[str, str] = {}
    lines = yosys_reads(config, project, cs, gen_dir, generated, formal=True)
    lines += [
        f"prep -top {top}",
        "hierarchy -smtcheck",
        "async2sync",
        "chformal -assume -early",
        "chformal -live -fair -remove" if config.mode == "cover" else "chformal -live -fair -cover -remove",
        "opt_clean",
        "setundef -anyseq",
        "opt -keepdc -fast",
        "check",
    ]
    if config.engine == "abc_pdr":
        lines.append("design -save prepared")
    lines += ["dffunmap", "stat", f"write_smt2 -wires {MODEL_SMT2}"]
    if config.engine == "abc_pdr":
        lines += ["design -load prepared", "flatten", "setattr -unset keep", "delete -output",
                  "opt -full", "techmap", "opt -fast", "dffunmap", "abc -g AND -fast", "opt_clean",
                  "stat", f"write_aiger -I -B -zinit -no-startoffset -map {MODEL_AIM} {MODEL_AIG}"]
    generated["formal.ys"] = "\n".join(lines) + "\n"
    steps = [Step("model", ["yosys", "-Q", "-s", f"{gen_dir}/formal.ys"])]
    smtbmc = ["yosys-smtbmc", "-s", SOLVER, "--noprogress"]
    depth = str(config.depth)
    if config.engine == "abc_pdr":
        script = f"read_aiger {MODEL_AIG}; fold; strash; pdr; write_cex -a {WITNESS}"
        steps.append(Step("pdr", ["yosys-abc", "-c", script]))
    elif config.mode == "cover":
        steps.append(Step("cover", [*smtbmc, "-c", "-t", depth, "--dump-vcd",
                                    f"{BUILD_DIR}/{COVER_VCD}", MODEL_SMT2]))
    else:
        # --presat (as SymbiYosys does): assumptions that contradict each other are reported
        # ("PREUNSAT") instead of making every assertion pass vacuously.
        steps.append(Step("basecase", [*smtbmc, "--presat", "-t", depth, "--dump-vcd",
                                       f"{BUILD_DIR}/{TRACE_VCD}", MODEL_SMT2]))
        if config.mode == "prove":
            steps.append(Step("induction", [*smtbmc, "-i", "-t", depth, MODEL_SMT2]))
    plan = Plan(steps=steps, generated=generated, notes=plan_notes(config, cs),
                files=list(cs.files))
    plan.compile_set, plan.failure_hint = cs, language_hint(config, cs)
    return plan


def replay_step(frame: int) -> Step:
    """yosys-smtbmc replaying ABC's witness (`frame` is the failing frame) into the trace VCD."""
    return Step("replay", ["yosys-smtbmc", "-s", SOLVER, "--noprogress", "--aig",
                           f"{MODEL_AIM}:{WITNESS}", "--aig-noheader", "-t", str(frame + 1),
                           "--dump-vcd", f"{BUILD_DIR}/{TRACE_VCD}", MODEL_SMT2])


# --- reading the solvers' output -----------------------------------------------------------------

_STEP = re.compile(r"Checking (?:assertions|assumptions|cover reachability) in step (\d+)")
_ASSERT_FAILED = re.compile(r"Assert failed in (\S+): (\S+) \(")
_COVER = re.compile(r"(Reached|Unreached) cover statement at (\S+) \((?:[^)]*)\)(?: in step (\d+))?")
_STATUS = re.compile(r"Status: (\w+)")
_LOCATION = re.compile(r"(?P<file>.+?):(?P<line>\d+)(?:\.(?P<column>\d+))?(?:-[\d.]+)?$")
_PDR_CEX = re.compile(r"Output (\d+) of miter \S+ was asserted in frame (\d+)")


def location(text: str) -> dict[str, Any]:
    """Yosys' `file.sv:9.30-9.53` as {location, file, line, column}; file relative to the project."""
    m = _LOCATION.match(text)
    if not m:
        return {"location": text, "file": None, "line": None, "column": None}
    return {"location": text, "file": m["file"].removeprefix("./"), "line": int(m["line"]),
            "column": int(m["column"]) if m["column"] else None}


def read_smtbmc(output: str) -> dict[str, Any]:
    """What one yosys-smtbmc run said: {status, last_step, failed_asserts, covers,
    induction_failed, unsat_assumptions}. status is None when it printed none (a crash)."""
    steps = [int(s) for s in _STEP.findall(output)]
    statuses = _STATUS.findall(output)
    covers = [{"kind": "cover", "status": "reached" if m[1] == "Reached" else "unreached",
               "step": int(m[3]) if m[3] else None, **location(m[2])}
              for m in _COVER.finditer(output)]
    asserts = [{"kind": "assert", "status": "failed", "module": m[1], **location(m[2])}
               for m in _ASSERT_FAILED.finditer(output)]
    return {
        "status": statuses[-1] if statuses else None,
        "last_step": steps[-1] if steps else None,
        "bmc_failed": "BMC failed!" in output,
        "induction_failed": "Temporal induction failed!" in output,
        "unsat_assumptions": "Assumptions are unsatisfiable!" in output,
        "failed_asserts": asserts,
        "covers": covers,
    }


def read_pdr(output: str) -> dict[str, Any]:
    """ABC pdr's verdict: {"proved": bool, "frame": int | None}."""
    m = _PDR_CEX.search(output)
    return {"proved": "Property proved" in output, "frame": int(m[2]) if m else None}


def verdict(config: FormalConfig, outputs: dict[str, str]) -> dict[str, Any]:
    """The job's formal result from the steps' output (`outputs`: step name -> text).

    {result: passed|failed|unknown|error, step, properties: [...], message, trace_steps}:
    `step` is the failing step (bmc/prove: the first step whose assertions fail), `message` says
    what a person should know in one line.
    """
    result: dict[str, Any] = {"mode": config.mode, "engine": config.engine, "depth": config.depth,
                              "solver": SOLVER if config.engine == "smtbmc" else "abc pdr",
                              "step": None, "properties": []}
    if config.engine == "abc_pdr":
        return _verdict_pdr(result, outputs)
    if config.mode == "cover":
        return _verdict_cover(config, result, outputs)
    return _verdict_assertions(config, result, outputs)


def _verdict_pdr(result: dict[str, Any], outputs: dict[str, str]) -> dict[str, Any]:
    pdr = read_pdr(outputs.get("pdr", ""))
    replay = read_smtbmc(outputs.get("replay", "")) if "replay" in outputs else None
    if pdr["proved"]:
        return {**result, "result": "passed", "message": "proved by PDR (unbounded)"}
    if pdr["frame"] is not None:
        result["properties"] = replay["failed_asserts"] if replay else []
        return {**result, "result": "failed", "step": pdr["frame"],
                "message": _failed_message(pdr["frame"], result["properties"])}
    return {**result, "result": "unknown", "message": "PDR ended without a proof or a counterexample"}


def _verdict_cover(config: FormalConfig, result: dict[str, Any], outputs: dict[str, str]) -> dict[str, Any]:
    cover = read_smtbmc(outputs.get("cover", ""))
    result["properties"] = cover["covers"] + cover["failed_asserts"]
    if cover["status"] is None:
        return {**result, "result": "error", "message": "yosys-smtbmc stopped without a status"}
    if cover["unsat_assumptions"]:
        return {**result, "result": "error", "step": cover["last_step"],
                "message": f"the assumptions are unsatisfiable at step {cover['last_step']}"}
    if cover["failed_asserts"]:
        return {**result, "result": "failed", "step": cover["last_step"],
                "message": _failed_message(cover["last_step"], cover["failed_asserts"])}
    unreached = [c for c in cover["covers"] if c["status"] == "unreached"]
    if cover["status"] == "PASSED" and not unreached:
        reached = [c for c in cover["covers"] if c["status"] == "reached"]
        return {**result, "result": "passed",
                "message": f"{len(reached)} cover statement(s) reached within {config.depth} steps"}
    names = _where(unreached[:5]) or "a cover statement"
    return {**result, "result": "failed",
            "message": f"not reached within {config.depth} steps: {names}"}


def _verdict_assertions(config: FormalConfig, result: dict[str, Any],
                        outputs: dict[str, str]) -> dict[str, Any]:
    base = read_smtbmc(outputs.get("basecase", ""))
    result["properties"] = base["failed_asserts"]
    if base["status"] is None:
        return {**result, "result": "error", "message": "yosys-smtbmc stopped without a status"}
    if base["unsat_assumptions"]:
        return {**result, "result": "error", "step": base["last_step"],
                "message": (f"the assumptions contradict each other by step {base['last_step']}: "
                            "every assertion would pass vacuously")}
    if base["status"] != "PASSED":
        step = base["last_step"]
        return {**result, "result": "failed", "step": step,
                "message": _failed_message(step, base["failed_asserts"])}
    if config.mode == "bmc":
        return {**result, "result": "passed", "bounded": True,
                "message": f"no assertion fails in steps 0..{config.depth - 1} (bounded)"}
    induction = read_smtbmc(outputs.get("induction", ""))
    if induction["status"] == "PASSED":
        return {**result, "result": "passed", "message": f"proved by {config.depth}-induction"}
    if induction["status"] is None:
        return {**result, "result": "error", "message": "the induction run stopped without a status"}
    return {**result, "result": "unknown", "properties": induction["failed_asserts"],
            "message": (f"the base case holds for {config.depth} steps but the assertions are not "
                        f"{config.depth}-inductive: raise depth, or add assertions on the state "
                        "(the induction step fails at " + _where(induction["failed_asserts"][:3]) + ")")}


def _failed_message(step: int | None, asserts: list[dict[str, Any]]) -> str:
    where = _where(asserts[:3]) or "an assertion"
    return f"assertion failed at step {step}: {where}"


# --- after the steps: verdict, traces --------------------------------------------------------------

def collect(run: JobRun, config: FormalConfig) -> None:
    """Record the verdict on the job (`summary.formal`), keep the traces, fail the job unless passed.

    A failing check's counterexample (cover: each reached cover's trace) becomes a `waveform`
    artifact indexed as FST, so the waveform API reads it; times are 10 units per solver step.
    """
    outputs = {name: data.decode(errors="replace") for name, data in run.captured.items()}
    if config.engine == "abc_pdr":
        frame = read_pdr(outputs.get("pdr", ""))["frame"]
        if frame is not None:
            outputs["replay"] = _run_captured(run, replay_step(frame))
    found = verdict(config, outputs)
    run.result.summary["formal"] = found
    names = [TRACE_VCD] if config.mode != "cover" else [COVER_VCD.replace("%", str(i))
                                                        for i in range(MAX_TRACES)]
    build = run.build_fd()
    try:
        kept = [name for name in names if run.copy_out(build, name, name, "waveform", "text/x-vcd",
                                                       source=f"{BUILD_DIR}/{name}")]
    finally:
        os.close(build)
    found["traces"] = kept
    if kept:
        found["trace_time_per_step"] = STEP_TIME
        index_waveforms(run)
    run.say(f"formal {config.mode} ({config.engine}, depth {config.depth}): {found['result']}: "
            f"{found['message']}")
    if found["result"] != "passed":
        raise JobFailed(f"formal {config.mode}: {found['result']}: {found['message']}")


def _run_captured(run: JobRun, step: Step) -> str:
    """Run a step after the plan's and return its output (the replay names the failing assertion)."""
    run.budget.tee = bytearray()
    try:
        result = run.run_extra_step(step.name, step.argv)
        output = bytes(run.budget.tee).decode(errors="replace")
    finally:
        run.budget.tee = None
    if result.limit:
        raise JobFailed(f"{step.name}: {result.limit}")
    return output


def _where(properties: list[dict[str, Any]]) -> str:
    """'file:line' of each property (yosys' location text when it has no line)."""
    return ", ".join(f"{p['file']}:{p['line']}" if p.get("line") else p["location"] for p in properties)


KIND = JobKind(job_type="formal", config=FormalConfig, tools=lambda _config: ["yosys", "z3"],
               plan=plan_formal, collect=collect, judges_exit=VERDICT_STEPS)
