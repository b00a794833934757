"""cocotb jobs through the API: submit-time validation (in-process), and end to end with a real
`python -m runner` (slow): per-test results on the job, the JUnit artifact, the waveform API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree

from tests.conftest import Api, UserCtx, make_file, make_project
from tests.jobs_support import Queues, queues_fixture
from tests.runner.test_jobs_e2e import RunnerProcess, artifact, logs_of, picorv32_dir, wait_status
from tests.runner.test_runner_cocotb import ADDER, TEST_ADDER

PICORV32_TESTS = Path(__file__).parents[1] / "fixtures" / "cocotb" / "picorv32_tests.py"


queues = queues_fixture(max_receives=3, visibility=10)


def jobs_url(project: dict[str, Any]) -> str:
    return f"/api/v1/projects/{project['id']}/jobs"


@pytest.fixture(scope="module")
def adder_project(api: Api, owner: UserCtx, queues: Queues) -> dict[str, Any]:
    """The adder and its test module under src/, as the web client's design page creates files."""
    project = make_project(api, owner, name="cocotb adder")
    make_file(api, owner, project["id"], "src/adder.v", ADDER)
    make_file(api, owner, project["id"], "src/test_adder.py", TEST_ADDER)
    return project


@pytest.mark.parametrize(("config", "needle"), [
    ({"toplevel": "adder", "test_modules": ["test_missing"]}, "no project file test_missing.py"),
    ({"toplevel": "adder", "test_modules": ["test_adder"], "simulator": "verilator"},
     "Verilator 5.036 or later"),
    ({"toplevel": "adder", "test_modules": ["json"]}, "standard library"),
    ({"toplevel": "adder"}, "config.test_modules"),
])
def test_bad_cocotb_submissions_are_422_and_store_nothing(
        api: Api, owner: UserCtx, queues: Queues, config: dict[str, Any], needle: str) -> None:
    # GIVEN a project holding an adder and its test module
    project = make_project(api, owner)
    make_file(api, owner, project["id"], "src/adder.v", ADDER)
    make_file(api, owner, project["id"], "src/test_adder.py", TEST_ADDER)
    before = queues.depth()
    # WHEN a cocotb job names a module the project lacks, verilator, or nothing to test
    reply = api.post(jobs_url(project), token=owner.token,
                     json_body={"job_type": "cocotb", "config": config})
    # THEN it is a 422 naming the fault, no job is stored and nothing is queued
    assert reply.status == 422, reply.body
    assert needle in reply.json["detail"]
    assert api.get(jobs_url(project), token=owner.token).json == []
    assert queues.depth() == before


def test_a_module_name_two_files_answer_is_422_naming_them(api: Api, owner: UserCtx,
                                                           queues: Queues) -> None:
    project = make_project(api, owner)
    make_file(api, owner, project["id"], "a/test_adder.py", TEST_ADDER)
    make_file(api, owner, project["id"], "b/test_adder.py", TEST_ADDER)
    reply = api.post(jobs_url(project), token=owner.token, json_body={
        "job_type": "cocotb", "config": {"toplevel": "adder", "test_modules": ["test_adder"]}})
    assert reply.status == 422
    assert "a/test_adder.py, b/test_adder.py" in reply.json["detail"]
    assert "'a.test_adder'" in reply.json["detail"]


def test_a_cocotb_job_is_accepted_with_its_normalised_config(
        api: Api, owner: UserCtx, adder_project: dict[str, Any], queues: Queues) -> None:
    reply = api.post(jobs_url(adder_project), token=owner.token, json_body={
        "job_type": "cocotb", "config": {"toplevel": "adder", "test_modules": ["test_adder"]}})
    assert reply.status == 201, reply.body
    job = reply.json
    assert job["job_type"] == "cocotb" and job["status"] == "pending"
    assert job["config"] == {"toplevel": "adder", "test_modules": ["test_adder"], "simulator": "icarus",
                             "waveform": False, "plusargs": [], "timescale": None, "files": None,
                             "defines": {}, "include_dirs": [], "language": "systemverilog"}
    assert job["tests"] is None


