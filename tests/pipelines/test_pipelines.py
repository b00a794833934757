"""The pipeline file (.a6hub.yml) and pipelines started by commits on main, without a runner.

The jobs of these pipelines are queued on a private queue nobody polls; a job's end is brought
about through the API (cancelling a pending job), which is the same completion path
(services/job_lifecycle.py) the runner takes. tests/test_pipelines_e2e.py runs them for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.jobs import COUNTER
from bench.jobs import COUNTER_TB as TB
from chalicelib.services.pipelines.spec import PipelineFileError, parse_pipeline
from tests.conftest import Api, UserCtx, make_file, make_project
from tests.jobs_support import api_queue, make_queues, wait_for

# The benches' counter and its testbench (module counter_tb, kept at tb/tb.v here).
PIPELINE = """\
jobs:
  sim:
    type: simulation
    config: {testbench: tb.v}
  synth:
    type: synthesis
    needs: [sim]
    config: {top: counter}
"""


# --- the file -----------------------------------------------------------------------------------


def test_the_minimal_form_parses_with_needs_after_what_they_need() -> None:
    spec = parse_pipeline(PIPELINE.encode())
    assert [j.name for j in spec.jobs] == ["sim", "synth"]
    assert spec.jobs[1].needs == ("sim",)
    # the config is normalised by the same model as POST .../jobs
    assert spec.jobs[0].config["simulator"] == "icarus"
    assert spec.jobs[1].config["family"] == "generic"
    assert spec.cancel_previous is False


def test_jobs_are_ordered_after_their_needs_whatever_the_file_order() -> None:
    spec = parse_pipeline(b"jobs:\n  c: {type: lint, needs: [b]}\n  b: {type: lint, needs: [a]}\n"
                          b"  a: {type: lint}\n")
    assert [j.name for j in spec.jobs] == ["a", "b", "c"]


REFUSED = [
    # (file, expected message fragments: each must appear in one error)
    ("jobs:\n  a:\n    type: lint\n    needs: [b]\n  b:\n    type: lint\n    needs: [a]\n",
     ["line 4: jobs.a.needs: the needs form a cycle: a -> b -> a"]),
    ("jobs:\n  a: {type: lint, needs: [a]}\n", ["line 2: jobs.a.needs: a job cannot need itself"]),
    ("jobs:\n  a:\n    type: lint\n    needs: [ghost]\n",
     ["line 4: jobs.a.needs: needs 'ghost', which is not a job of this file"]),
    ("jobs:\n  a:\n    type: place_and_route\n",
     ["line 3: jobs.a.type: 'place_and_route' is not a job type"]),
    ("jobs:\n  a:\n    type: synthesis\n    config:\n      top: '-rf /'\n      family: nand\n",
     ["line 5: jobs.a.config.top: must be a Verilog identifier",
      "line 6: jobs.a.config.family: Input should be"]),
    ("jobs:\n  a:\n    type: simulation\n    config:\n      testbench: ../../etc/passwd.v\n",
     ["line 5: jobs.a.config.testbench: must not contain '.' or '..' segments"]),
    ("jobs:\n  a:\n    type: lint\n    config: {tool: lint, script: 'rm -rf /'}\n",
     ["line 4: jobs.a.config.tool:", "line 4: jobs.a.config.script: Extra inputs are not "
                                     "permitted"]),
    ("jobs:\n  a: {type: lint}\n  a: {type: simulation}\n",
     ["line 3: jobs.a: appears twice (first on line 2)"]),
    ("jobs:\n  a:\n    type: lint\n    run: make\n",
     ["line 4: jobs.a.run: unknown key"]),
    ("jobs: [a, b]\n", ["line 1: jobs: must be a mapping of job names to jobs"]),
    ("jobs:\n  a:\n    type: lint\n  b\n", ["not valid YAML"]),
    ("", ["line 1: the file is empty"]),
    ("- just\n- a list\n", ["line 1: file: the pipeline file must be a mapping"]),
    # hostile: the billion laughs (aliases), tags, merge keys, nesting
    ('a: &a ["lol","lol","lol"]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n',
     ["line 2: anchors and aliases (&, *) are not supported"]),
    ("jobs:\n  a: !!python/object/apply:os.system ['id']\n", ["line 2: jobs.a: the tag"]),
    ("jobs:\n  a: !!python/name:os.system\n", ["line 2: not valid YAML: could not determine a "
                                              "constructor"]),
    ("jobs:\n  <<: {a: {type: lint}}\n", ["line 2: jobs: keys must be plain names"]),
    ("jobs:\n  a:\n    type: lint\n    config: " + "[" * 40 + "]" * 40 + "\n",
     ["nested deeper than 16 levels"]),
]


@pytest.mark.parametrize(("text", "fragments"), REFUSED, ids=[str(i) for i in range(len(REFUSED))])
def test_a_bad_pipeline_file_is_refused_with_line_numbered_messages(
        text: str, fragments: list[str]) -> None:
    with pytest.raises(PipelineFileError) as refused:
        parse_pipeline(text.encode())
    errors = refused.value.errors
    for fragment in fragments:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert all(e.startswith("line ") for e in errors), errors


def test_a_huge_or_non_utf8_file_is_refused_before_parsing() -> None:
    with pytest.raises(PipelineFileError, match="at most 65536"):
        parse_pipeline(b"#" * (64 * 1024 + 1))
    with pytest.raises(PipelineFileError, match="line 2: the file is not UTF-8"):
        parse_pipeline(b"jobs:\n  \xff: {type: lint}\n")


@pytest.mark.parametrize("text", [b"[" * 30000, b"a: " + b"{a: " * 20000, b"- " * 30000],
                         ids=["flow sequences", "flow mappings", "block sequences"])
def test_deep_nesting_is_refused_while_composing_not_by_a_crash(text: bytes) -> None:
    with pytest.raises(PipelineFileError, match="nested deeper than 16 levels"):
        parse_pipeline(text[:64 * 1024])


def test_too_many_jobs_are_refused() -> None:
    text = "jobs:\n" + "".join(f"  j{i}: {{type: lint}}\n" for i in range(51))
    with pytest.raises(PipelineFileError, match="51 jobs; a pipeline holds at most 50"):
        parse_pipeline(text.encode())


# --- pipelines started by commits on main -------------------------------------------------------


@pytest.fixture(scope="module")
def queue(emulator: Any) -> Iterator[Any]:
    """A private queue nobody polls: the pipelines' jobs stay pending until the test ends them."""
    q = make_queues()
    with api_queue(q.url):
        yield q


