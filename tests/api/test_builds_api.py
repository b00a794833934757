"""The web client's build routes (/api/v1/builds/...): targets, settings, who may do what, a build
started through them and followed to a bitstream by a real runner."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Api, UserCtx, add_member, make_file, make_project
from tests.jobs_support import Queues, api_queue, make_queues, wait_for

DATA = Path(__file__).parents[1] / "data" / "build"
FORM = {"design_name": "blinky", "pdk": "ice40-up5k-sg48", "clock_period": "83.333"}


def base(project_id: int) -> str:
    return f"/api/v1/builds/{project_id}/build"


def blinky_project(api: Api, owner: UserCtx, visibility: str = "private") -> int:
    pid = int(make_project(api, owner, visibility=visibility)["id"])
    make_file(api, owner, pid, "rtl/blinky.v", (DATA / "blinky.v").read_text())
    make_file(api, owner, pid, "board/icebreaker.pcf", (DATA / "blinky.pcf").read_text())
    return pid


def test_presets_and_targets_name_this_deployments_fpga_devices(api: Api) -> None:
    presets = api.get("/api/v1/builds/presets")
    assert presets.status == 200
    up5k = presets.json["ice40-up5k-sg48"]
    assert up5k["config"]["pdk"] == "ice40-up5k-sg48"
    assert float(up5k["config"]["clock_period"]) == pytest.approx(1000 / 12, abs=0.001)
    assert "UP5K" in up5k["name"]
    targets = api.get("/api/v1/builds/pdks")
    assert targets.status == 200
    assert targets.json == list(presets.json)
    assert "sky130A" not in targets.json


@pytest.mark.parametrize("pdk", ["sky130A", "gf180mcuD"])
def test_an_asic_pdk_is_refused_naming_the_targets_here_and_nothing_is_stored(
        api: Api, owner: UserCtx, pdk: str) -> None:
    pid = blinky_project(api, owner)
    for method, path, body in (("PUT", f"{base(pid)}/config", {**FORM, "pdk": pdk}),
                               ("POST", base(pid), {"config": {**FORM, "pdk": pdk}})):
        reply = api.request(method, path, json_body=body, token=owner.token)
        assert reply.status == 422, reply.body
        assert f"config.pdk {pdk!r} is an ASIC PDK" in reply.json["detail"]
        assert "ice40-up5k-sg48" in reply.json["detail"]
    assert api.get(f"{base(pid)}/config", token=owner.token).json["pdk"] == "ice40-up5k-sg48"
    assert api.get(f"{base(pid)}/config", token=owner.token).json["design_name"] == "top"
    assert api.get(f"{base(pid)}/status", token=owner.token).status == 404
    assert api.get(f"/api/v1/projects/{pid}/jobs", token=owner.token).json == []


def test_settings_are_validated_saved_and_read_back(api: Api, owner: UserCtx) -> None:
    pid = blinky_project(api, owner)
    default = api.get(f"{base(pid)}/config", token=owner.token)
    assert default.status == 200 and default.json["verilog_files"] == ["rtl/blinky.v"]
    bad = api.put(f"{base(pid)}/config", token=owner.token, json_body={**FORM, "design_name": "a b"})
    assert bad.status == 422
    assert "config.design_name: must be a Verilog identifier" in bad.json["detail"]
    saved = api.put(f"{base(pid)}/config", token=owner.token,
                    json_body={**default.json, **FORM, "constraints": "board/icebreaker.pcf"})
    assert saved.status == 200, saved.body
    assert saved.json == {"message": "Build configuration saved", "design_name": "blinky",
                          "pdk": "ice40-up5k-sg48"}
    again = api.get(f"{base(pid)}/config", token=owner.token).json
    assert again["design_name"] == "blinky" and again["constraints"] == "board/icebreaker.pcf"


def test_a_build_without_a_constraint_file_is_refused(api: Api, owner: UserCtx) -> None:
    pid = int(make_project(api, owner)["id"])
    make_file(api, owner, pid, "rtl/blinky.v", (DATA / "blinky.v").read_text())
    reply = api.post(base(pid), token=owner.token, json_body={"config": FORM})
    assert reply.status == 422
    assert reply.json["detail"] == ("config.constraints: the project has no .pcf file; "
                                    "add the pin constraints")


def test_a_started_build_is_a_build_job_with_the_mapped_config(api: Api, owner: UserCtx,
                                                             build_queue: Queues) -> None:
    pid = blinky_project(api, owner)
    reply = api.post(base(pid), token=owner.token, json_body={"config": FORM})
    assert reply.status == 201, reply.body
    job = reply.json
    assert job["job_type"] == "build" and job["status"] == "pending"
    assert {k: job["config"][k] for k in ("family", "device", "package", "top", "constraints")} == {
        "family": "ice40", "device": "up5k", "package": "sg48", "top": "blinky",
        "constraints": "board/icebreaker.pcf"}
    assert job["config"]["frequency_mhz"] == pytest.approx(12, abs=0.001)
    status = api.get(f"{base(pid)}/status", token=owner.token)
    assert status.status == 200
    assert status.json["job_id"] == job["id"] and status.json["status"] == "pending"
    assert status.json["progress_data"]["progress_percent"] == 0
    assert [s["name"] for s in status.json["progress_data"]["steps_info"]] == [
        "synthesis", "place_route", "bitstream"]


# --- who may do what (the rows tests/test_authz_matrix.py lists as covered here) ----------------

ROLES = ("owner", "editor", "viewer", "stranger", "anonymous")
RANK = {"owner": 3, "editor": 2, "viewer": 1}


@pytest.fixture(scope="module")
def build_queue(emulator: Any) -> Iterator[Queues]:
    q = make_queues(max_receives=3, visibility=30)
    with api_queue(q.url):
        yield q


@pytest.mark.parametrize("visibility", ["private", "public"])
def test_build_routes_per_caller(api: Api, owner: UserCtx, editor: UserCtx, viewer: UserCtx,
                                 stranger: UserCtx, visibility: str, build_queue: Queues) -> None:
    pid = blinky_project(api, owner, visibility)
    add_member(api, owner, pid, editor, "editor")
    add_member(api, owner, pid, viewer, "viewer")
    assert api.post(base(pid), token=owner.token, json_body={"config": FORM}).status == 201
    users = {"owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger}
    wrong = []
    for role in ROLES:
        token = users[role].token if role in users else None
        for method, path, body, need, ok in (
                ("GET", f"{base(pid)}/config", None, 1, 200),
                ("GET", f"{base(pid)}/status", None, 1, 200),
                ("PUT", f"{base(pid)}/config", {**FORM, "design_name": f"by_{role}"}, 2, 200),
                ("POST", base(pid), {"config": FORM}, 2, 201)):
            if method != "GET" and role == "anonymous":
                expected = 401
            elif role not in RANK and visibility == "private":
                expected = 404
            else:
                expected = ok if RANK.get(role, 1) >= need else 403
            reply = api.request(method, path, json_body=body, token=token)
            if reply.status != expected or (expected >= 400 and not reply.json.get("detail")):
                wrong.append(f"{role} {method} {path}: expected {expected}, got {reply.status}")
    assert not wrong, "\n".join(wrong)
    # THEN only the owner's and the editor's saves took effect, and only their builds exist
    saved = api.get(f"{base(pid)}/config", token=owner.token).json["design_name"]
    assert saved == "blinky"  # the editor's POST after its PUT saved the form it built
    jobs = api.get(f"/api/v1/projects/{pid}/jobs", token=owner.token).json
    assert len(jobs) == 3 and {j["created_by"] for j in jobs} == {owner.id, editor.id}


# --- a build through the routes, run by a real runner -------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_build_started_through_the_client_routes_ends_with_a_bitstream(
        api: Api, owner: UserCtx, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.runner.test_jobs_e2e import RunnerProcess

    queues = make_queues(max_receives=3, visibility=30)
    with api_queue(queues.url):
        runner = RunnerProcess(queues, tmp_path_factory.mktemp("build-runner") / "runner.log")
        try:
            pid = blinky_project(api, owner, "public")
            started = api.post(base(pid), token=owner.token, json_body={"config": FORM})
            assert started.status == 201, started.body
            status = wait_for(
                lambda: (s := api.get(f"{base(pid)}/status").json)["status"] in ("completed", "failed")
                and s, timeout=300, every=0.5, what="the build to end")
        finally:
            assert runner.stop() == 0, runner.output()[-3000:]
    # THEN an anonymous reader of the public project sees every step done, the log and the result
    assert status["status"] == "completed", status["logs"][-2000:]
    progress = status["progress_data"]
    assert progress["progress_percent"] == 100
    assert progress["completed_steps"] == ["synthesis", "place_route", "bitstream"]
    assert "$ nextpnr-ice40 --up5k --package sg48" in status["logs"]
    result = status["result"]
    assert result["timing_met"] is True and result["clocks"][0]["clock"] == "clk"
    assert result["utilisation"]["SB_IO"] == {"used": 2, "available": 96, "percent": 2.1}
    # AND the bitstream downloads and decodes as an UP5K's
    link = api.get(f"/api/v1/projects/{pid}/jobs/{started.json['id']}/artifacts/bitstream.bin")
    assert link.status == 200, link.body
    bits = requests.get(link.json["url"], timeout=30).content
    assert len(bits) == result["bitstream_bytes"]
    path = tmp_path_factory.mktemp("bits") / "b.bin"
    path.write_bytes(bits)
    unpacked = subprocess.run(["iceunpack", str(path), "/dev/stdout"], check=True,
                              capture_output=True, text=True).stdout
    assert ".device 5k" in unpacked


def test_deleting_the_project_removes_its_build_settings(api: Api, owner: UserCtx) -> None:
    from chalicelib.models.builds import BuildSettings

    pid = blinky_project(api, owner)
    assert api.put(f"{base(pid)}/config", token=owner.token, json_body=FORM).status == 200
    assert BuildSettings.get(pid).config["design_name"] == "blinky"
    assert api.delete(f"/api/v1/projects/{pid}", token=owner.token).status == 204
    with pytest.raises(BuildSettings.DoesNotExist):
        BuildSettings.get(pid)


def test_progress_of_a_running_build_follows_the_commands_in_its_log() -> None:
    from chalicelib.models.jobs import Job
    from chalicelib.services.builds import _progress

    running = Job(1, 2, status="running")
    assert _progress(running, "") == ([], None)
    log = "[a6hub] note\n$ yosys -Q -s /job/gen/synth.ys\n...\n$ nextpnr-ice40 --up5k --package sg48\n"
    assert _progress(running, log) == (["synthesis"], "place_route")
    failed = Job(1, 2, status="failed", steps=[
        {"name": "synthesis", "argv": [], "exit_code": 0, "duration_s": 1.0},
        {"name": "place_route", "argv": [], "exit_code": 255, "duration_s": 0.5}])
    assert _progress(failed, log) == (["synthesis"], "place_route")


def test_status_follows_a_build_sent_to_the_jobs_route(api: Api, owner: UserCtx,
                                                       build_queue: Queues) -> None:
    pid = blinky_project(api, owner)
    config = {"family": "ice40", "device": "up5k", "package": "sg48", "top": "blinky",
              "constraints": "board/icebreaker.pcf"}
    # A simulation is not a build: still no build.
    make_file(api, owner, pid, "tb/blinky_tb.v", "module blinky_tb; initial $finish; endmodule\n")
    sim = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token,
                   json_body={"job_type": "simulation", "config": {"testbench": "tb/blinky_tb.v"}})
    assert sim.status == 201, sim.body
    assert api.get(f"{base(pid)}/status", token=owner.token).status == 404
    first = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token,
                     json_body={"job_type": "build", "config": config})
    assert first.status == 201, first.body
    status = api.get(f"{base(pid)}/status", token=owner.token)
    assert status.status == 200, status.body
    assert status.json["job_id"] == first.json["id"] and status.json["status"] == "pending"
    # THEN a form build, then another jobs-route build: status names the newest each time
    by_form = api.post(base(pid), token=owner.token, json_body={"config": FORM}).json["id"]
    assert api.get(f"{base(pid)}/status", token=owner.token).json["job_id"] == by_form
    latest = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token,
                      json_body={"job_type": "build", "config": config}).json["id"]
    assert api.get(f"{base(pid)}/status", token=owner.token).json["job_id"] == latest


def test_a_build_naming_a_constraints_file_the_commit_lacks_is_refused_at_submit(
        api: Api, owner: UserCtx, build_queue: Queues) -> None:
    pid = blinky_project(api, owner)
    config = {"family": "ice40", "device": "up5k", "package": "sg48", "top": "blinky",
              "constraints": "board/nope.pcf"}
    reply = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token,
                     json_body={"job_type": "build", "config": config})
    assert reply.status == 422, reply.body
    assert reply.json["detail"] == ("config.constraints: 'board/nope.pcf' is not a file of the "
                                    "project at the job's commit")
    assert api.get(f"/api/v1/projects/{pid}/jobs", token=owner.token).json == []
