"""The `cocotb` job kind: Python testbenches (cocotb 2.x) against Icarus Verilog.

Two sandboxed steps, as cocotb's own Makefile.icarus runs them, with every argument and
environment variable built here:

    compile  iverilog -g2012 -o _a6hub/sim.vvp -s <toplevel> [-s a6hub_dump] ... <files>
    test     vvp -n -m <cocotb>/libs/libcocotbvpi_icarus.so _a6hub/sim.vvp +plusargs
             with COCOTB_TEST_MODULES, COCOTB_TOPLEVEL, TOPLEVEL_LANG=verilog,
             COCOTB_RESULTS_FILE, GPI_USERS=<libpython>;<cocotb.simulator>,initialize,
             PYGPI_PYTHON_BIN and PYTHONPATH

The testbench's Python is Debian's `/usr/bin/python3.X` and `libpython3.X.so` (the sandbox
already shows /usr) with the runner's own copy of cocotb and the distributions it requires
(pytest, for assertion rewriting, and pytest's) mounted read-only at /opt/a6hub/python, one
mount per top-level module: nothing else of the runner's environment. X is the runner's own
minor version, so the runner's cocotb build (a cp3X wheel) fits the interpreter.

Results come from cocotb's results XML (JUnit, parsed with defusedxml: the testbench can write
that file too): one entry per test on the job and `results.xml` as an artifact. When the run
stops before cocotb writes it (a limit, a crash, a test module that does not import), the
tests the log shows as finished are kept and the Python error is named with its file and line.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from packaging.requirements import Requirement

from chalicelib.errors import Unprocessable
from chalicelib.hdl.project import ProjectError, synthesis_set
from chalicelib.schemas.job_configs import CocotbConfig
from chalicelib.services.cocotb_modules import TestModule, resolve_test_modules
from runner.kinds.base import JobFailed, JobKind
from runner.kinds.simulation import DUMP_MODULE, SIM_IMAGE, collect_waveforms, index_waveforms
from runner.sandbox import INSIDE_ROOT, StepExtras
from runner.tools import (
    BUILD_DIR,
    JobInputError,
    Plan,
    Step,
    as_files,
    check_files,
    defines,
    icarus_sources,
    language_hint,
    load,
    plan_notes,
    project_paths,
)

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from runner.execute import JobRun

PYTHON_INSIDE = "/opt/a6hub/python"  # where the sandbox sees the provided packages
RESULTS = f"{BUILD_DIR}/results.xml"
WAVEFORM = f"{BUILD_DIR}/waveform.vcd"
MAX_TESTS_ON_JOB = 200  # the rest stay in results.xml (a DynamoDB item holds 400 KB)
MAX_MESSAGE_CHARS = 400
# A test's and its module's names as kept on the job: the testbench writes results.xml and the
# log, so 200 tests with 40 KB names would make the job's item larger than DynamoDB's 400 KB.
MAX_NAME_CHARS = 200
MAX_RESULTS_BYTES = 8 * 1024 * 1024
# Elements of results.xml parsed at most: cocotb writes about six a test. 8 MiB of `<a>` or
# `<testcase/>` built 760,000 elements and took the runner to 330-400 MB and 5 s.
MAX_RESULTS_ELEMENTS = 100_000
ERROR_MESSAGE_CHARS = 500  # as runner/execute.py keeps a job's error message


class TestbenchPythonMissing(RuntimeError):
    """This runner cannot give testbenches a Python (Debian's interpreter or cocotb missing)."""


@dataclass(frozen=True)
class TestbenchPython:
    """The interpreter, libpython and packages a cocotb testbench runs with."""

    executable: str  # /usr/bin/python3.11: visible in the sandbox under /usr
    libpython: str  # /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0
    site: Path  # the runner's site-packages holding cocotb
    entries: tuple[str, ...]  # top-level names under `site` to mount (packages, modules, dist-infos)
    packages: tuple[tuple[str, str], ...]  # (distribution, version), cocotb first
    simulator_module: str  # cocotb/simulator.cpython-3X-....so, relative to `site`

    def root(self, sandboxed: bool) -> str:
        return PYTHON_INSIDE if sandboxed else str(self.site)

    def extras(self, sandboxed: bool, env: dict[str, str]) -> StepExtras:
        """The test step's environment, the provided packages mounted one by one, and Debian's
        own Python packages (/usr/lib/python3/dist-packages: pip, yaml, ...) hidden."""
        if not sandboxed:
            return StepExtras(env=env)
        binds = tuple((str(self.site / name), f"{PYTHON_INSIDE}/{name}") for name in self.entries)
        hidden = tuple(sorted(glob.glob("/usr/lib/python3*/dist-packages") +
                              glob.glob("/usr/lib/python3*/site-packages")))
        return StepExtras(env=env, ro_binds=binds, hidden=hidden)

    def described(self) -> str:
        return ", ".join(f"{name} {version}" for name, version in self.packages)


@cache
def testbench_python() -> TestbenchPython:
    """Find Debian's python3.X and libpython3.X (X: the runner's own) and cocotb's closure of
    distributions in the runner's environment. Raises TestbenchPythonMissing saying what to
    install."""
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    executable = f"/usr/bin/python{minor}"
    libs = sorted(glob.glob(f"/usr/lib/*/libpython{minor}.so.1.0") +
                  glob.glob(f"/usr/lib/libpython{minor}.so.1.0"))
    if not os.path.isfile(executable) or not os.path.isdir(f"/usr/lib/python{minor}") or not libs:
        raise TestbenchPythonMissing(
            f"cocotb jobs need Debian's python{minor} and libpython{minor} on the runner "
            f"(apt-get install python{minor} libpython{minor}; devstack/install-system.sh does)")
    try:
        dists = _closure("cocotb")
    except importlib.metadata.PackageNotFoundError as e:
        raise TestbenchPythonMissing(f"cocotb is not installed in the runner's environment ({e}); "
                                     "pip install -r requirements-runner.txt") from e
    cocotb = dists[0]
    site = Path(str(cocotb.locate_file(""))).resolve()
    entries: set[str] = set()
    for dist in dists:
        for file in dist.files or []:
            top = file.parts[0]
            if top not in ("..", "__pycache__") and (site / top).exists():
                entries.add(top)
    simulator = sorted(glob.glob(str(site / "cocotb" / "simulator.*.so")))
    if not simulator:
        raise TestbenchPythonMissing(f"cocotb under {site} has no compiled simulator module")
    return TestbenchPython(
        executable=executable, libpython=libs[0], site=site, entries=tuple(sorted(entries)),
        packages=tuple((d.metadata["Name"], d.version) for d in dists),
        simulator_module=os.path.relpath(simulator[0], site))


def _closure(name: str) -> list[importlib.metadata.Distribution]:
    """`name` and every distribution it requires (markers evaluated, no extras), in BFS order."""
    order: list[importlib.metadata.Distribution] = []
    seen: set[str] = set()
    queue = [name]
    while queue:
        wanted = queue.pop(0)
        key = re.sub(r"[-_.]+", "-", wanted).lower()
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(wanted)
        order.append(dist)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                queue.append(req.name)
    return order


# --- planning ------------------------------------------------------------------------------------

def plan_cocotb(config: CocotbConfig, src: Path, gen_dir: str) -> Plan:
    """The compile and test steps (see the module doc); JobInputError for what the project lacks.

    `gen_dir` is the generated files' folder as the tools see it: /job/gen in the sandbox (the
    work dir is its sibling /job/work, the packages are mounted at /opt/a6hub/python), the
    stage's own folder when unsandboxed (then the packages are read where they are installed)."""
    sandboxed = gen_dir == f"{INSIDE_ROOT}/gen"
    work = str(PurePosixPath(gen_dir).parent / "work")
    try:
        python = testbench_python()
    except TestbenchPythonMissing as e:
        raise JobInputError(str(e)) from e
    project = load(src, config)
    check_files(project, config.files)
    try:
        modules = resolve_test_modules(config.test_modules, project_paths(src))
        cs = synthesis_set(project, top=config.toplevel, files=config.files)
    except Unprocessable as e:
        raise JobInputError(e.detail) from e
    except ProjectError as e:
        raise JobInputError(str(e)) from e
    generated: dict[str, str] = {}
    sources = icarus_sources(config, cs, generated, gen_dir)
    roots = ["-s", config.toplevel]
    if config.waveform and not cs.dumps:
        generated["a6hub_dump.v"] = (
            f'module {DUMP_MODULE};\n  initial begin\n    $dumpfile("{WAVEFORM}");\n'
            f"    $dumpvars(0, {config.toplevel});\n  end\nendmodule\n")
        sources.append(f"{gen_dir}/a6hub_dump.v")
        roots += ["-s", DUMP_MODULE]
    includes = [arg for d in cs.include_dirs for arg in ("-I", d)]
    compile_argv = ["iverilog", "-g2012", "-o", SIM_IMAGE, *roots, *includes,
                    *defines(config), *as_files(sources)]
    root = python.root(sandboxed)
    test_argv = ["stdbuf", "-oL", "-eL", "vvp", "-n", "-m", f"{root}/cocotb/libs/libcocotbvpi_icarus.so",
                 SIM_IMAGE, *(f"+{arg}" for arg in config.plusargs)]
    env = cocotb_environment(config, modules, python, sandboxed, work)
    notes = [*plan_notes(config, cs),
             f"testbench Python: {python.executable} with {python.described()} (nothing else "
             "is importable: no network, no pip)",
             "test environment: " + " ".join(f"{k}={v}" for k, v in env.items())]
    plan = Plan(steps=[Step("compile", compile_argv),
                       Step("test", test_argv, python.extras(sandboxed, env))],
                generated=generated, notes=notes, files=[*cs.files, *(m.path for m in modules)])
    plan.compile_set, plan.failure_hint = cs, language_hint(config, cs)
    return plan


def cocotb_environment(config: CocotbConfig, modules: list[TestModule], python: TestbenchPython,
                       sandboxed: bool, work: str) -> dict[str, str]:
    """What cocotb reads from the environment (cocotb_tools/makefiles Makefile.inc, COCOTB_ENV);
    `work` is the tools' cwd as they see it."""
    root = python.root(sandboxed)
    import_roots = dict.fromkeys(f"{work}/{m.root}" if m.root else work for m in modules)
    return {
        "COCOTB_TEST_MODULES": ",".join(config.test_modules),
        "COCOTB_TOPLEVEL": config.toplevel,
        "TOPLEVEL_LANG": "verilog",
        "COCOTB_RESULTS_FILE": f"{work}/{RESULTS}",
        "GPI_USERS": f"{python.libpython};{root}/{python.simulator_module},initialize",
        "PYGPI_PYTHON_BIN": python.executable,
        "PYTHONPATH": ":".join([*import_roots, root]),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "COCOTB_ANSI_OUTPUT": "0",
    }


# --- results -------------------------------------------------------------------------------------

def collect(run: JobRun, config: CocotbConfig) -> None:
    """After both steps ran: tests from results.xml, the JUnit artifact, the waveform; the job
    fails when a test failed, none ran, or cocotb wrote no results (naming the Python error)."""
    _record_versions(run)
    collect_waveforms(run, config.waveform)
    index_waveforms(run)
    prefixes = _prefixes(run)
    build = run.build_fd()
    try:
        # Regular files only, links not followed; read no more than the parser would accept.
        found = run._open_regular(build, os.path.basename(RESULTS))
        raw = None
        if found is not None:
            with found:
                raw = found.read(MAX_RESULTS_BYTES + 1)
    finally:
        os.close(build)
    if raw is None:
        output = run.captured.get("test", b"").decode(errors="replace")
        _record(run, results_from_log(output, None))
        problem = python_error(output, prefixes) or _last_line(output)
        raise _failed(run, "cocotb wrote no results" + (f": {problem}" if problem else ""))
    try:
        tests = parse_results(raw, prefixes)
    except ValueError as e:
        raise _failed(run, f"cocotb's results file is not valid JUnit XML: {e}") from e
    run.add_artifact("results.xml", raw, "junit", "application/xml")
    _record(run, tests)
    failed = [t for t in tests if t["outcome"] == "failed"]
    if not tests:
        raise _failed(run, f"no cocotb tests found in {', '.join(config.test_modules)} "
                           "(functions decorated with @cocotb.test())")
    if failed:
        first = failed[0]
        reason = (first["message"] or "failed").splitlines()[0]
        raise _failed(run, f"{len(failed)} of {len(tests)} tests failed; first: "
                           f"{first['module']}.{first['name']}: {reason}")


def after_failure(run: JobRun, config: CocotbConfig) -> None:
    """A step stopped (limit, crash; not a cancel): keep the tests the log shows as finished,
    the one that was running as failed with the reason; the job's message names that test."""
    _record_versions(run)
    if "test" not in run.captured or "tests" in run.result.summary:
        return  # the compile step failed, or collect() has judged the results already
    message = run.result.error_message or "the test step stopped"
    output = run.captured["test"].decode(errors="replace")
    tests = results_from_log(output, message)
    running = [t for t in tests if t.get("unfinished")]
    _record(run, tests)
    if running:
        message += f" while running {running[0]['module']}.{running[0]['name']}"
        run.result.error_message = message[:ERROR_MESSAGE_CHARS]
    if config.waveform:  # what was dumped before the stop still helps
        collect_waveforms(run, True)
        index_waveforms(run)


def _record(run: JobRun, tests: list[dict[str, Any]]) -> None:
    for t in tests:
        t.pop("unfinished", None)
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped")}
    run.result.summary["tests"] = tests[:MAX_TESTS_ON_JOB]
    run.result.summary["cocotb"] = {"tests": len(tests), **counts,
                                     "listed": min(len(tests), MAX_TESTS_ON_JOB)}


def _failed(run: JobRun, message: str) -> Exception:
    return JobFailed(message)


def _record_versions(run: JobRun) -> None:
    try:
        run.result.tool_versions["cocotb"] = testbench_python().described()
    except TestbenchPythonMissing as e:
        run.result.tool_versions["cocotb"] = f"unavailable: {e}"


def _prefixes(run: JobRun) -> tuple[str, ...]:
    return (f"{run.sandbox.inside('work')}/", f"{run.sandbox.inside('src')}/")


def _strip(text: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        text = text.replace(prefix, "")
    return text


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 3] + "..."


def parse_results(raw: bytes, prefixes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """cocotb's results XML as [{name, module, outcome, duration_s, sim_time_ns, message}].

    cocotb 2 writes `<testsuites><testsuite name=<module>><testcase classname=<module>
    name=<test> time=<s>>` with a `<failure message type>` or `<error ...>` or `<skipped
    message>` child and properties `sim_time_duration` in `sim_time_unit`. ValueError when the
    bytes are not such XML (too large or too many elements, a DTD or entity, not well-formed).
    """
    if len(raw) > MAX_RESULTS_BYTES:
        raise ValueError(f"larger than {MAX_RESULTS_BYTES // (1024 * 1024)} MiB")
    if raw.count(b"<") > MAX_RESULTS_ELEMENTS:
        raise ValueError(f"more than {MAX_RESULTS_ELEMENTS} elements")
    try:
        root: Element = ElementTree.fromstring(raw, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException) as e:
        raise ValueError(str(e)) from e
    tests = []
    for case in root.iter("testcase"):
        outcome, message = "passed", None
        for child in case:
            if child.tag in ("failure", "error"):
                kind = child.get("type")
                text = child.get("message") or _last_line(child.text or "") or ""
                outcome, message = "failed", f"{kind}: {text}" if kind else text
            elif child.tag == "skipped" and outcome == "passed":
                outcome, message = "skipped", child.get("message")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        tests.append({
            "name": _name(case.get("name")) or "?",
            "module": _name(case.get("classname")),
            "outcome": outcome,
            "duration_s": _float(case.get("time")),
            "sim_time_ns": _sim_ns(props.get("sim_time_duration"), props.get("sim_time_unit")),
            "message": _short(_strip(message, prefixes)) if message else None,
        })
    return tests


_UNITS_NS = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "sec": 1e9, "s": 1e9}


def _name(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= MAX_NAME_CHARS else text[:MAX_NAME_CHARS - 3] + "..."


def _sim_ns(value: str | None, unit: str | None) -> float | None:
    number = _float(value)
    if number is None or unit not in _UNITS_NS:
        return None
    return round(number * _UNITS_NS[unit], 6)


def _float(value: str | None) -> float | None:
    try:
        return round(float(value), 6) if value is not None else None
    except ValueError:
        return None


# cocotb.regression's lines: "running test_adder.adds (1/3)", "test_adder.adds passed",
# "test_adder.bad failed", "skipping test_adder.later (3/3)".
_RUNNING = re.compile(r"cocotb\.regression\s+running (?P<test>[\w.]+) \(\d+/\d+\)")
_ENDED = re.compile(r"cocotb\.regression\s+(?P<test>[\w.]+) (?P<how>passed|failed)\b")
_SKIPPING = re.compile(r"cocotb\.regression\s+skipping (?P<test>[\w.]+) \(\d+/\d+\)")


def results_from_log(output: str, stopped: str | None) -> list[dict[str, Any]]:
    """Per-test outcomes from cocotb's log when there is no results file: finished tests as
    the log says (no duration), a test still running when the step stopped as failed with
    `stopped` (its entry carries `unfinished`)."""
    tests: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        if m := _RUNNING.search(line):
            tests[m["test"]] = _entry(m["test"], "failed", stopped or "did not finish")
            tests[m["test"]]["unfinished"] = True
        elif m := _ENDED.search(line):
            tests[m["test"]] = _entry(m["test"], m["how"], None if m["how"] == "passed"
                                      else "failed (see the log; cocotb wrote no results file)")
        elif m := _SKIPPING.search(line):
            tests[m["test"]] = _entry(m["test"], "skipped", None)
    return list(tests.values())


def _entry(full: str, outcome: str, message: str | None) -> dict[str, Any]:
    module, _, name = full.rpartition(".")
    return {"name": _name(name), "module": _name(module), "outcome": outcome, "duration_s": None,
            "sim_time_ns": None, "message": message}


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
_EXCEPTION = re.compile(
    r"^\s*(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s*(?P<msg>.*))?$")


def python_error(output: str, prefixes: tuple[str, ...]) -> str | None:
    """The last Python exception in a log as "file:line: Type: message", located at the last
    frame in the project (a test module's syntax error: the module's file and line)."""
    lines = output.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        m = _EXCEPTION.match(lines[i])
        if not m:
            continue
        where = None
        for j in range(i - 1, max(-1, i - 400), -1):
            frame = _FRAME.match(lines[j])
            if frame and any(frame["file"].startswith(p) for p in prefixes):
                where = f"{_strip(frame['file'], prefixes)}:{frame['line']}"
                break
            if lines[j].lstrip().startswith("Traceback (most recent call last)"):
                break
        text = f"{m['type']}: {m['msg']}" if m["msg"] else m["type"]
        return _short(f"{where}: {text}" if where else text)
    return None


def _last_line(output: str) -> str | None:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return _short(lines[-1]) if lines else None


KIND = JobKind(job_type="cocotb", config=CocotbConfig, tools=lambda _config: ["iverilog", "vvp"],
               plan=plan_cocotb, collect=collect, after_failure=after_failure)
