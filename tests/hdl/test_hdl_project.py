"""chalicelib.hdl.project: which files, in which order, include path and roots (no tools run)."""

from __future__ import annotations

import pytest

from chalicelib.hdl.project import (
    ProjectError,
    lint_set,
    load_project,
    simulation_set,
    synthesis_set,
)


def project(files: dict[str, str], **kw: object):
    data = {k: v.encode() for k, v in files.items()}
    return load_project(data, data.get, **kw)  # type: ignore[arg-type]


def test_an_included_file_is_not_compiled_again() -> None:
    p = project({
        "adder4.v": "module adder4(input [3:0] p, q, output [4:0] s); assign s = p + q; endmodule\n",
        "tb_adder.v": '`include "adder4.v"\nmodule tb_adder; adder4 u(); endmodule\n',
    })
    cs = simulation_set(p, testbench_file="tb_adder.v", testbench_module=None, top=None, files=None)
    assert cs.files == ("tb_adder.v",) and cs.roots == ("tb_adder",)
    # also when the user lists both files; then the log says why one was left out
    listed = simulation_set(p, testbench_file="tb_adder.v", testbench_module=None, top=None,
                            files=["adder4.v", "tb_adder.v"])
    assert listed.files == ("tb_adder.v",)
    assert listed.notes == ("adder4.v is `include'd by tb_adder.v, so it is not compiled a second time",)


def test_packages_then_interfaces_then_users_whatever_the_names() -> None:
    p = project({
        "a_core.sv": "module a_core; import z_pkg::*; endmodule\n",
        "b_if.sv": "interface b_if; logic x; endinterface\n",
        "m_user.sv": "module m_user (b_if.mp port); a_core c (); endmodule\n",
        "tb.sv": "module tb; b_if i (); m_user u (.port(i)); endmodule\n",
        "y_pkg.sv": "package y_pkg; localparam int W = 8; endpackage\n",
        "z_pkg.sv": "package z_pkg; import y_pkg::*; localparam int V = W; endpackage\n",
    })
    cs = simulation_set(p, testbench_file="tb.sv", testbench_module=None, top=None, files=None)
    assert cs.files == ("y_pkg.sv", "z_pkg.sv", "b_if.sv", "a_core.sv", "m_user.sv", "tb.sv")


def test_simulation_compiles_only_the_testbench_hierarchy() -> None:
    p = project({
        "cnt.v": "module cnt(input clk, output reg [3:0] q); endmodule\n",
        "tb_a.v": "module tb_a; cnt u(); initial begin $dumpfile(\"a.vcd\"); $dumpvars; end endmodule\n",
        "tb_b.v": "module tb_b; cnt u(); endmodule\n",
        "broken.v": "module broken(; endmodule\n",
    })
    cs = simulation_set(p, testbench_file="tb_b.v", testbench_module=None, top=None, files=None)
    assert cs.files == ("cnt.v", "tb_b.v") and cs.roots == ("tb_b",)
    assert cs.dumps is False  # tb_a's $dumpvars is not elaborated
    by_module = simulation_set(p, testbench_file=None, testbench_module="tb_a", top=None, files=None)
    assert by_module.files == ("cnt.v", "tb_a.v") and by_module.dumps is True


def test_roots_are_the_testbench_files_uninstantiated_modules() -> None:
    p = project({
        "dut.sv": "module dut; endmodule\n",
        "tb.sv": ("(* top *) module automatic tb; dut d (); helper h (); endmodule\n"
                  "module helper; endmodule\nmodule static monitor; endmodule\n"),
    })
    cs = simulation_set(p, testbench_file="tb.sv", testbench_module=None, top=None, files=None)
    assert cs.roots == ("tb", "monitor")
    assert simulation_set(p, testbench_file="tb.sv", testbench_module=None, top="tb",
                          files=None).roots == ("tb",)
    with pytest.raises(ProjectError, match="module nothere is not declared"):
        simulation_set(p, testbench_file=None, testbench_module="nothere", top=None, files=None)


def test_include_path_holds_the_folders_includes_were_found_from() -> None:
    p = project({
        "include/bus_widths.vh": "`define DATA_W 12\n",
        "rtl/latch_reg.v": '`include "bus_widths.vh"\nmodule latch_reg(output [`DATA_W-1:0] q); endmodule\n',
        "rtl/tb.v": "module tb; latch_reg u(); endmodule\n",
        "cfg/deep/x.svh": "`define X 1\n",
    }, include_dirs=["cfg/deep"])
    cs = simulation_set(p, testbench_file="rtl/tb.v", testbench_module=None, top=None, files=None)
    assert cs.include_dirs == (".", "include", "cfg/deep")
    assert p.sources["rtl/latch_reg.v"].units[0].ports[0].width == 12


def test_synthesis_reads_the_design_never_the_testbench() -> None:
    p = project({
        "pwm_unit.v": "module pwm_unit(input clk, output reg out); endmodule\n",
        "tb_pwm.v": "module tb_pwm; pwm_unit u(); initial $finish; endmodule\n",
        "util.v": "module unused_helper(input a, output y); endmodule\n",
    })
    cs = synthesis_set(p, top=None, files=None)
    assert cs.roots == ("pwm_unit",) and cs.files == ("pwm_unit.v",)
    assert any("top inferred as pwm_unit" in n for n in cs.notes)
    assert synthesis_set(p, top="pwm_unit", files=None).files == ("pwm_unit.v",)


def test_synthesis_of_nothing_says_so() -> None:
    p = project({"core_stub.v": "`ifdef USE_CORE\nmodule core_stub(input a, output y); endmodule\n`endif\n"})
    with pytest.raises(ProjectError, match="^nothing to synthesise: the design has no modules"):
        synthesis_set(p, top=None, files=None)
    only_tb = project({"tb.v": "module tb; initial $finish; endmodule\n"})
    with pytest.raises(ProjectError, match="no design top found"):
        synthesis_set(only_tb, top=None, files=None)


def test_untimed_files_and_verilog_2005_only_files_are_flagged() -> None:
    p = project({
        "delay_line.v": "module delay_line(input a, output y); assign #3 y = a; endmodule\n",
        "old.v": "module old(input do, output q); assign q = do; endmodule\n",
        "tb.v": "`timescale 1ns/1ps\nmodule tb; delay_line d(); old o(); endmodule\n",
    })
    cs = lint_set(p, top=None, files=None)
    assert cs.untimed == frozenset({"delay_line.v", "old.v"})
    assert cs.verilog_2005_only == ("old.v",)
    assert project({"old.v": "module old(input do); endmodule\n"},
                   verilog_2005=True).sources["old.v"].diagnostics == ()


def test_the_parse_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.hdl import main

    main(["--quick"])
    table = capsys.readouterr().out
    assert "picorv32 testbench_ez job: plan" in table and "10-file project" in table
