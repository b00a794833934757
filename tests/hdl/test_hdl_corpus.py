"""Real projects through a6hub and by hand: the same output.

Each test uploads a project as a person has it (every file, tests and board wrappers included),
runs one job through the API and a real runner, then runs the tools by hand on the same files
from the project root with the command lines an expert types (written out below), and compares.
picorv32 and serv come from the pythondata packages (nobody here wrote them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, UserCtx
from tests.hdl_support import by_hand, run_uploaded, tool_lines, vcd_body
from tests.runner.test_jobs_e2e import artifact, queues, runner  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("runner")]


def run_job(api: Api, owner: UserCtx, files: dict[str, bytes], job_type: str,
            config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    project, job, log = run_uploaded(api, owner, files, job_type, config, timeout=600)
    assert job["status"] == "completed", (job["error_message"], log[-3000:])
    return project, job, log


def test_picorv32_testbench_ez(api: Api, owner: UserCtx, tmp_path: Path) -> None:
    import pythondata_cpu_picorv32

    # GIVEN picorv32 as its repository has it: the core and its three testbenches (each declares
    # a module `testbench`), and firmware folders
    src = Path(pythondata_cpu_picorv32.data_location)
    files = {name: (src / name).read_bytes()
             for name in ("picorv32.v", "testbench.v", "testbench_ez.v", "testbench_wb.v")}
    # WHEN testbench_ez.v is simulated with a waveform
    project, job, log = run_job(api, owner, files, "simulation",
                                {"testbench": "testbench_ez.v", "waveform": True})
    # THEN it printed what the README's command prints (with -g2012, a6hub's documented language
    # for .v files: without it Icarus starts some regs as x), and dumped the same VCD
    expected = by_hand(files, tmp_path / "hand",
                       ["iverilog", "-g2012", "-o", "testbench_ez.vvp", "testbench_ez.v", "picorv32.v"],
                       ["vvp", "-N", "testbench_ez.vvp", "+vcd"])
    assert tool_lines(log) == expected.splitlines()
    assert len([line for line in expected.splitlines() if line.startswith(("ifetch", "read", "write"))]) > 200
    assert [i["path"] for i in job["summary"]["files"]] == ["picorv32.v", "testbench_ez.v"]
    vcd = artifact(api, owner, project, job["id"], "testbench.vcd")
    assert vcd_body(vcd) == vcd_body((tmp_path / "hand" / "testbench.vcd").read_bytes())


SERVANT_FILES = [
    "servant/servant.v", "servant/servant_arbiter.v", "servant/servant_gpio.v", "servant/servant_mux.v",
    "servant/servant_ram.v", "servant/servant_timer.v",
    *(f"rtl/serv_{n}.v" for n in ("aligner", "alu", "bufreg", "bufreg2", "compdec", "csr", "ctrl",
                                  "decode", "immdec", "mem_if", "rf_if", "rf_ram", "rf_ram_if",
                                  "rf_top", "state", "top")),
]


def test_serv_servant_soc_synthesis(api: Api, owner: UserCtx, tmp_path: Path) -> None:
    import pythondata_cpu_serv

    # GIVEN serv's tree (core, every board wrapper of servant, benches, a .sv RAM for Quartus)
    # with the firmware image servant_ram reads by default, at the project root
    root = Path(pythondata_cpu_serv.data_location)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.suffix in (".v", ".sv", ".vh") and "__pycache__" not in p.parts}
    assert len(files) > 50
    files["zephyr_hello.hex"] = "".join("00000013\n" for _ in range(16)).encode()
    # WHEN the servant SoC is synthesised for iCE40
    project, job, _ = run_job(api, owner, files, "synthesis", {"top": "servant", "family": "ice40"})
    # THEN the files read are servant's hierarchy only, and the statistics are those of the tools
    # run by hand on servant's file list (from servant.core)
    assert sorted(i["path"] for i in job["summary"]["files"]) == sorted(SERVANT_FILES)
    out = by_hand(files, tmp_path / "hand", [
        "yosys", "-q", "-p", f"read_verilog -sv {' '.join(SERVANT_FILES)}; synth_ice40 -top servant; "
        "tee -q -o stat.json stat -json"])
    assert "ERROR" not in out
    hand = json.loads((tmp_path / "hand" / "stat.json").read_text())["design"]
    stat = json.loads(artifact(api, owner, project, job["id"], "stat.json"))
    assert stat["cells_by_type"] == hand["num_cells_by_type"]
    synthesis = job["summary"]["synthesis"]
    by_type = hand["num_cells_by_type"]
    assert synthesis["flip_flops"] == sum(n for c, n in by_type.items() if c.startswith("SB_DFF")) > 100
    assert synthesis["luts"] == by_type["SB_LUT4"]
    assert synthesis["block_rams"] == by_type["SB_RAM40_4K"] > 0


TT_FILES = {
    "src/config.vh": b"`define COUNT_W 8\n",
    "src/project.v": b"""\
