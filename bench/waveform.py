"""Waveforms: a large trace (≥ 500 MB of VCD, generated here by iverilog from a long-running
design) read the way the API reads it (chalicelib/services/waveforms.py on the FST that the
runner's vcd2fst step writes) next to a plain VCD parser (vcdvcd) reading the VCD, in the same run.

Measured, each in a fresh Python process (time and peak RSS, so one step's memory does not
hide another's): the first `signals` page, a 10-signal window at the end of the trace (the
worst case for a reader that streams from the start) and the SVG of those 10 signals over the
whole trace (the reduction path). The API steps run the service's own functions on the local
FST file (libfst via pylibfst for windows; pywellen's whole-signal streaming is shown beside
it): the S3 download into the /tmp cache and the HTTP layer are not in these figures.

`python -m bench.waveform [--quick]`; `run(quick)` returns the table rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Row, format_table
from bench.stack import ROOT

REGISTERS = 24  # 32-bit LFSRs, each changing every cycle
FULL_CYCLES = 640_000  # ~555 MB of VCD
QUICK_CYCLES = 2_000
LAMBDA_MB = 512  # the API Lambda's memory size (.chalice/config.json; prod has 1024)
WINDOW_CYCLES = 1_000
PAGE = 50

DESIGN = """\
`timescale 1ns/1ps
module big;
  reg clk = 0;
  always #1 clk = ~clk;
  genvar i;
  generate for (i = 0; i < {registers}; i = i + 1) begin : g
    reg [31:0] q = 32'h1234567 * (i + 1);
    always @(posedge clk) q <= {{q[30:0], q[31] ^ q[21] ^ q[1] ^ q[0]}};
  end endgenerate
  initial begin
    $dumpfile("big.vcd");
    $dumpvars(0, big);
    #({cycles} * 2) $finish;
  end
endmodule
"""


def make_trace(workdir: Path, cycles: int) -> tuple[Path, Path, dict[str, float]]:
    """The VCD (iverilog + vvp) and its FST (vcd2fst, as the runner does), with their timings."""
    (workdir / "big.v").write_text(DESIGN.format(registers=REGISTERS, cycles=cycles))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    subprocess.run(["iverilog", "-o", "big.vvp", "big.v"], cwd=workdir, check=True)
    subprocess.run(["vvp", "-n", "big.vvp"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    timings["simulate"] = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(["vcd2fst", "big.vcd", "big.fst"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    timings["vcd2fst"] = time.perf_counter() - started
    return workdir / "big.vcd", workdir / "big.fst", timings


def signal_paths() -> list[str]:
    return ["big.clk"] + [f"big.g[{i}].q" for i in range(9)]


# --- the steps, each run in its own process (`python -m bench.waveform --step ...`) ----------


def _trace(fst: Path) -> Any:
    from chalicelib.services import waveforms

    start, end = waveforms._fst_time_range(fst)
    return waveforms.Trace(job=None, path=fst, start_time=start, end_time=end)  # type: ignore[arg-type]


def step(name: str, path: Path, end: int) -> dict[str, Any]:
    """One measured step; returns what it found (counts) for the table's sanity columns."""
    from chalicelib.services import waveform_svg, waveforms

    paths = signal_paths()
    lo = max(0, end - 2 * WINDOW_CYCLES * 1000)  # the last WINDOW_CYCLES cycles, in ps
    if name == "api-signals":
        trace = _trace(path)
        waveform = trace.open()
        rows = sorted(v.full_name for v in waveform.all_vars())[:PAGE]
        return {"count": len(rows)}
    widths = {p: 1 if p == "big.clk" else 32 for p in paths}
    if name in ("api-window", "pywellen-window"):
        trace = _trace(path)
        series = {p: waveforms.Series(lo, end, waveforms.MAX_MAX_CHANGES) for p in paths}
        if name == "api-window":  # what /waveform/values does
            waveforms.stream_window(trace, paths, lo, end, lambda p, t, v: series[p].take(
                t, waveforms.render(v, widths[p])), budget=None)
        else:  # the alternative: pywellen streams each signal from the trace's start
            for p in paths:
                waveforms.stream(trace, p, series[p].take)
        return {"count": sum(len(s.result()) for s in series.values())}
    if name == "api-svg":
        trace = _trace(path)
        width = 1000
        series = {p: waveforms.Series(trace.start_time, trace.end_time,
                                      2 * waveform_svg.plot_width(width) + 1) for p in paths}
        waveforms.stream_window(trace, paths, trace.start_time, trace.end_time,
                                lambda p, t, v: series[p].take(t, waveforms.render(v, widths[p])),
                                budget=None)  # the unbounded cost; the API refuses past its cap
        signals = [{"path": p, "width": widths[p], "changes": s.result(),
                    "truncated": s.truncated} for p, s in series.items()]
        svg = waveform_svg.render({"start": trace.start_time, "end": trace.end_time,
                                   "timescale": "1ps", "signals": signals}, width)
        return {"count": len(svg)}
    from vcdvcd import VCDVCD

    if name == "vcd-signals":
        vcd = VCDVCD(str(path), only_sigs=True)
        return {"count": len(sorted(vcd.signals)[:PAGE])}
    if name == "vcd-window":
        # vcdvcd reads the whole file; the window is cut afterwards.
        vcd = VCDVCD(str(path), signals=[_vcd_name(p) for p in paths])
        return {"count": sum(1 for p in paths for t, _ in vcd[_vcd_name(p)].tv if lo <= t <= end)}
    raise ValueError(name)


def _vcd_name(path: str) -> str:
    return path if path == "big.clk" else f"{path}[31:0]"


def _measure(name: str, path: Path, end: int) -> dict[str, Any]:
    code = ("import json, resource, sys, time; from pathlib import Path; "
            "from bench.waveform import step; import chalicelib.services.waveform_svg, vcdvcd, pylibfst; "
            "t = time.perf_counter(); "
            f"r = step({name!r}, Path({str(path)!r}), {end}); "
            "r['seconds'] = time.perf_counter() - t; "
            "r['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
            "print(json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                         text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _baseline_mb() -> float:
    """Peak RSS of a process that only imports what the API steps import."""
    code = ("import resource, pywellen, chalicelib.services.waveforms; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                         text=True)
    return float(out.stdout.strip())


def run(quick: bool = False) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="a6hub-bench-waves-"))
    try:
        vcd, fst, made = make_trace(workdir, QUICK_CYCLES if quick else FULL_CYCLES)
        from chalicelib.services.waveforms import _fst_time_range

        _, end = _fst_time_range(fst)
        vcd_mb, fst_mb = vcd.stat().st_size / 2**20, fst.stat().st_size / 2**20
        rows = [Row("trace: VCD / FST size (MB)", f"{fst_mb:.1f} FST", f"{vcd_mb:.1f} VCD"),
                Row("trace: simulate / vcd2fst (s)", f"{made['vcd2fst']:.1f} vcd2fst",
                    f"{made['simulate']:.1f} iverilog+vvp"),
                Row("python + pywellen imported, peak RSS (MB)", f"{_baseline_mb():.0f}")]
        pairs = [("first signals page (limit 50)", "api-signals", "vcd-signals"),
                 ("10 signals, last 1000 cycles", "api-window", "vcd-window"),
                 ("same window, pywellen streaming (not used)", "pywellen-window", None),
                 ("SVG of 10 signals, whole trace", "api-svg", None)]
        for label, api_step, vcd_step in pairs:
            api = _measure(api_step, fst, end)
            ref = _measure(vcd_step, vcd, end) if vcd_step else None
            if ref is not None and api_step == "api-window":
                # the API adds each signal's value at the window's start
                assert abs(api["count"] - ref["count"]) <= len(signal_paths()), (api, ref)
            reference = (f"{ref['seconds']:.2f} s / {ref['peak_mb']:.0f} MB vcdvcd"
                         if ref else "")
            rows.append(Row(f"{label}: time / peak RSS", f"{api['seconds']:.2f} s / "
                            f"{api['peak_mb']:.0f} MB", reference, f"< {LAMBDA_MB} MB",
                            api["peak_mb"] < LAMBDA_MB))
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.waveform", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~2 MB trace instead of ~540 MB")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    print(format_table(run(args.quick), "a6hub waveform bench"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
