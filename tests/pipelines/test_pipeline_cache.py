"""The cache key changes when what a job reads, its tools or its config change, and not otherwise.

Pure: the key is computed from file contents through the project model, with no AWS and no tool
run (tests/test_pipelines_e2e.py shows hits end to end).
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.schemas.job_configs import parse_job_config
from chalicelib.services.pipelines.cache import cache_key, files_read

DEFS = "`define WIDTH 4\n"
COUNTER = """\
`include "defs.vh"
module counter(input clk, input rst, output reg [`WIDTH-1:0] count);
  always @(posedge clk) count <= rst ? 0 : count + 1;
endmodule
"""
TB = """\
module tb;
  reg clk = 0, rst = 1;
  reg [7:0] mem [0:3];
  wire [3:0] count;
  counter dut(.clk(clk), .rst(rst), .count(count));
  always #1 clk = ~clk;
  initial begin $readmemh("tb/mem.hex", mem); #4 rst = 0; #20 $finish; end
endmodule
"""
BASE = {"rtl/counter.v": COUNTER, "rtl/defs.vh": DEFS, "tb/tb.v": TB, "tb/mem.hex": "01\n02\n",
        "README.md": "# counter\n"}
VERSIONS = {"iverilog": "Icarus Verilog version 12.0 (stable) ()", "vvp": "vvp 12.0"}


def _config(job_type: str, **config: Any) -> dict[str, Any]:
    normalised: dict[str, Any] = parse_job_config(job_type, config).model_dump(mode="json")
    return normalised


SIM = _config("simulation", testbench="tb/tb.v")
SYNTH = _config("synthesis", top="counter")


def key(files: dict[str, str], config: dict[str, Any] = SIM, job_type: str = "simulation",
        versions: dict[str, str] = VERSIONS) -> str | None:
    def read(path: str) -> bytes | None:
        return files[path].encode() if path in files else None

    return cache_key(job_type, config, versions, list(files), read)


def test_the_files_read_come_from_the_project_model() -> None:
    def read(path: str) -> bytes | None:
        return BASE[path].encode() if path in BASE else None

    reads = files_read("simulation", SIM, list(BASE), read)
    assert reads is not None
    # the compile set, its include and the memory file; not the README
    assert reads["files"] == ["rtl/counter.v", "rtl/defs.vh", "tb/mem.hex", "tb/tb.v"]
    assert reads["roots"] == ["tb"]


UNCHANGED = [
    ("a README edit", {**BASE, "README.md": "# counter\n\nNow with docs.\n"}),
    ("a pipeline file", {**BASE, ".a6hub.yml": "jobs: {}\n"}),
    ("an unrelated module", {**BASE, "rtl/other.v": "module other(input a); endmodule\n"}),
    ("another testbench", {**BASE, "tb/tb2.v": "module tb2; initial $finish; endmodule\n"}),
]


@pytest.mark.parametrize(("what", "files"), UNCHANGED, ids=[u[0] for u in UNCHANGED])
def test_the_simulation_key_ignores_what_the_simulation_does_not_read(
        what: str, files: dict[str, str]) -> None:
    assert key(files) == key(BASE), what


CHANGED = [
    ("the design", {**BASE, "rtl/counter.v": COUNTER.replace("count + 1", "count + 2")}),
    ("an included header", {**BASE, "rtl/defs.vh": "`define WIDTH 5\n"}),
    ("a memory file", {**BASE, "tb/mem.hex": "01\n03\n"}),
    ("the testbench, by one space", {**BASE, "tb/tb.v": TB.replace("#20", "#20 ")}),
    ("a file moved", {**{k: v for k, v in BASE.items() if k != "rtl/counter.v"},
                      "rtl/core/counter.v": COUNTER.replace('"defs.vh"', '"../defs.vh"')}),
]


@pytest.mark.parametrize(("what", "files"), CHANGED, ids=[c[0] for c in CHANGED])
def test_the_simulation_key_changes_with_what_it_reads(what: str, files: dict[str, str]) -> None:
    assert key(files) != key(BASE), what


def test_the_key_changes_with_the_config_and_the_tools_but_not_with_key_order() -> None:
    base = key(BASE)
    assert key(BASE, _config("simulation", testbench="tb/tb.v", plusargs=["seed=2"])) != base
    assert key(BASE, _config("simulation", testbench="tb/tb.v", timescale="1ns/1ns")) != base
    assert key(BASE, versions={**VERSIONS, "iverilog": "Icarus Verilog version 13.0"}) != base
    assert key(BASE, dict(reversed(list(SIM.items())))) == base


def test_synthesis_ignores_the_testbench_but_not_the_design() -> None:
    synth = {"yosys": "Yosys 0.23"}
    base = key(BASE, SYNTH, "synthesis", synth)
    assert base is not None
    assert key({**BASE, "tb/tb.v": TB.replace("#20", "#30")}, SYNTH, "synthesis", synth) == base
    changed = {**BASE, "rtl/counter.v": COUNTER.replace("count + 1", "count - 1")}
    assert key(changed, SYNTH, "synthesis", synth) != base
    # the simulation key of the same tree is another key
    assert key(BASE) != base


def test_a_job_the_model_cannot_plan_has_no_key() -> None:
    assert key(BASE, _config("simulation", testbench="tb/none.v")) is None
    assert key(BASE, {"url": "https://example.test/x.git"}, "import") is None
