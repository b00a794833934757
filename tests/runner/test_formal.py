"""Formal jobs and synthesis schematics through the API, run by a real runner (in-process worker,
real sandbox, yosys, yosys-smtbmc with z3, ABC, Graphviz); counterexamples read back through the
waveform API.

The config tests need no runner: a hostile value is a 422 and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, Api, UserCtx, make_file, make_project
from tests.jobs_support import Queues, sandboxed_queues

FIXTURES = ROOT / "tests" / "fixtures" / "formal"  # designs bench/formal.py runs too

# counter_fails.sv fails at step 6: reset is assumed in step 0, so count is 0 in step 1 and 5 in
# step 6.
FAILING = (FIXTURES / "counter_fails.sv").read_text()
FAILING_LINE = 9

# mod10.sv counts 0..9 and wraps: `count <= 9` holds and is 1-inductive; the cover on 7 is
# reached in step 7 (count starts at 0), the one on 12 never.
MOD10 = (FIXTURES / "mod10.sv").read_text()

# Counts 0..99 and wraps: `c != 200` holds, but from an arbitrary state (c = 190) it fails
# after 10 steps, so it is not 10-inductive: k-induction at depth 10 cannot decide, PDR can.
NOT_INDUCTIVE = """module wrap100 (input logic clk);
  reg [7:0] c = 8'd0;
  always @(posedge clk) c <= (c == 8'd99) ? 8'd0 : c + 8'd1;
`ifdef FORMAL
  always @(*) assert (c != 8'd200);
`endif
endmodule
"""

# Two assumptions that cannot both hold: without a check every assertion passes vacuously.
CONTRADICTION = """module u (input logic clk, input logic a, output logic q);
  always_ff @(posedge clk) q <= a;
`ifdef FORMAL
  always @(*) assume (a);
  always @(*) assume (!a);
  always @(*) assert (q == 1'b0 && q == 1'b1);
`endif
endmodule
"""

SMALL = "module counter(input clk, output reg [3:0] q = 0);\n  always @(posedge clk) q <= q + 1;\nendmodule\n"
# 2,100 XOR gates after synthesis: over the schematic's cap of 500 cells.
WIDE = "module wide(input [2099:0] a, b, output [2099:0] y);\n  assign y = a ^ b;\nendmodule\n"


@pytest.fixture(scope="module")
def queues(emulator: Any) -> Iterator[Queues]:
    with sandboxed_queues("formal") as q:
        yield q


def _run(api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues, job_type: str,
         config: dict[str, Any]) -> dict[str, Any]:
    from runner.worker import RunnerSettings, Worker

    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": job_type, "config": config})
    assert reply.status == 201, reply.body
    settings = dataclasses.replace(RunnerSettings.from_queue(queues.url), wait_seconds=1)
    assert Worker(settings).poll_once() == 1
    job = api.get(f"/api/v1/projects/{project['id']}/jobs/{reply.json['id']}", token=owner.token)
    return dict(job.json)


def _project(api: Api, owner: UserCtx, files: dict[str, str]) -> dict[str, Any]:
    project = make_project(api, owner)
    for path, text in files.items():
        make_file(api, owner, project["id"], path, text)
    return project


def _values(api: Api, owner: UserCtx, job: dict[str, Any], signal: str) -> list[list[Any]]:
    url = f"/api/v1/projects/{job['project_id']}/jobs/{job['id']}/waveform/values?signals={signal}"
    reply = api.get(url, token=owner.token)
    assert reply.status == 200, reply.body
    return list(reply.json["signals"][0]["changes"])


def _value_at(changes: list[list[Any]], t: int) -> str:
    return str([value for time, value in changes if time <= t][-1])


@pytest.mark.slow
@pytest.mark.parametrize("config", [{"mode": "bmc", "depth": 20}, {"mode": "prove", "depth": 20},
                                    {"mode": "prove", "engine": "abc_pdr"}])
def test_a_failing_assertion_reports_its_step_and_line_and_a_trace_with_the_failing_value(
        api: Api, owner: UserCtx, queues: Queues, config: dict[str, Any]) -> None:
    # GIVEN a counter whose assertion `count != 5` fails 6 steps after reset
    project = _project(api, owner, {"rtl/counter.sv": FAILING})
    # WHEN it is checked (bounded, by k-induction, by PDR)
    job = _run(api, owner, project, queues, "formal", {**config, "top": "counter"})
    # THEN the job failed at step 6 naming the assertion's file and line
    formal = job["summary"]["formal"]
    assert job["status"] == "failed", job["error_message"]
    assert (formal["result"], formal["step"]) == ("failed", 6), formal
    assert f"rtl/counter.sv:{FAILING_LINE}" in job["error_message"]
    assert [(p["file"], p["line"]) for p in formal["properties"]] == [("rtl/counter.sv", FAILING_LINE)]
    # AND the counterexample, read through the waveform API, shows count = 5 at step 6
    # (yosys-smtbmc's VCD: 10 time units per step) and 4 the step before
    changes = _values(api, owner, job, "counter.count")
    assert _value_at(changes, 6 * formal["trace_time_per_step"]) == "0101"
    assert _value_at(changes, 5 * formal["trace_time_per_step"]) == "0100"
    kinds = {a["kind"] for a in job["artifacts"]}
    assert {"waveform", "waveform_fst"} <= kinds


@pytest.mark.slow
@pytest.mark.parametrize("config", [{"mode": "prove", "depth": 4}, {"mode": "prove", "engine": "abc_pdr"},
                                    {"mode": "bmc", "depth": 30}])
def test_a_correct_design_passes(api: Api, owner: UserCtx, queues: Queues,
                                 config: dict[str, Any]) -> None:
    project = _project(api, owner, {"mod10.sv": MOD10})
    job = _run(api, owner, project, queues, "formal", config)
    assert job["status"] == "completed", (job["error_message"], job["steps"])
    formal = job["summary"]["formal"]
    assert formal["result"] == "passed" and formal["step"] is None, formal
    assert formal["message"] == {"bmc": "no assertion fails in steps 0..29 (bounded)",
                                 "prove": "proved by 4-induction" if config.get("depth") == 4
                                 else "proved by PDR (unbounded)"}[config["mode"]]
    # AND a passed check keeps no trace: the waveform API says why
    reply = api.get(f"/api/v1/projects/{project['id']}/jobs/{job['id']}/waveform", token=owner.token)
    assert reply.status == 404 and "formal check passed" in reply.json["detail"]


@pytest.mark.slow
def test_a_true_property_that_is_not_k_inductive_is_unknown_and_pdr_proves_it(
        api: Api, owner: UserCtx, queues: Queues) -> None:
    project = _project(api, owner, {"wrap100.sv": NOT_INDUCTIVE})
    job = _run(api, owner, project, queues, "formal", {"mode": "prove", "depth": 10})
    formal = job["summary"]["formal"]
    assert job["status"] == "failed"
    assert formal["result"] == "unknown", formal
    assert "not 10-inductive" in formal["message"] and "wrap100.sv:5" in formal["message"]
    proved = _run(api, owner, project, queues, "formal", {"mode": "prove", "engine": "abc_pdr"})
    assert proved["status"] == "completed" and proved["summary"]["formal"]["result"] == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bmc", "prove"])
def test_contradictory_assumptions_are_an_error_not_a_vacuous_pass(
        api: Api, owner: UserCtx, queues: Queues, mode: str) -> None:
    project = _project(api, owner, {"u.sv": CONTRADICTION})
    job = _run(api, owner, project, queues, "formal", {"mode": mode})
    assert job["status"] == "failed"
    formal = job["summary"]["formal"]
    assert (formal["result"], formal["step"]) == ("error", 0), formal
    assert job["error_message"] == (f"formal {mode}: error: the assumptions contradict each other "
                                    "by step 0: every assertion would pass vacuously")


@pytest.mark.slow
def test_cover_reaches_its_target_and_the_trace_shows_it(api: Api, owner: UserCtx,
                                                         queues: Queues) -> None:
    project = _project(api, owner, {"mod10.sv": MOD10})
    job = _run(api, owner, project, queues, "formal", {"mode": "cover", "depth": 12})
    assert job["status"] == "completed", job["error_message"]
    formal = job["summary"]["formal"]
    [cover] = formal["properties"]
    assert (cover["kind"], cover["status"], cover["step"], cover["line"]) == ("cover", "reached", 7, 8)
    changes = _values(api, owner, job, "mod10.count")
    assert _value_at(changes, 7 * formal["trace_time_per_step"]) == "0111"
    # AND a depth too short to reach it fails naming the cover
    short = _run(api, owner, project, queues, "formal", {"mode": "cover", "depth": 5})
    assert short["status"] == "failed"
    assert short["error_message"].endswith("not reached within 5 steps: mod10.sv:8")


@pytest.mark.parametrize(("config", "detail"), [
    ({"depth": 0}, "config.depth: Input should be greater than or equal to 1"),
    ({"depth": 10**6}, "config.depth: Input should be less than or equal to 1000"),
    ({"depth": "20; rm -rf /"}, "config.depth: Input should be a valid integer"),
    ({"engine": "smtbmc -s sh"}, "config.engine: Input should be 'smtbmc' or 'abc_pdr'"),
    ({"engine": "abc_pdr", "mode": "bmc"}, "engine 'abc_pdr' runs mode prove only, not 'bmc'"),
    ({"mode": "live"}, "config.mode: Input should be 'bmc', 'prove' or 'cover'"),
    ({"top": "-p shell"}, "config.top: must be a Verilog identifier"),
    ({"top": "counter\nshell ls"}, "config.top: must be a Verilog identifier"),
    ({"sby": "[script]\n!rm -rf /"}, "config.sby: Extra inputs are not permitted"),
    ({"script": "shell"}, "config.script: Extra inputs are not permitted"),
    ({"files": ["../etc/passwd.v"]}, "config.files.0: must not contain '.' or '..'"),
    ({"files": ["-s.v"]}, "config.files.0: segment '-s.v' must not start with '-'"),
    ({"defines": {"X": "1; shell"}}, "config.defines: value of 'X' must be a token"),
])
def test_hostile_formal_configs_are_refused_and_nothing_is_stored(
        api: Api, owner: UserCtx, config: dict[str, Any], detail: str) -> None:
    project = make_project(api, owner)
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": "formal", "config": config})
    assert reply.status == 422, reply.body
    assert detail in reply.json["detail"]
    listed = api.get(f"/api/v1/projects/{project['id']}/jobs", token=owner.token)
    assert listed.status == 200 and listed.json == []


def test_schematic_must_be_a_boolean(api: Api, owner: UserCtx) -> None:
    project = make_project(api, owner)
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": "synthesis", "config": {"schematic": "svg; rm"}})
    assert reply.status == 422 and "config.schematic" in reply.json["detail"], reply.body


@pytest.mark.slow
@pytest.mark.parametrize("family", ["generic", "ice40"])
def test_a_small_designs_schematic_names_its_cells(api: Api, owner: UserCtx, queues: Queues,
                                                   family: str) -> None:
    project = _project(api, owner, {"counter.v": SMALL})
    job = _run(api, owner, project, queues, "synthesis", {"schematic": True, "family": family})
    assert job["status"] == "completed", job["error_message"]
    assert job["summary"]["schematic"]["drawn"] is True
    base = f"/api/v1/projects/{project['id']}/jobs/{job['id']}/artifacts"
    stat = api.get(f"{base}/stat.json", token=owner.token).json
    link = api.get(f"{base}/schematic.svg?presign=1", token=owner.token)
    assert link.status == 200, link.body
    import requests

    svg = requests.get(link.json["url"], timeout=30).text
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    # THEN every cell type synthesis made (as stat.json counts them) is named in the drawing,
    # as many times as there are cells of it
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for cell_type, count in stat["cells_by_type"].items():
        assert labels.count(cell_type) == count, (cell_type, labels)
    assert any(a["name"] == "schematic.svg" and a["mime_type"] == "image/svg+xml"
               for a in job["artifacts"])


@pytest.mark.slow
def test_a_large_designs_schematic_is_not_drawn_and_says_why(api: Api, owner: UserCtx,
                                                             queues: Queues) -> None:
    project = _project(api, owner, {"wide.v": WIDE})
    job = _run(api, owner, project, queues, "synthesis", {"schematic": True})
    # THEN the synthesis stands, without a schematic, and the job says why
    assert job["status"] == "completed", job["error_message"]
    assert not any(a["kind"] == "schematic" for a in job["artifacts"])
    schematic = job["summary"]["schematic"]
    assert schematic["drawn"] is False and schematic["cells"] == 2100
    assert schematic["reason"] == ("not drawn: the design has 2,100 cells, over the schematic cap "
                                   "of 500; synthesise a submodule (config.top) to see it")
    assert "schematic" not in {s["name"] for s in job["steps"]}
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job['id']}/logs", token=owner.token)
    assert "[a6hub] schematic not drawn: the design has 2,100 cells" in logs.json["logs"]


@pytest.mark.slow
@pytest.mark.parametrize("reach", ['initial $readmemh("/etc/passwd", mem);', '`include "/etc/passwd"'])
def test_a_formal_model_cannot_read_host_files(api: Api, owner: UserCtx, queues: Queues,
                                               reach: str) -> None:
    # GIVEN a design whose elaboration (Yosys reads memory files and includes itself) names a
    # host file
    design = ("module m (input logic clk);\n  reg [7:0] mem [0:15];\n  " + reach + "\n"
              "  always @(*) assert (mem[0] == mem[0]);\nendmodule\n")
    project = _project(api, owner, {"m.sv": design})
    job = _run(api, owner, project, queues, "formal", {"mode": "bmc", "depth": 2})
    # THEN the model step fails: the sandbox has no /etc/passwd, and nothing of it is shown
    assert job["status"] == "failed", job["summary"].get("formal")
    assert job["error_message"].startswith("model failed"), job["error_message"]
    assert re.search(r"Can(?: not|'t) open (?:include )?file `/etc/passwd", job["error_message"])
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job['id']}/logs", token=owner.token)
    assert "root:" not in logs.json["logs"]