def _p(pid: int) -> str:
    return f"/api/v1/projects/{pid}"


def _project_with_design(api: Api, owner: UserCtx, visibility: str = "private") -> int:
    pid = int(make_project(api, owner, visibility=visibility)["id"])
    make_file(api, owner, pid, "rtl/counter.v", COUNTER)
    make_file(api, owner, pid, "tb/tb.v", TB)
    return pid


def _pipelines(api: Api, user: UserCtx | None, pid: int) -> list[dict[str, Any]]:
    reply = api.get(f"{_p(pid)}/pipelines", token=user.token if user else None)
    assert reply.status == 200, reply.body
    return list(reply.json)


def test_a_files_api_commit_of_the_pipeline_file_starts_its_pipeline(
        api: Api, owner: UserCtx, queue: Any) -> None:
    # GIVEN a project with a design and a testbench, and no pipeline yet
    pid = _project_with_design(api, owner)
    assert _pipelines(api, owner, pid) == []
    # WHEN the pipeline file is added through the files API (a commit on main)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    # THEN that commit has a pipeline: sim queued (pinned to the commit), synth waiting on it
    [pipeline] = _pipelines(api, owner, pid)
    head = api.get(f"{_p(pid)}/git/commits/HEAD", token=owner.token).json
    assert pipeline["commit"] == head["id"]
    assert pipeline["status"] == "pending"
    sim, synth = pipeline["jobs"]
    assert (sim["name"], sim["status"], synth["status"]) == ("sim", "pending", "pending")
    assert sim["job_id"] is not None and synth["job_id"] is None
    job = api.get(f"{_p(pid)}/jobs/{sim['job_id']}", token=owner.token).json
    assert job["commit"] == head["id"] and job["commit_pinned"] is True
    assert job["config"]["testbench"] == "tb/tb.v"  # the bare name resolved in that commit
    # AND git/commits shows the status per commit
    assert head["pipeline"]["id"] == pipeline["id"]
    [newest, *older] = api.get(f"{_p(pid)}/git/commits", token=owner.token).json
    assert newest["pipeline"]["status"] == "pending"
    assert all(c["pipeline"] is None for c in older)  # commits before the file had none


