"""Runner tier (execute_job with the real tools, no AWS): options a person passes, file names,
and the results read from the tools — beyond the shared cases."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import Unprocessable
from chalicelib.schemas.job_configs import parse_job_config
from runner.execute import ExecutionResult, execute_job
from runner.kinds.synthesis import cell_class, resource_counts
from runner.limits import MIB, Limits
from tests.hdl_support import tool_lines
from tests.jobs_support import staged

LIMITS = Limits(cpu_seconds=60, wall_seconds=120, memory_bytes=1024 * MIB, log_bytes=MIB)


def run(tmp_path: Path, files: dict[str, str], job_type: str,
        config: dict[str, Any]) -> tuple[ExecutionResult, str]:
    for rel, text in files.items():
        target = tmp_path / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    chunks: list[bytes] = []
    with staged(tmp_path) as dirs:
        outcome = execute_job(job_type, config, dirs, LIMITS, chunks.append, threading.Event())
    return outcome, b"".join(chunks).decode(errors="replace")


COUNTER = ("module counter(input clk, output reg [3:0] q = 0);\n"
           "  always @(posedge clk) q <= q + 1;\nendmodule\n")
COUNTER_TB = ("`timescale 1ns/1ps\nmodule tb; reg clk = 0; wire [3:0] q; counter c(.clk(clk), .q(q));\n"
              "always #5 clk = ~clk; initial begin #100 $display(\"q=%0d\", q); $finish; end endmodule\n")


@pytest.mark.slow
@pytest.mark.parametrize(("job_type", "config"), [
    ("simulation", {"testbench": "tests/tb ü.v"}),
    ("simulation", {"testbench": "tests/tb ü.v", "simulator": "verilator"}),
    ("synthesis", {"top": "counter"}),
    ("lint", {}),
    ("lint", {"tool": "icarus"}),
])
def test_file_names_with_spaces_and_non_ascii_letters_work_with_every_tool(
        tmp_path: Path, job_type: str, config: dict[str, Any]) -> None:
    outcome, log = run(tmp_path, {"my rtl/zähler.v": COUNTER, "tests/tb ü.v": COUNTER_TB}, job_type, config)
    assert outcome.status == "completed", log
    if job_type == "simulation":
        assert "q=10" in tool_lines(log)
    assert {f["path"] for f in outcome.summary["files"]} >= {"my rtl/zähler.v"}


OLD_STYLE = "module m(input do, output q);\n  assign q = do;\nendmodule\n"
OLD_TB = ("`timescale 1ns/1ps\nmodule tb; reg d = 1; wire q; m u(.do(d), .q(q));\n"
          "initial #1 $display(\"q=%b\", q);\nendmodule\n")


def test_a_verilog_2005_name_fails_saying_v_files_are_systemverilog(tmp_path: Path) -> None:
    outcome, log = run(tmp_path, {"m.v": OLD_STYLE, "tb.v": OLD_TB}, "simulation", {"testbench": "tb.v"})
    assert outcome.status == "failed"
    assert ".v files are compiled as SystemVerilog (IEEE 1800-2012)" in (outcome.error_message or "")
    assert 'set config.language to "verilog-2005"' in (outcome.error_message or "")
    assert "[a6hub] note: .v files are compiled as SystemVerilog" in log


@pytest.mark.slow
@pytest.mark.parametrize(("job_type", "config"), [
    ("simulation", {"testbench": "tb.v"}),
    ("simulation", {"testbench": "tb.v", "simulator": "verilator"}),
    ("synthesis", {"top": "m"}),
    ("lint", {"top": "m"}),
])
def test_config_language_verilog_2005_compiles_it_with_every_tool(
        tmp_path: Path, job_type: str, config: dict[str, Any]) -> None:
    outcome, log = run(tmp_path, {"m.v": OLD_STYLE, "tb.v": OLD_TB}, job_type,
                       {**config, "language": "verilog-2005"})
    assert outcome.status == "completed", log
    if job_type == "simulation":
        assert "q=1" in tool_lines(log)


def test_a_design_that_dumps_to_an_unwritable_path_fails_saying_why(tmp_path: Path) -> None:
    tb = ("module tb; reg r = 0; initial begin $dumpfile(\"no/such/dir/x.vcd\"); $dumpvars(0, tb);"
          " #1 r = 1; $display(\"ran\"); end endmodule\n")
    outcome, log = run(tmp_path, {"tb.v": tb}, "simulation", {"testbench": "tb.v", "waveform": True})
    assert outcome.status == "failed"
    assert outcome.error_message == ("simulation reported an error (exit 0): "
                                     "VCD Error: tb.v:1: Unable to open no/such/dir/x.vcd for output.")


def test_a_missing_memory_file_fails_the_job(tmp_path: Path) -> None:
    tb = ("module tb; reg [7:0] m [0:3]; initial begin $readmemh(\"fw/none.hex\", m); "
          "$display(\"%h\", m[0]); end endmodule\n")
    outcome, log = run(tmp_path, {"tb.v": tb}, "simulation", {"testbench": "tb.v"})
    assert outcome.status == "failed", log
    assert outcome.error_message == ("simulation reported an error (exit 0): "
                                     "ERROR: tb.v:1: $readmemh: Unable to open fw/none.hex for reading.")


@pytest.mark.parametrize(("config", "fault"), [
    ({"defines": {"IMAGE": '"fw/prog.hex"'}}, None),
    ({"defines": {"IMAGE": '"a"b"'}}, "config.defines"),
    ({"defines": {"IMAGE": '"line\nbreak"'}}, "config.defines"),
    ({"defines": {"X": "$(rm -rf /)"}}, "config.defines"),
    ({"include_dirs": ["include", "."]}, None),
    ({"include_dirs": ["../etc"]}, "config.include_dirs"),
    ({"include_dirs": ["/etc"]}, "config.include_dirs"),
    ({"language": "vhdl"}, "config.language"),
    ({"files": ["-s.v"]}, "config.files"),
])
def test_config_fields_are_validated(config: dict[str, Any], fault: str | None) -> None:
    for job_type in ("simulation", "synthesis", "lint"):
        full = {"testbench": "tb.v", **config} if job_type == "simulation" else config
        if fault is None:
            parse_job_config(job_type, full)
        else:
            with pytest.raises(Unprocessable, match=fault):
                parse_job_config(job_type, full)


@pytest.mark.parametrize(("family", "cells", "expected"), [
    ("xilinx", {"FDRE": 8, "FDCE": 2, "LUT3": 4, "LUT6": 1, "RAMB18E1": 1, "CARRY4": 2, "IBUF": 9},
     {"flip_flop": 10, "lut": 5, "block_ram": 1}),
    ("nexus", {"FD1P3IX": 8, "LUT4": 3, "PDPSC16K": 1, "CCU2": 5},
     {"flip_flop": 8, "lut": 3, "block_ram": 1}),
    ("ice40", {"SB_DFF": 43, "SB_DFFESR": 8, "SB_LUT4": 31, "SB_RAM40_4K": 2, "SB_CARRY": 6},
     {"flip_flop": 51, "lut": 31, "block_ram": 2}),
    ("ecp5", {"TRELLIS_FF": 8, "LUT4": 2, "DP16KD": 1, "CCU2C": 4},
     {"flip_flop": 8, "lut": 2, "block_ram": 1}),
    ("gowin", {"DFFRE": 8, "LUT4": 1, "SPX9": 1, "ALU": 8}, {"flip_flop": 8, "lut": 1, "block_ram": 1}),
    ("gatemate", {"CC_DFF": 34, "CC_LUT4": 8, "CC_BRAM_20K": 1}, {"flip_flop": 34, "lut": 8, "block_ram": 1}),
    ("efinix", {"EFX_FF": 8, "EFX_LUT4": 3, "EFX_RAM_5K": 2}, {"flip_flop": 8, "lut": 3, "block_ram": 2}),
    ("intel", {"dffeas": 8, "fiftyfivenm_lcell_comb": 12, "altsyncram": 1},
     {"flip_flop": 8, "lut": 12, "block_ram": 1}),
    ("generic", {"$_DFF_P_": 16, "$_SDFFE_PP0P_": 8, "$_DFFE_PP_": 4, "$_AND_": 9},
     {"flip_flop": 28, "lut": 0, "block_ram": 0}),
])
def test_flip_flops_luts_and_block_rams_by_family(family: str, cells: dict[str, int],
                                                  expected: dict[str, int]) -> None:
    # cell names as `yosys synth_<family>` reports them (a 512x16 RAM and an 8-bit counter)
    assert resource_counts(cells) == expected, family
    assert cell_class("$_AND_") is None and cell_class("IBUF") is None


@pytest.mark.slow
def test_synthesis_counts_for_xilinx_come_from_yosys(tmp_path: Path) -> None:
    design = ("module d(input clk, input we, input [8:0] a, input [15:0] din, output reg [15:0] dout,\n"
              "         output reg [7:0] cnt);\n  reg [15:0] mem [0:511];\n"
              "  always @(posedge clk) begin if (we) mem[a] <= din; dout <= mem[a]; end\n"
              "  always @(posedge clk) if (we) cnt <= cnt + 1;\nendmodule\n")
    outcome, log = run(tmp_path, {"d.v": design}, "synthesis", {"top": "d", "family": "xilinx"})
    assert outcome.status == "completed", log
    stat = json.loads((tmp_path / "out" / "stat.json").read_text())
    assert (stat["flip_flops"], stat["block_rams"]) == (8, 1)
    assert stat["cells_by_type"]["FDRE"] == 8
