"""`python -m bench.hdl`: what the HDL parse adds to a job, and how it scales with project size.

Measures the runner's planning step (runner/kinds/simulation.plan_simulation: parse every file with slang,
build the project model, write the command lines) on picorv32 (`testbench_ez.v`, with the core's
other testbenches in the project) and on generated projects of 30, 100 and 300 files (modules in
a hierarchy, packages, headers). The reference in the same run is what planning cost before the
parse: listing the files and a regular-expression scan for `module NAME` in each.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import Row, format_table, ms
from chalicelib.schemas.job_configs import SimulationConfig
from runner.kinds import simulation

TARGET_PICORV32_S = 0.020
_MODULE = re.compile(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.MULTILINE)


def regex_plan(src: Path) -> int:
    """The old planning: every .v/.sv file read and scanned for `module NAME` (the baseline)."""
    found = 0
    for path in sorted(src.rglob("*")):
        if path.suffix in (".v", ".sv"):
            found += len(_MODULE.findall(path.read_text(errors="replace")))
    return found


def best_s(fn: Callable[[], object], runs: int) -> float:
    """Best of `runs` timings: on a machine other processes share, the least disturbed run is
    the cost of the work itself."""
    fn()  # warm: imports, first allocation
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return min(samples)


def picorv32_project(root: Path) -> Path:
    import pythondata_cpu_picorv32

    src = Path(pythondata_cpu_picorv32.data_location)
    for name in ("picorv32.v", "testbench.v", "testbench_ez.v", "testbench_wb.v"):
        (root / name).write_bytes((src / name).read_bytes())
    return root


def generated_project(root: Path, n_files: int) -> Path:
    """`n_files` files: a package, a header, a tree of modules (each ~60 lines), a testbench."""
    (root / "rtl").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "include" / "defs.vh").write_text("`define W 16\n")
    (root / "rtl" / "types_pkg.sv").write_text(
        "package types_pkg;\n  typedef logic [15:0] word_t;\nendpackage\n")
    n_modules = n_files - 3
    for i in range(n_modules):
        children = [c for c in (2 * i + 1, 2 * i + 2) if c < n_modules]
        body = "".join(f"  m{c} u{c} (.clk(clk), .d(q), .q());\n" for c in children)
        regs = "".join(f"  reg [`W-1:0] r{k};\n  always @(posedge clk) r{k} <= d + {k};\n"
                       for k in range(25))
        (root / "rtl" / f"m{i}.sv").write_text(
            f'`include "defs.vh"\nmodule m{i} import types_pkg::*; (input clk, input word_t d,\n'
            f"  output word_t q);\n{regs}{body}  assign q = r0 ^ r24;\nendmodule\n")
    (root / "tb.sv").write_text(
        "`timescale 1ns/1ps\nmodule tb;\n  reg clk = 0;\n  m0 dut (.clk(clk), .d(16'd1), .q());\n"
        "  initial #10 $finish;\nendmodule\n")
    return root


def _planner(config: SimulationConfig, root: Path) -> Callable[[], object]:
    return lambda: simulation.plan_simulation(config, root, "/job/gen")


def _scanner(root: Path) -> Callable[[], object]:
    return lambda: regex_plan(root)


def bench(runs: int, sizes: tuple[int, ...]) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-hdl-") as tmp:
        (Path(tmp) / "pico").mkdir()
        pico = picorv32_project(Path(tmp) / "pico")
        config = SimulationConfig(testbench="testbench_ez.v")
        planned = best_s(lambda: simulation.plan_simulation(config, pico, "/job/gen"), runs)
        baseline = best_s(lambda: regex_plan(pico), runs)
        rows.append(Row("picorv32 testbench_ez job: plan (parse + model), ms", ms(planned),
                        f"{ms(baseline)} (regex scan)", f"< {ms(TARGET_PICORV32_S)}",
                        planned < TARGET_PICORV32_S))
        for n in sizes:
            root = generated_project(Path(tmp) / f"gen{n}", n)
            cfg = SimulationConfig(testbench="tb.sv", include_dirs=["include"])
            plan = simulation.plan_simulation(cfg, root, "/job/gen")
            assert len(plan.files) == n - 1, len(plan.files)  # every module file, the package, tb
            planned = best_s(_planner(cfg, root), runs)
            baseline = best_s(_scanner(root), runs)
            rows.append(Row(f"{n}-file project: plan, ms (per file)",
                            f"{ms(planned)} ({ms(planned / n)})", f"{ms(baseline)} (regex scan)"))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the test suite runs this)")
    args = parser.parse_args(argv)
    runs, sizes = (2, (10,)) if args.quick else (15, (30, 100, 300))
    load = os.getloadavg()[0]
    print(format_table(bench(runs, sizes),
                       title=f"HDL parse: runner planning time (best of {runs}; load average {load:.1f} "
                             f"on {os.cpu_count()} CPUs)"))


if __name__ == "__main__":
    main()