# --- end to end -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runner(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    process = RunnerProcess(queues, tmp_path_factory.mktemp("runner") / "runner.log")
    yield process
    assert process.stop() == 0, process.output()[-3000:]


@pytest.mark.slow
@pytest.mark.integration
def test_a_cocotb_job_end_to_end_shows_each_test_the_junit_xml_and_the_waveform(
        api: Api, owner: UserCtx, adder_project: dict[str, Any], runner: RunnerProcess) -> None:
    # GIVEN the adder project  WHEN a cocotb job with a waveform runs through the service
    reply = api.post(jobs_url(adder_project), token=owner.token, json_body={
        "job_type": "cocotb",
        "config": {"toplevel": "adder", "test_modules": ["test_adder"], "waveform": True}})
    assert reply.status == 201, reply.body
    job = wait_status(api, owner, adder_project, str(reply.json["id"]))
    job_id = job["id"]
    # THEN it failed on the failing test, with both tests on the job
    assert job["status"] == "failed", (job, logs_of(api, owner, adder_project, str(job_id)))
    assert "test_adder.claims_a_wrong_sum: AssertionError: sum was 15" in job["error_message"]
    assert [(t["name"], t["outcome"]) for t in job["tests"]] == [
        ("adds_small_numbers", "passed"), ("claims_a_wrong_sum", "failed")]
    assert job["summary"]["cocotb"]["failed"] == 1 and "tests" not in job["summary"]
    assert {i["path"] for i in job["inputs"]} >= {"src/adder.v", "src/test_adder.py"}
    # AND the JUnit XML can be downloaded
    junit = ElementTree.fromstring(artifact(api, owner, adder_project, str(job_id), "results.xml"))
    assert len(list(junit.iter("testcase"))) == 2
    # AND the waveform API reads its trace
    base = f"{jobs_url(adder_project)}/{job_id}/waveform"
    summary = api.get(base, token=owner.token)
    assert summary.status == 200, summary.body
    assert summary.json["signal_count"] >= 3
    values = api.get(f"{base}/values?signals=adder.sum&start=0&end={summary.json['end_time']}",
                     token=owner.token)
    assert values.status == 200, values.body
    assert [v for _, v in values.json["signals"][0]["changes"]][-2:] == ["00101", "01111"]


@pytest.mark.slow
@pytest.mark.integration
def test_cocotb_tests_of_picorv32_pass_through_the_service(
        api: Api, owner: UserCtx, queues: Queues, runner: RunnerProcess) -> None:
    # GIVEN picorv32 and a cocotb test module that models its memory
    project = make_project(api, owner, name="picorv32 cocotb")
    make_file(api, owner, project["id"], "rtl/picorv32.v", (picorv32_dir() / "picorv32.v").read_text())
    make_file(api, owner, project["id"], "tb/picorv32_tests.py", PICORV32_TESTS.read_text())
    # WHEN the cocotb job runs
    reply = api.post(jobs_url(project), token=owner.token, json_body={
        "job_type": "cocotb", "config": {"toplevel": "picorv32", "test_modules": ["picorv32_tests"]}})
    assert reply.status == 201, reply.body
    job = wait_status(api, owner, project, str(reply.json["id"]))
    # THEN both tests passed and the job completed
    assert job["status"] == "completed", (job, logs_of(api, owner, project, str(job["id"]))[-4000:])
    assert [(t["name"], t["outcome"]) for t in job["tests"]] == [
        ("fetches_nops_in_order", "passed"), ("traps_on_an_illegal_instruction", "passed")]
    assert all(t["sim_time_ns"] > 100 for t in job["tests"])
    assert [s["name"] for s in job["steps"]] == ["compile", "test"]
