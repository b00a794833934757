"""chalicelib.hdl.parse: the one HDL front end (pyslang) — units, ports, includes, diagnostics."""

from __future__ import annotations

import pytest

from chalicelib.hdl.parse import Instance, Parameter, Port, parse_source


def unit(src: str | bytes, name: str | None = None, **kw: object):
    parsed = parse_source("src/a.sv", src, **kw)  # type: ignore[arg-type]
    units = {u.name: u for u in parsed.units}
    return units[name] if name else next(iter(units.values()))


def test_ansi_ports_widths_and_types() -> None:
    # GIVEN a module with parameterised ANSI ports, some inheriting the previous declaration
    src = (
        "module alu #(parameter W = 8, localparam H = W/2) (\n"
        "  input wire clk, rst,\n"
        "  input [W-1:0] a, b,\n"
        "  output reg [H-1:0] q,\n"
        "  output logic [3:0][7:0] packed2,\n"
        "  input int count,\n"
        "  inout [$clog2(W):0] bus,\n"
        "  input my_pkg::word_t word\n"
        ");\nendmodule\n"
    )
    u = unit(src)
    # THEN every port has its direction, width, range and type as a person reads them
    assert u.kind == "module" and u.name == "alu" and (u.start_line, u.end_line) == (1, 10)
    assert u.ports == (
        Port("clk", "input", 1, None, "wire"),
        Port("rst", "input", 1, None, "wire"),
        Port("a", "input", 8, "[W-1:0]", None),
        Port("b", "input", 8, "[W-1:0]", None),
        Port("q", "output", 4, "[H-1:0]", "reg"),
        Port("packed2", "output", 32, "[3:0][7:0]", "logic"),
        Port("count", "input", 32, None, "int"),
        Port("bus", "inout", 4, "[$clog2(W):0]", None),
        Port("word", "input", None, None, "my_pkg::word_t"),
    )
    assert u.parameters == (Parameter("W", "8", None, False), Parameter("H", "W/2", None, True))
    assert u.imports == ("my_pkg",)


def test_non_ansi_ports_take_their_declarations() -> None:
    u = unit("module old(a, y, z);\n input [3:0] a;\n output y;\n output reg [1:0] z;\n"
             " parameter integer N = 8'hdb;\nendmodule\n")
    assert u.ports == (
        Port("a", "input", 4, "[3:0]", None),
        Port("y", "output", 1, None, None),
        Port("z", "output", 2, "[1:0]", "reg"),
    )
    assert u.parameters == (Parameter("N", "8'hdb", "integer", False),)


def test_lifetime_attributes_and_macros_before_module_are_parsed() -> None:
    # GIVEN headers that a pattern `module\s+(\w+)` reads wrongly
    src = (
        "`define NAME_OF_TOP tb_parity\n"
        "(* keep_hierarchy = 1 *) module automatic `NAME_OF_TOP;\n"
        "  parity_gen #(.N(4)) dut (.d(d));\n"
        "endmodule\n"
        "module static helper; endmodule\n"
        "/* module commented_out; endmodule */\n"
        "`ifdef NEVER\nmodule disabled; endmodule\n`endif\n"
    )
    parsed = parse_source("tb.sv", src)
    assert [u.name for u in parsed.units] == ["tb_parity", "helper"]
    assert parsed.units[0].instances == (Instance("parity_gen", "dut", 3),)
    assert parsed.diagnostics == ()


def test_bom_and_crlf_never_change_the_result() -> None:
    plain = "module inv_gate(input a, output y);\n  assign y = ~a;\nendmodule\n\nmodule t; endmodule\n"
    variants = [plain, "\ufeff" + plain, plain.replace("\n", "\r\n"),
                b"\xef\xbb\xbf" + plain.replace("\n", "\r\n").encode()]
    results = [parse_source("inv.v", v) for v in variants]
    assert all(r == results[0] for r in results)
    assert [(u.name, u.start_line, u.end_line) for u in results[0].units] == [("inv_gate", 1, 3),
                                                                              ("t", 5, 5)]