def test_a_need_that_does_not_pass_cancels_its_dependants(
        api: Api, owner: UserCtx, queue: Any) -> None:
    # GIVEN a pipeline whose first job is queued
    pid = _project_with_design(api, owner, visibility="public")
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    [pipeline] = _pipelines(api, owner, pid)
    sim_id = pipeline["jobs"][0]["job_id"]
    # WHEN that job ends without passing (cancelled: the job completion path)
    assert api.delete(f"{_p(pid)}/jobs/{sim_id}", token=owner.token).status == 200
    # THEN its dependant is cancelled, never started, with the reason; the pipeline too
    [pipeline] = _pipelines(api, owner, pid)
    sim, synth = pipeline["jobs"]
    assert sim["status"] == "cancelled"
    assert synth["status"] == "cancelled" and synth["job_id"] is None
    assert synth["error"] == "not run: sim did not pass"
    assert pipeline["status"] == "cancelled"
    # AND the public badge (no token) says so
    badge = api.get(f"{_p(pid)}/badge.svg?ref=main")
    assert badge.status == 200
    assert (badge.header("Content-Type") or "").startswith("image/svg+xml")
    svg = badge.body.decode()
    assert "pipeline: cancelled" in svg and svg.startswith("<svg")


def test_a_newer_commit_does_not_cancel_an_older_pipeline_unless_the_file_says_so(
        api: Api, owner: UserCtx, queue: Any) -> None:
    pid = _project_with_design(api, owner)
    created = make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    # WHEN another commit lands while the first pipeline waits
    make_file(api, owner, pid, "README.md", "# counter\n")
    first, second = reversed(_pipelines(api, owner, pid))
    # THEN both pipelines are pending side by side
    assert first["status"] == second["status"] == "pending"
    # WHEN the file asks for cancel_previous and a new commit lands
    changed = api.put(f"{_p(pid)}/files/{created['id']}", token=owner.token,
                      json_body={"content": "cancel_previous: true\n" + PIPELINE})
    assert changed.status == 200, changed.body
    third, second, first = _pipelines(api, owner, pid)
    # THEN the earlier unfinished pipelines are cancelled, the newest is not
    assert third["status"] == "pending"
    assert first["status"] == second["status"] == "cancelled", (first, second)
    assert second["jobs"][1]["error"].startswith("superseded by commit")


def test_an_invalid_pipeline_file_committed_through_the_api_fails_its_pipeline_with_lines(
        api: Api, owner: UserCtx, queue: Any) -> None:
    pid = _project_with_design(api, owner)
    make_file(api, owner, pid, ".a6hub.yml", "jobs:\n  sim:\n    type: simulaton\n")
    [pipeline] = _pipelines(api, owner, pid)
    assert pipeline["status"] == "failed" and pipeline["jobs"] == []
    [error] = pipeline["errors"]
    assert error.startswith("line 3: jobs.sim.type: 'simulaton' is not a job type; one of ")
    assert b"pipeline: failing" in api.get(f"{_p(pid)}/badge.svg", token=owner.token).body


def test_a_testbench_missing_from_the_commit_fails_that_job_and_not_the_service(
        api: Api, owner: UserCtx, queue: Any) -> None:
    pid = _project_with_design(api, owner)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE.replace("tb.v", "nope.v"))
    [pipeline] = _pipelines(api, owner, pid)
    sim, synth = pipeline["jobs"]
    assert sim["status"] == "failed" and "no project file is named 'nope.v'" in sim["error"]
    assert synth["status"] == "cancelled"
    assert pipeline["status"] == "failed"