`default_nettype none
`include "config.vh"
module tt_um_counter (
    input  wire [7:0] ui_in, output wire [7:0] uo_out, input wire [7:0] uio_in,
    output wire [7:0] uio_out, output wire [7:0] uio_oe, input wire ena, input wire clk,
    input wire rst_n);
  reg [`COUNT_W-1:0] count;
  always @(posedge clk) if (!rst_n) count <= 0; else if (ena) count <= count + ui_in[0];
  assign uo_out = count; assign uio_out = 0; assign uio_oe = 0;
endmodule
""",
    "test/tb.v": b"""\
`default_nettype none
`timescale 1ns / 1ps
module tb ();
  reg clk = 0, rst_n = 0, ena = 1; reg [7:0] ui_in = 1, uio_in = 0;
  wire [7:0] uo_out, uio_out, uio_oe;
  tt_um_counter user_project (.ui_in(ui_in), .uo_out(uo_out), .uio_in(uio_in), .uio_out(uio_out),
      .uio_oe(uio_oe), .ena(ena), .clk(clk), .rst_n(rst_n));
  always #5 clk = ~clk;
  initial begin
    $dumpfile("tb.vcd"); $dumpvars(0, tb);
    #20 rst_n = 1;
    #100 $display("count=%0d", uo_out);
    $finish;
  end
endmodule
""",
    "test/Makefile": b"# cocotb makefile: not HDL\n",
    "info.yaml": b"project:\n  top_module: tt_um_counter\n",
}


def test_tiny_tapeout_shaped_project(api: Api, owner: UserCtx, tmp_path: Path) -> None:
    # GIVEN src/ with a header, test/ with the testbench (the Tiny Tapeout template's layout)
    project, job, log = run_job(api, owner, TT_FILES, "simulation",
                                {"testbench": "test/tb.v", "waveform": True})
    # THEN the output and the VCD are those of the template's own command line
    expected = by_hand(TT_FILES, tmp_path / "hand",
                       ["iverilog", "-g2012", "-I", "src", "-s", "tb", "-o", "sim.vvp",
                        "test/tb.v", "src/project.v"],
                       ["vvp", "-n", "sim.vvp"])
    assert tool_lines(log) == expected.splitlines()
    assert "count=10" in expected
    vcd = artifact(api, owner, project, job["id"], "tb.vcd")
    assert vcd_body(vcd) == vcd_body((tmp_path / "hand" / "tb.vcd").read_bytes())
    # AND synthesis without a top finds the design, not the testbench
    _, synth, _ = run_job(api, owner, TT_FILES, "synthesis", {})
    assert synth["steps"][0]["argv"][0] == "yosys"
    assert [i["path"] for i in synth["summary"]["files"]] == ["src/project.v"]
    assert synth["summary"]["synthesis"]["flip_flops"] == 8


SV_FILES = {
    # alphabetical order is the wrong order: a_core.sv uses z_types_pkg, tb_core.sv bus_if
    # (Icarus 11 takes no interface ports, so the testbench connects the interface's signals)
    "a_core.sv": b"""\
module a_core (input logic [1:0] op, input logic [7:0] a, b, output logic [7:0] result);
  import z_types_pkg::*;
  always_comb result = apply(op, a, b);
endmodule
""",
    "bus_if.sv": b"""\
interface bus_if;
  logic [1:0] op; logic [7:0] a, b;
  modport producer (output op, a, b);
  modport consumer (input op, a, b);
endinterface
""",
    "tb_core.sv": b"""\
module tb_core;
  bus_if bus ();
  logic [7:0] result;
  a_core dut (.op(bus.op), .a(bus.a), .b(bus.b), .result(result));
  initial begin
    bus.op = z_types_pkg::OP_ADD; bus.a = 8'd40; bus.b = 8'd2; #1 $display("add=%0d", result);
    bus.op = z_types_pkg::OP_XOR; bus.a = 8'hF0; bus.b = 8'h3C; #1 $display("xor=%h", result);
    $finish;
  end
endmodule
""",
    "z_types_pkg.sv": b"""\
package z_types_pkg;
  typedef enum logic [1:0] {OP_ADD = 2'd0, OP_XOR = 2'd1} op_t;
  function automatic logic [7:0] apply(logic [1:0] op, logic [7:0] a, logic [7:0] b);
    return op == OP_ADD ? a + b : a ^ b;
  endfunction
endpackage
""",
}


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_systemverilog_packages_and_an_interface(api: Api, owner: UserCtx, tmp_path: Path,
                                                 simulator: str) -> None:
    _, job, log = run_job(api, owner, SV_FILES, "simulation",
                          {"testbench": "tb_core.sv", "simulator": simulator})
    # the package first, then the interface, then their users (what an expert lists)
    assert [i["path"] for i in job["summary"]["files"]] == [
        "z_types_pkg.sv", "bus_if.sv", "a_core.sv", "tb_core.sv"]
    expected = by_hand(SV_FILES, tmp_path / "hand",
                       ["iverilog", "-g2012", "-o", "sim.vvp", "z_types_pkg.sv", "bus_if.sv",
                        "a_core.sv", "tb_core.sv"],
                       ["vvp", "-n", "sim.vvp"])
    assert expected.splitlines() == ["add=42", "xor=cc"]
    printed = [line for line in tool_lines(log) if line.startswith(("add=", "xor="))]
    assert printed == expected.splitlines()


FOLDER_FILES = {
    "rtl/rom.v": b"""\
module rom (input clk, input [3:0] addr, output reg [7:0] data);
  reg [7:0] mem [0:15];
  initial $readmemh("mem/rom.hex", mem);
  always @(posedge clk) data <= mem[addr];
endmodule
""",
    "rtl/top.v": b"""\
module top (input clk, input [3:0] addr, output [7:0] data);
  rom u_rom (.clk(clk), .addr(addr), .data(data));
endmodule
""",
    "tb/tb_top.v": b"""\
`timescale 1ns/1ps
module tb_top;
  reg clk = 0; reg [3:0] addr = 0; wire [7:0] data;
  top dut (.clk(clk), .addr(addr), .data(data));
  always #5 clk = ~clk;
  integer f;
  initial begin
    f = $fopen("out/trace.txt", "w");
    repeat (4) begin @(posedge clk); #1 $display("mem[%0d]=%h", addr, data); $fdisplay(f, "%h", data);
      addr = addr + 3; end
    $fclose(f);
    $finish;
  end
endmodule
""",
    "mem/rom.hex": b"".join(b"%02x\n" % (i * 17) for i in range(16)),
    "out/.keep": b"",
}


def test_design_in_folders_with_memory_files(api: Api, owner: UserCtx, tmp_path: Path) -> None:
    files = {k: v for k, v in FOLDER_FILES.items() if not k.endswith(".keep")}
    files["out/README"] = b"traces go here\n"
    _, job, log = run_job(api, owner, files, "simulation", {"testbench": "tb/tb_top.v"})
    expected = by_hand(files, tmp_path / "hand",
                       ["iverilog", "-g2012", "-o", "sim.vvp", "-s", "tb_top", "tb/tb_top.v",
                        "rtl/top.v", "rtl/rom.v"],
                       ["vvp", "-n", "sim.vvp"])
    assert expected.splitlines() == ["mem[0]=00", "mem[3]=33", "mem[6]=66", "mem[9]=99"]
    assert tool_lines(log) == expected.splitlines()
    # synthesis finds the same memory file (yosys from the project root)
    _, synth, _ = run_job(api, owner, files, "synthesis", {"top": "top"})
    hand = by_hand(files, tmp_path / "hand-synth", [
        "yosys", "-q", "-p", "read_verilog rtl/top.v rtl/rom.v; synth -top top -flatten; "
        "tee -q -o stat.json stat -json"])
    assert "ERROR" not in hand
    stat = json.loads((tmp_path / "hand-synth" / "stat.json").read_text())["design"]
    assert synth["summary"]["synthesis"]["cells"] == stat["num_cells"]
    # the ROM's nibbles repeat (i * 0x11): yosys keeps 4 of the 8 output flip-flops
    assert synth["summary"]["synthesis"]["flip_flops"] == stat["num_cells_by_type"]["$_DFF_P_"] == 4