def test_instances_inside_generate_blocks() -> None:
    src = (
        "module top;\n"
        "  generate for (genvar i = 0; i < 2; i++) begin : g\n"
        "    leaf l ();\n"
        "  end endgenerate\n"
        "  if (1) begin : c  mid m1 (), m2 (); end else begin  other o (); end\n"
        "  case (2) 1: one x (); default: two y (); endcase\n"
        "endmodule\n"
    )
    u = unit(src)
    assert [(i.module, i.name) for i in u.instances] == [
        ("leaf", "l"), ("mid", "m1"), ("mid", "m2"), ("other", "o"), ("one", "x"), ("two", "y")]


def test_kinds_packages_interfaces_imports() -> None:
    src = (
        "package opcodes_pkg; typedef enum logic [1:0] {ADD, SUB} op_t; endpackage\n"
        "interface bus_if (input logic clk); logic [7:0] data; modport mst (output data); endinterface\n"
        "import opcodes_pkg::*;\n"
        "module core (bus_if.mst b, input opcodes_pkg::op_t op); endmodule\n"
        "program prg; endprogram\n"
        "primitive udp_and (o, a, b); output o; input a, b; table 1 1 : 1; endtable endprimitive\n"
    )
    parsed = parse_source("all.sv", src)
    assert [(u.kind, u.name) for u in parsed.units] == [
        ("package", "opcodes_pkg"), ("interface", "bus_if"), ("module", "core"),
        ("program", "prg"), ("primitive", "udp_and")]
    core = parsed.units[2]
    assert core.imports == ("opcodes_pkg",)
    assert core.interfaces == ("bus_if",)
    assert core.ports[0] == Port("b", "interface", None, None, "bus_if.mst")


def test_includes_through_the_callback_nested_and_by_include_dir() -> None:
    # GIVEN a header in a folder of its own that includes another one relative to itself
    files = {
        "include/bus_widths.vh": '`include "inner/more.vh"\n`define WIDTH 12\n',
        "include/inner/more.vh": "`define MORE 1\n",
    }
    read: list[str] = []

    def read_include(path: str) -> str | None:
        read.append(path)
        return files.get(path)

    src = '`include "bus_widths.vh"\nmodule latch_reg(output [`WIDTH-1:0] q); endmodule\n'
    parsed = parse_source("rtl/latch_reg.v", src, include_dirs=["include"], read_include=read_include)
    # THEN the includer's folder is tried first, then the include dirs; the width uses the macro
    assert read[:2] == ["rtl/bus_widths.vh", "include/bus_widths.vh"]
    assert parsed.includes == ("bus_widths.vh", "inner/more.vh")
    assert parsed.included == ("include/bus_widths.vh", "include/inner/more.vh")
    assert parsed.units[0].ports[0].width == 12
    assert parsed.diagnostics == ()


def test_units_in_an_included_file_say_where_they_are() -> None:
    files = {"adder4.v": "module adder4(input [3:0] a, b, output [4:0] s);\n assign s = a + b;\nendmodule\n"}
    parsed = parse_source("tb_adder.v", '`include "adder4.v"\nmodule tb_adder; adder4 u(); endmodule\n',
                          read_include=files.get)
    assert [(u.name, u.path, u.start_line) for u in parsed.units] == [
        ("adder4", "adder4.v", 1), ("tb_adder", "tb_adder.v", 2)]


@pytest.mark.parametrize(
    ("target", "reason"),
    [("missing.vh", "was not found"), ("../../etc/hostname", "is outside the project"),
     ("/etc/hostname", "is outside the project")],
)
def test_an_include_that_is_missing_or_outside_is_a_diagnostic_never_a_host_read(
        target: str, reason: str) -> None:
    # /etc/hostname exists on the host: slang would read it if the parse let it go to the disk
    parsed = parse_source("a/b.v", f'`include "{target}"\nmodule m; endmodule\n',
                          read_include=lambda p: None)
    assert [u.name for u in parsed.units] == ["m"]
    assert [(d.path, d.line, d.severity, d.message) for d in parsed.diagnostics] == [
        ("a/b.v", 1, "error", f"include file '{target}' {reason}")]