def test_validate_reports_the_faults_of_a_text(api: Api, owner: UserCtx) -> None:
    pid = int(make_project(api, owner)["id"])
    good = api.post(f"{_p(pid)}/pipelines/validate", token=owner.token,
                    json_body={"content": PIPELINE})
    assert good.status == 200 and good.json == {"valid": True, "errors": [],
                                                "jobs": ["sim", "synth"]}
    bad = api.post(f"{_p(pid)}/pipelines/validate", token=owner.token,
                   json_body={"content": "jobs:\n  a: {type: lint, needs: [a]}\n"})
    assert bad.json["valid"] is False
    assert bad.json["errors"] == ["line 2: jobs.a.needs: a job cannot need itself"]


def test_list_refuses_other_refs_and_pages_with_a_cursor(
        api: Api, owner: UserCtx, queue: Any) -> None:
    pid = _project_with_design(api, owner)
    created = make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    api.put(f"{_p(pid)}/files/{created['id']}", token=owner.token,
            json_body={"content": PIPELINE + "\n"})
    assert api.get(f"{_p(pid)}/pipelines?ref=dev", token=owner.token).status == 422
    first = api.get(f"{_p(pid)}/pipelines?ref=main&limit=1", token=owner.token)
    assert first.status == 200 and len(first.json) == 1
    link = first.header("Link") or ""
    assert 'rel="next"' in link
    cursor = link.split("cursor=", 1)[1].split(">", 1)[0]
    second = api.get(f"{_p(pid)}/pipelines?ref=main&limit=1&cursor={cursor}", token=owner.token)
    assert [p["id"] for p in second.json] != [p["id"] for p in first.json]
    assert wait_for(lambda: len(_pipelines(api, owner, pid)) == 2)


def test_a_claimed_job_shows_running_and_its_success_starts_the_jobs_that_need_it(
        api: Api, owner: UserCtx, queue: Any) -> None:
    from chalicelib.services import job_lifecycle

    # GIVEN a pipeline whose first job a runner claims (the runner's own transitions)
    pid = _project_with_design(api, owner)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    [pipeline] = _pipelines(api, owner, pid)
    job = job_lifecycle.load(pid, pipeline["jobs"][0]["job_id"])
    assert job is not None and job_lifecycle.claim(job, "test-runner", 60)
    # THEN the job and the pipeline show running
    [pipeline] = _pipelines(api, owner, pid)
    assert (pipeline["status"], pipeline["jobs"][0]["status"]) == ("running", "running")
    # WHEN the runner records it completed
    assert job_lifecycle.finish(job, "test-runner", job_lifecycle.JobResult(
        status="completed", error_message=None, exit_code=0, duration_s=0.1, inputs=[],
        steps=[], tool_versions={}, artifacts=[], summary={}, log_bytes=0, log_truncated=False))
    # THEN the job that needed it is queued, and the pipeline runs on
    [pipeline] = _pipelines(api, owner, pid)
    sim, synth = pipeline["jobs"]
    assert sim["status"] == "passed"
    assert synth["status"] == "pending" and synth["job_id"] is not None
    assert pipeline["status"] == "running"
    queued = api.get(f"{_p(pid)}/jobs/{synth['job_id']}", token=owner.token).json
    assert queued["status"] == "pending" and queued["commit"] == pipeline["commit"]


def test_a_restore_is_a_new_commit_on_main_and_starts_its_pipeline(
        api: Api, owner: UserCtx, queue: Any) -> None:
    # GIVEN a project with a pipeline file and a later commit
    pid = _project_with_design(api, owner)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    with_file = api.get(f"{_p(pid)}/git/commits/HEAD", token=owner.token).json["id"]
    make_file(api, owner, pid, "README.md", "# counter\n")
    # WHEN the project is restored to the commit that added the file
    restored = api.post(f"{_p(pid)}/git/restore", token=owner.token,
                        json_body={"commit": with_file})
    assert restored.status == 200 and restored.json["restored"], restored.body
    # THEN the restore commit has a pipeline of its own (three commits, three pipelines)
    commits = api.get(f"{_p(pid)}/git/commits", token=owner.token).json
    assert commits[0]["id"] == restored.json["commit"]["id"]
    assert commits[0]["pipeline"]["commit"] == commits[0]["id"]
    assert len(_pipelines(api, owner, pid)) == 3


