"""The waveform API on picorv32's testbench_ez (+vcd) run by a real runner (in-process worker,
real sandbox and tools), checked against the job's VCD parsed with vcdvcd, a different library
from the API's (pywellen on the FST copy).

The bad-input tests use a small stored waveform job and need no runner.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.conftest import Api, UserCtx, make_file, make_project
from tests.jobs_support import Queues, sandboxed_queues
from tests.waveform_support import (
    VcdOracle,
    first_difference,
    make_small_fst,
    picorv32_dir,
    picorv32_testbench,
    store_waveform_job,
)

SIGNALS = ["testbench.clk", "testbench.mem_addr", "testbench.mem_rdata", "testbench.mem_wdata",
           "testbench.uut.mem_valid", "testbench.uut.reg_pc", "testbench.uut.cpu_state",
           "testbench.trap"]


@dataclasses.dataclass
class Run:
    project: dict[str, Any]
    job_id: int
    oracle: VcdOracle

    def url(self, suffix: str) -> str:
        return f"/api/v1/projects/{self.project['id']}/jobs/{self.job_id}/waveform{suffix}"


@pytest.fixture(scope="module")
def queues(emulator: Any) -> Iterator[Queues]:
    with sandboxed_queues("waves") as q:
        yield q


def _run_job(api: Api, owner: UserCtx, project: dict[str, Any], queues: Queues,
             tmp: Path) -> Run:
    from runner.worker import RunnerSettings, Worker

    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": "simulation",
                                "config": {"testbench": "testbench_ez.v", "waveform": True}})
    assert reply.status == 201, reply.body
    job_id = int(reply.json["id"])
    settings = dataclasses.replace(RunnerSettings.from_queue(queues.url), wait_seconds=1)
    worker = Worker(settings)
    assert worker.poll_once() == 1
    job = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}", token=owner.token).json
    assert job["status"] == "completed", (job["error_message"], job["steps"])
    vcd = next(a for a in job["artifacts"] if a["kind"] == "waveform")
    link = api.get(f"/api/v1/projects/{project['id']}/jobs/{job_id}/artifacts/{vcd['name']}"
                   "?presign=1", token=owner.token)
    path = tmp / f"{job_id}.vcd"
    path.write_bytes(requests.get(link.json["url"], timeout=30).content)
    return Run(project, job_id, VcdOracle(path))


@pytest.fixture(scope="module")
def runs(api: Api, owner: UserCtx, queues: Queues,
         tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """The same testbench before and after a change (the counter adds 2 instead of 1)."""
    tmp = tmp_path_factory.mktemp("waves")
    project = make_project(api, owner, name="picorv32 waves", visibility="public")
    make_file(api, owner, project["id"], "picorv32.v", (picorv32_dir() / "picorv32.v").read_text())
    tb = make_file(api, owner, project["id"], "testbench_ez.v", picorv32_testbench(1))
    before = _run_job(api, owner, project, queues, tmp)
    changed = api.put(f"/api/v1/projects/{project['id']}/files/{tb['id']}", token=owner.token,
                      json_body={"content": picorv32_testbench(2)})
    assert changed.status == 200, changed.body
    after = _run_job(api, owner, project, queues, tmp)
    return before, after


@pytest.mark.slow
def test_summary_and_signal_list_match_the_vcd(api: Api, owner: UserCtx,
                                               runs: tuple[Run, Run]) -> None:
    run = runs[0]
    # WHEN the summary and every page of the signal list are read
    summary = api.get(run.url(""), token=owner.token)
    assert summary.status == 200, summary.body
    listed: list[dict[str, Any]] = []
    url: str | None = run.url("/signals?limit=50")
    while url:
        page = api.get(url, token=owner.token)
        assert page.status == 200, page.body
        listed += page.json
        link = page.headers.get("link") or page.headers.get("Link")
        url = link[1:link.index(">")] if link else None
    # THEN they describe the VCD: its end time, every variable with its width
    assert summary.json["format"] == "fst" and summary.json["timescale"] == "1ps"
    assert summary.json["end_time"] == run.oracle.end_time
    assert summary.json["signal_count"] == len(run.oracle.names) == len(listed)
    assert {s["path"]: s["width"] for s in listed} == {
        p: run.oracle.width(p) for p in run.oracle.names}
    assert [s["path"] for s in listed] == sorted(s["path"] for s in listed)
    valid = next(s for s in listed if s["path"] == "testbench.uut.mem_valid")
    assert (valid["name"], valid["scope"], valid["kind"]) == ("mem_valid", "testbench.uut", "reg")
    # AND scope and search narrow the list
    in_uut = api.get(run.url("/signals?scope=testbench.uut&limit=100"), token=owner.token).json
    assert in_uut and all(s["path"].startswith("testbench.uut.") for s in in_uut)
    found = api.get(run.url("/signals?search=MEM_VALID"), token=owner.token).json
    assert {s["path"] for s in found} == {p for p in run.oracle.names if "mem_valid" in p}
    assert len(found) >= 3


@pytest.mark.slow
@pytest.mark.parametrize(("start", "end"), [(0, None), (1_000_000, 1_400_000),
                                            (5_123_456, 5_300_000), (10_990_000, 11_000_000)])
def test_values_in_windows_match_the_vcd(api: Api, owner: UserCtx, runs: tuple[Run, Run],
                                         start: int, end: int | None) -> None:
    run = runs[0]
    query = f"?signals={','.join(SIGNALS)}&start={start}" + (f"&end={end}" if end else "")
    reply = api.get(run.url(f"/values{query}&max_changes=200000"), token=owner.token)
    assert reply.status == 200, reply.body
    hi = end if end is not None else run.oracle.end_time
    assert (reply.json["start"], reply.json["end"]) == (start, hi)
    for signal in reply.json["signals"]:
        assert signal["truncated"] is False
        assert signal["width"] == run.oracle.width(signal["path"])
        assert signal["changes"] == run.oracle.window(signal["path"], start, hi), signal["path"]


@pytest.mark.slow
def test_reduced_series_keeps_every_transition_visible(api: Api, owner: UserCtx,
                                                       runs: tuple[Run, Run]) -> None:
    run = runs[0]
    # GIVEN the clock's ~2200 edges asked for with room for 101 changes
    reply = api.get(run.url("/values?signals=testbench.clk&max_changes=101"), token=owner.token)
    [clk] = reply.json["signals"]
    truth = run.oracle.changes("testbench.clk")
    # THEN the series is marked truncated and within the limit, holds only real changes,
    assert clk["truncated"] is True and len(clk["changes"]) <= 101
    assert all(tuple(c) in set(truth) for c in clk["changes"][1:])
    # AND no real change is further than one bucket (span / 50) from a kept one
    bucket = run.oracle.end_time / 50
    kept = [t for t, _ in clk["changes"]]
    assert all(min(abs(t - k) for k in kept) <= bucket for t, _ in truth)


@pytest.mark.slow
def test_search_finds_the_first_time_a_value_is_held(api: Api, owner: UserCtx,
                                                     runs: tuple[Run, Run]) -> None:
    run = runs[0]
    cases = [("testbench.mem_addr", "0x3fc", 0), ("testbench.mem_addr", "0x3fc", 3_000_000),
             ("testbench.mem_wdata", "0d5", 0), ("testbench.trap", "1", 0),
             ("testbench.uut.mem_valid", "1", 7_777_777), ("testbench.mem_rdata", "x", 0)]
    for path, value, after in cases:
        reply = api.get(run.url(f"/search?signal={path}&value={quote(value)}&after={after}"),
                        token=owner.token)
        assert reply.status == 200, reply.body
        width = run.oracle.width(path)
        bits = reply.json["value"]
        assert len(bits) == width
        expected = run.oracle.first_at_or_after(path, bits, after)
        assert reply.json["time"] == expected, (path, value, after)
    # AND the counter's fifth store is found at all (the search is not trivially null)
    assert api.get(run.url("/search?signal=testbench.mem_wdata&value=0d5"),
                   token=owner.token).json["time"] is not None


@pytest.mark.slow
def test_compare_names_the_first_difference_of_two_runs(api: Api, owner: UserCtx,
                                                        runs: tuple[Run, Run]) -> None:
    before, after = runs
    reply = api.get(before.url(f"/compare?other_job={after.job_id}&signals={','.join(SIGNALS)}"),
                    token=owner.token)
    assert reply.status == 200, reply.body
    got = {s["path"]: s for s in reply.json["signals"]}
    for path in SIGNALS:
        expected = first_difference(before.oracle, after.oracle, path)
        assert got[path]["first_difference"] == expected, path
        if expected is not None:
            assert got[path]["value"] == before.oracle.value_at(path, expected)
            assert got[path]["other_value"] == after.oracle.value_at(path, expected)
    # The runs differ (the instruction word fetched) and agree on the clock.
    assert got["testbench.mem_rdata"]["first_difference"] is not None
    assert got["testbench.clk"]["first_difference"] is None


@pytest.mark.slow
def test_svg_draws_the_signals_without_a_token_on_a_public_project(
        api: Api, runs: tuple[Run, Run]) -> None:
    run = runs[0]
    reply = api.get(run.url(".svg") + "?signals=testbench.clk,testbench.mem_addr,testbench.mem_rdata"
                    "&start=1000000&end=1300000")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(reply.body)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "testbench.mem_addr" in texts
    # A bus value visible in the window is written in hex inside its box.
    shown = {format(int(v, 2), "x") for _, v in run.oracle.changes("testbench.mem_addr")
             if set(v) <= {"0", "1"}}
    assert shown & set(texts)
    assert root.iter("{http://www.w3.org/2000/svg}polyline")  # the clock's line


# --- bad input, on a small stored waveform ------------------------------------------------------


@pytest.fixture(scope="module")
def small(api: Api, owner: UserCtx, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = make_project(api, owner, name="small waves")
    vcd, fst = make_small_fst(tmp_path_factory.mktemp("small"))
    job_id = store_waveform_job(project["id"], owner.id, vcd, fst)
    return {"project": project, "job": job_id,
            "base": f"/api/v1/projects/{project['id']}/jobs/{job_id}/waveform"}


@pytest.mark.parametrize(("suffix", "status", "detail"), [
    ("/values?signals=tb.nope", 422, "no signal named 'tb.nope'"),
    ("/values?signals=tb.count&start=999999999", 422, "past the end"),
    ("/values?signals=tb.count&start=abc", 422, "start must be an integer"),
    ("/values?signals=tb.count&start=50&end=10", 422, "is after end"),
    ("/values?signals=tb.count&max_changes=1", 422, "max_changes"),
    ("/values", 422, "signals is required"),
    ("/values?signals=" + ",".join(f"tb.s{i}" for i in range(65)), 422, "at most 64"),
    ("/search?signal=tb.count&value=12", 422, "not binary"),
    ("/search?signal=tb.count&value=0x1ff", 422, "wider than the signal"),
    ("/search?signal=tb.count", 422, "value is required"),
    ("/signals?scope=tb.nowhere", 422, "no scope named"),
    ("/signals?limit=0", 422, "limit"),
    ("/compare?other_job=abc&signals=tb.count", 422, "other_job must be a job id"),
    (".svg?signals=tb.count&width=10", 422, "width must be between"),
])
def test_bad_input_is_a_4xx_with_detail(api: Api, owner: UserCtx, small: dict[str, Any],
                                        suffix: str, status: int, detail: str) -> None:
    reply = api.get(small["base"] + suffix, token=owner.token)
    assert reply.status == status, reply.body
    assert detail in reply.json["detail"]


def test_small_waveform_values_and_search(api: Api, owner: UserCtx, small: dict[str, Any],
                                          tmp_path: Path) -> None:
    vcd, _ = make_small_fst(tmp_path)
    oracle = VcdOracle(vcd)
    reply = api.get(small["base"] + "/values?signals=tb.count,tb.clk&start=0", token=owner.token)
    assert reply.status == 200, reply.body
    for signal in reply.json["signals"]:
        assert signal["changes"] == oracle.window(signal["path"], 0, oracle.end_time)
    # x is kept as the tools print it, all 8 bits of it
    assert reply.json["signals"][0]["changes"][0] == [0, "xxxxxxxx"]
    found = api.get(small["base"] + "/search?signal=tb.count&value=0d3", token=owner.token)
    assert found.json["time"] == oracle.first_at_or_after("tb.count", "00000011", 0)
    never = api.get(small["base"] + "/search?signal=tb.count&value=0xff", token=owner.token)
    assert never.json["time"] is None
    # AND the SVG shows the unknown span (red, its binary x string as the label) and the values
    svg = api.get(small["base"] + ".svg?signals=tb.clk,tb.count&start=0&end=40000",
                  token=owner.token)
    assert svg.status == 200, svg.body
    root = ET.fromstring(svg.body)
    shapes = list(root.iter("{http://www.w3.org/2000/svg}polygon"))
    assert any(p.get("stroke") == "#d62728" for p in shapes)  # the x span of tb.count
    texts = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"xxxxxxxx", "0", "1", "2"} <= texts


def test_a_job_without_a_waveform_is_404_with_the_reason(api: Api, owner: UserCtx,
                                                         small: dict[str, Any],
                                                         queues: Queues) -> None:
    project = small["project"]
    reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                     json_body={"job_type": "lint", "config": {}})
    assert reply.status == 201, reply.body
    missing = api.get(f"/api/v1/projects/{project['id']}/jobs/{reply.json['id']}/waveform",
                      token=owner.token)
    assert missing.status == 404
    assert "only simulations have waveforms" in missing.json["detail"]
    unknown = api.get(f"/api/v1/projects/{project['id']}/jobs/999999999/waveform",
                      token=owner.token)
    assert unknown.status == 404 and unknown.json["detail"] == "Job not found"


def test_a_window_past_the_read_budget_is_refused_not_read_whole(tmp_path: Path) -> None:
    # GIVEN the small trace (its clock changes every 5 ns) and a read budget of 3 changes
    from chalicelib.errors import Unprocessable
    from chalicelib.services import waveforms

    vcd, fst = make_small_fst(tmp_path)
    oracle = VcdOracle(vcd)
    trace = waveforms.Trace(job=None, path=fst, start_time=0,  # type: ignore[arg-type]
                            end_time=oracle.end_time)
    seen: list[tuple[str, int, str]] = []
    # WHEN a window over the whole trace is read within the budget, nothing is refused
    waveforms.stream_window(trace, ["tb.clk"], 0, oracle.end_time,
                            lambda p, t, v: seen.append((p, t, v)), budget=10_000)
    assert len(seen) > 3
    # THEN over the budget the same read is a 422 that says what to do
    with pytest.raises(Unprocessable) as refused:
        waveforms.stream_window(trace, ["tb.clk"], 0, oracle.end_time,
                                lambda p, t, v: None, budget=3)
    assert "ask for a shorter window" in refused.value.detail
    # AND the routes' reads are bounded by default (/values, .svg and /search pass no budget)
    import inspect

    default = inspect.signature(waveforms.stream_window).parameters["budget"].default
    assert default == waveforms.MAX_READ_CHANGES


def test_compare_stops_at_its_read_budget_and_says_so(api: Api, owner: UserCtx,
                                                      small: dict[str, Any], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN two jobs with the same small trace, and a compare budget of 5 changes
    from chalicelib.services import waveforms

    vcd, fst = make_small_fst(tmp_path)
    other = store_waveform_job(small["project"]["id"], owner.id, vcd, fst)
    monkeypatch.setattr(waveforms, "COMPARE_READ_CHANGES", 5)
    # WHEN two signals are compared (the in-process client runs this module)
    reply = api.get(small["base"] + f"/compare?other_job={other}&signals=tb.clk,tb.count",
                    token=owner.token)
    # THEN the first is reported as agreeing as far as the budget went, the second not compared
    assert reply.status == 200, reply.body
    first, second = reply.json["signals"]
    assert first["first_difference"] is None and "comparing further" in first["reason"]
    assert second["first_difference"] is None and "not compared" in second["reason"]
    # AND with the default budget they are compared whole and agree
    monkeypatch.undo()
    whole = api.get(small["base"] + f"/compare?other_job={other}&signals=tb.clk,tb.count",
                    token=owner.token)
    assert [s["reason"] for s in whole.json["signals"]] == [None, None]