def test_dumps_only_in_live_code() -> None:
    live = 'module tb; initial begin $dumpfile("tb.vcd"); $dumpvars(0, tb); end endmodule\n'
    dead = ("module tb;\n// initial $dumpvars;\n/* $dumpvars(0, tb); */\n"
            "`ifdef WAVES\ninitial $dumpvars(0, tb);\n`endif\nendmodule\n")
    assert parse_source("tb.v", live).dumps is True
    assert parse_source("tb.v", dead).dumps is False
    assert parse_source("tb.v", dead, defines={"WAVES": ""}).dumps is True


def test_file_names_given_to_system_tasks() -> None:
    src = ('module tb; reg [7:0] m [0:3]; integer f;\n'
           'initial begin $readmemh(`IMAGE, m); $readmemb("data/b.bin", m);\n'
           ' f = $fopen("out.txt", "w"); $dumpfile("sim/tb.vcd"); end endmodule\n')
    parsed = parse_source("sim/tb.v", src, defines={"IMAGE": '"fw/prog.hex"'})
    assert [(r.task, r.name, r.line) for r in parsed.file_refs] == [
        ("$readmemh", "fw/prog.hex", 2), ("$readmemb", "data/b.bin", 2),
        ("$fopen", "out.txt", 3), ("$dumpfile", "sim/tb.vcd", 3)]


def test_verilog_2005_file_with_a_systemverilog_keyword_as_name() -> None:
    src = "module m(input do, output reg q);\n always @* q = do;\nendmodule\n"
    parsed = parse_source("m.v", src)
    assert parsed.language == "verilog-2005"
    assert [p.name for p in parsed.units[0].ports] == ["do", "q"] and parsed.diagnostics == ()
    forced = parse_source("m.v", src, language="systemverilog")
    assert forced.language == "systemverilog" and any(d.severity == "error" for d in forced.diagnostics)


def test_syntax_error_gives_what_could_be_read_and_never_raises() -> None:
    src = "module good(input a); endmodule\nmodule bad(input a\n  wire w = ;\nendmodule\n"
    parsed = parse_source("x.v", src)
    assert parsed.units[0].name == "good"
    errors = [d for d in parsed.diagnostics if d.severity == "error"]
    assert errors and errors[0].path == "x.v" and errors[0].line >= 2 and errors[0].message
    assert parse_source("bin.v", bytes(range(256))).units == ()


def test_timescale_in_force_per_unit() -> None:
    src = ("module first; endmodule\n`timescale 1ns/1ps\nmodule after; endmodule\n"
           "module own; timeunit 1ps; endmodule\n")
    parsed = parse_source("t.v", src)
    assert [(u.name, u.timescale) for u in parsed.units] == [
        ("first", None), ("after", "1ns/1ps"), ("own", "timeunit")]
    assert parsed.timescale is True
    assert parse_source("n.v", "module n; endmodule\n").timescale is False


def test_real_sources_and_their_mangled_copies_never_raise() -> None:
    import random
    from pathlib import Path

    import pythondata_cpu_picorv32
    import pythondata_cpu_serv

    roots = (pythondata_cpu_serv.data_location, pythondata_cpu_picorv32.data_location)
    files = sorted(p for d in roots for p in Path(d).rglob("*") if p.suffix in (".v", ".sv"))
    assert len(files) > 50
    rnd = random.Random(9)
    units = 0
    for path in files:
        data = path.read_bytes()
        units += len(parse_source(path.name, data).units)
        cut = rnd.randrange(len(data) + 1)
        noise = bytes(rnd.randrange(256) for _ in range(16))
        for mangled in (data[:cut] + data[cut + 40:], data[:cut] + noise):
            parsed = parse_source(path.name, mangled)
            assert all(d.line >= 1 and d.message for d in parsed.diagnostics)
    assert units > 60  # serv, servant's boards, picorv32's cores and testbenches


def test_an_empty_port_has_no_entry() -> None:
    assert [p.name for p in unit("module z(input a,,); endmodule\n").ports] == ["a"]