def test_an_import_starts_the_pipeline_of_the_imported_head(
        api: Api, owner: UserCtx, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from runner.worker import RunnerSettings, Worker
    from tests.git_server import http_git_server, make_repo

    # GIVEN a repository whose branch holds a design and a pipeline file, served over HTTP
    monkeypatch.setenv("A6HUB_IMPORT_ALLOW_PRIVATE", "1")
    make_repo(tmp_path, "ci", [{"rtl/counter.v": COUNTER, "tb/tb.v": TB,
                                ".a6hub.yml": PIPELINE}])
    fresh = make_queues()
    with api_queue(fresh.url), http_git_server(tmp_path) as server:
        reply = api.post("/api/v1/projects/import", token=owner.token,
                         json_body={"url": f"{server.url}/ci.git", "name": "ci import"})
        assert reply.status == 202, reply.body
        # WHEN a runner (in this process) imports it: main moves inside the runner
        settings = dataclasses.replace(RunnerSettings.from_queue(fresh.url), wait_seconds=1)
        assert Worker(settings).poll_once(wait_seconds=1) == 1
    # THEN the imported head has its pipeline, its first job queued
    pid = int(reply.json["id"])
    head = api.get(f"{_p(pid)}/git/commits/HEAD", token=owner.token).json
    assert head["pipeline"] is not None and head["pipeline"]["commit"] == head["id"]
    sim, synth = head["pipeline"]["jobs"]
    assert sim["job_id"] is not None and sim["status"] == "pending"
    assert synth["job_id"] is None


def test_pipeline_jobs_wait_for_a_slot_under_the_job_caps(
        api: Api, owner: UserCtx, queue: Any) -> None:
    from tests.settings_override import settings_env

    # GIVEN a cap of 3 queued-or-running jobs per project, and a file of 5 independent jobs
    pid = _project_with_design(api, owner)
    text = "jobs:\n" + "".join(f"  l{i}: {{type: lint, config: {{top: counter}}}}\n"
                               for i in range(5))
    with settings_env(A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT=3):
        # WHEN it is committed, then main moves again (a second pipeline)
        make_file(api, owner, pid, ".a6hub.yml", text)
        make_file(api, owner, pid, "README.md", "hello\n")
        # THEN only 3 jobs exist; the rest of both pipelines wait, pending without a job
        older, newer = sorted(_pipelines(api, owner, pid), key=lambda p: p["id"])
        started = [e for p in (older, newer) for e in p["jobs"] if e["job_id"] is not None]
        assert len(started) == 3
        waiting = [e for p in (older, newer) for e in p["jobs"] if e["job_id"] is None]
        assert len(waiting) == 7
        assert all(e["status"] == "pending" and "waiting for a job slot" in e["error"]
                   for e in waiting)
        # WHEN one job ends (cancelled: the completion path)
        assert api.delete(f"{_p(pid)}/jobs/{started[0]['job_id']}",
                          token=owner.token).status == 200
        # THEN one waiting entry of the older pipeline takes its slot
        older, newer = sorted(_pipelines(api, owner, pid), key=lambda p: p["id"])
        older_started = [e for e in older["jobs"] if e["job_id"] is not None]
        assert len(older_started) == 4
        assert sum(e["job_id"] is not None for e in newer["jobs"]) == 0


def test_a_job_ending_in_one_project_wakes_the_owners_waiting_pipeline_in_another(
        api: Api, queue: Any) -> None:
    from tests.conftest import make_user
    from tests.settings_override import settings_env

    lint = "jobs:\n  lint: {type: lint, config: {top: counter}}\n"
    user = make_user(api)  # no jobs of earlier tests count against this user's cap
    with settings_env(A6HUB_JOBS_MAX_ACTIVE_PER_USER=1):
        # GIVEN the user's pipeline in project A holds their one job slot
        a = _project_with_design(api, user)
        make_file(api, user, a, ".a6hub.yml", lint)
        [held] = _pipelines(api, user, a)[0]["jobs"]
        assert held["job_id"] is not None
        # AND their pipeline in project B waits for a slot
        b = _project_with_design(api, user)
        make_file(api, user, b, ".a6hub.yml", lint)
        [waiting] = _pipelines(api, user, b)[0]["jobs"]
        assert waiting["job_id"] is None and "waiting for a job slot" in waiting["error"]
        assert "already has 1 queued or running jobs" in waiting["error"]
        # WHEN A's job ends (cancelled: the completion path)
        assert api.delete(f"{_p(a)}/jobs/{held['job_id']}", token=user.token).status == 200
        # THEN B's waiting job starts: queued, pinned to B's commit
        [pipeline] = _pipelines(api, user, b)
        [started] = pipeline["jobs"]
        assert started["job_id"] is not None and started["error"] is None, started
        job = api.get(f"{_p(b)}/jobs/{started['job_id']}", token=user.token).json
        assert job["status"] == "pending" and job["commit"] == pipeline["commit"]


def test_a_cached_run_serves_its_own_project_only(api: Api, owner: UserCtx, queue: Any) -> None:
    from chalicelib import storage
    from chalicelib.services import job_lifecycle
    from chalicelib.services.pipelines import cache as keys
    from chalicelib.services.pipelines import instant
    from chalicelib.services.pipelines.runs import _commit_tree
    from tests.conftest import make_user

    # GIVEN a private project whose pipeline's sim completed, its key stored as a runner does
    versions = {"iverilog": "breaker-test", "vvp": "breaker-test"}
    instant.publish_toolchain(versions)
    pid = _project_with_design(api, owner)
    make_file(api, owner, pid, ".a6hub.yml", PIPELINE)
    [pipeline] = _pipelines(api, owner, pid)
    job = job_lifecycle.load(pid, pipeline["jobs"][0]["job_id"])
    assert job is not None and job_lifecycle.claim(job, "test-runner", 60)
    assert job_lifecycle.finish(job, "test-runner", job_lifecycle.JobResult(
        status="completed", error_message=None, exit_code=0, duration_s=0.1, inputs=[],
        steps=[], tool_versions={}, artifacts=[], summary={"secret": "private output"},
        log_bytes=0, log_truncated=False))
    reader = instant.TreeReader(*_commit_tree(pid, pipeline["commit"]))
    key = keys.cache_key("simulation", dict(job.config), versions, reader.paths, reader.read)
    assert key is not None
    keys.remember(key, pid, job.id)
    storage.put_bytes(storage.job_log_key(pid, job.id, 1), b"private log\n", "text/plain")
    # WHEN a stranger's project commits the same files and pipeline file
    stranger = make_user(api)
    other = _project_with_design(api, stranger)
    make_file(api, stranger, other, ".a6hub.yml", PIPELINE)
    # THEN its sim is queued to run, not served the private project's result
    [theirs] = _pipelines(api, stranger, other)
    sim = api.get(f"{_p(other)}/jobs/{theirs['jobs'][0]['job_id']}", token=stranger.token).json
    assert sim["status"] == "pending" and "cache" not in (sim.get("summary") or {})
    # AND the same files committed again in the owner's project are served from its own run
    make_file(api, owner, pid, "README.md", "notes\n")
    newest = max(_pipelines(api, owner, pid), key=lambda p: p["id"])
    hit = api.get(f"{_p(pid)}/jobs/{newest['jobs'][0]['job_id']}", token=owner.token).json
    assert hit["status"] == "completed" and hit["summary"]["cache"]["job_id"] == job.id


def _complete_as_a_runner(pid: int, job_id: int, versions: dict[str, str],
                          reader: Any) -> str:
    """Claim, finish completed with a log, an artifact and the key stamped on the summary, as a
    runner does (the job's end stores the key with the result); returns the key."""
    from chalicelib import storage
    from chalicelib.schemas.jobs import ArtifactPublic
    from chalicelib.services import job_lifecycle
    from chalicelib.services.pipelines import cache as keys

    job = job_lifecycle.load(pid, job_id)
    assert job is not None and job_lifecycle.claim(job, "test-runner", 60)
    names = keys.tools_of(job.job_type, dict(job.config))
    assert names is not None
    key = keys.cache_key(job.job_type, dict(job.config), {n: versions[n] for n in names},
                         reader.paths, reader.read)
    assert key is not None
    log = f"ran job {job_id}\n".encode()
    storage.put_bytes(storage.job_log_key(pid, job_id, 1), log, "text/plain")
    storage.put_bytes(storage.job_artifact_key(pid, job_id, 1, "out.txt"),
                      f"artifact of {job_id}".encode(), "text/plain")
    assert job_lifecycle.finish(job, "test-runner", job_lifecycle.JobResult(
        status="completed", error_message=None, exit_code=0, duration_s=0.1, inputs=[],
        steps=[], tool_versions={}, log_bytes=len(log), log_truncated=False,
        summary={"ran": job_id, "cache": {"hit": False, "key": key}},
        artifacts=[ArtifactPublic(name="out.txt", kind="report", size_bytes=20,
                                  mime_type="text/plain")]))
    return key


def test_a_tree_built_before_is_served_whole_from_the_cache_when_main_moves(
        api: Api, owner: UserCtx, queue: Any) -> None:
    from chalicelib.models.jobs import Job
    from chalicelib.models.pipelines import JobCache, Pipeline
    from chalicelib.services.pipelines import cache as keys
    from chalicelib.services.pipelines import instant
    from chalicelib.services.pipelines.runs import _commit_tree

    # GIVEN a pipeline of three levels (lint -> sim -> synth) whose jobs all completed
    versions = {"iverilog": "whole-tree-test", "vvp": "whole-tree-test", "yosys": "whole-tree-test"}
    instant.publish_toolchain(versions)
    pid = _project_with_design(api, owner)
    text = "jobs:\n  lint:\n    type: lint\n    config: {tool: icarus, top: counter}\n" + \
        PIPELINE.replace("jobs:\n", "").replace("    config: {testbench: tb.v}",
                                               "    needs: [lint]\n    config: {testbench: tb.v}")
    make_file(api, owner, pid, ".a6hub.yml", text)
    [first] = _pipelines(api, owner, pid)
    reader = instant.TreeReader(*_commit_tree(pid, first["commit"]))
    for level in range(3):
        entry = _pipelines(api, owner, pid)[0]["jobs"][level]
        key = _complete_as_a_runner(pid, int(entry["job_id"]), versions, reader)
        # the run's end stored its key with its result: a hit needs no read of the run
        stored = JobCache.get(keys.scoped(pid, key), consistent_read=True)
        assert stored.job_id == entry["job_id"] and stored.result["summary"]["ran"] == stored.job_id
    [first] = _pipelines(api, owner, pid)
    assert first["status"] == "passed", first
    runs = {j["name"]: j["job_id"] for j in first["jobs"]}
    queued_before = queue.depth()

    # WHEN main moves to a commit that changes only the README
    make_file(api, owner, pid, "README.md", "# counter\n")

    # THEN by the end of that commit's request every job of the new pipeline is a completed
    # cache hit of those runs, served when the pipeline started; nothing was queued
    newest, _ = _pipelines(api, owner, pid)
    assert newest["status"] == "passed", newest
    assert [(j["name"], j["status"], j["cached"], j["cached_from"]) for j in newest["jobs"]] == [
        (name, "passed", True, runs[name]) for name in ("lint", "sim", "synth")]
    assert queue.depth() == queued_before
    stored = Pipeline.get(pid, newest["id"], consistent_read=True)
    assert stored.version == 1  # written once, with its jobs (one transaction)
    for entry in newest["jobs"]:
        job = Job.get(pid, entry["job_id"], consistent_read=True)
        assert job.summary["cache"]["served"] == "pipeline"
        assert job.summary["ran"] == runs[entry["name"]]
        assert job.commit == newest["commit"] and job.pipeline_id == newest["id"]
        assert {i["path"] for i in job.inputs} <= {"rtl/counter.v", "tb/tb.v"}
        # AND its log and artifact are the run's own objects, read through the hit
        logs = api.get(f"{_p(pid)}/jobs/{job.id}/logs", token=owner.token).json
        assert logs["logs"] == f"ran job {runs[entry['name']]}\n" and logs["complete"]
        artifact = api.get(f"{_p(pid)}/jobs/{job.id}/artifacts/out.txt", token=owner.token)
        assert artifact.status == 200, artifact.body
        assert f"artifact of {runs[entry['name']]}" in artifact.body.decode()
