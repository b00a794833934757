"""Hidden tests never reach a student: the authorisation matrix of an assignment's hidden files
(student, other student, instructor, stranger, anonymous) over every route of the app, after
the real runner graded a student's commit pushed with the real `git` client.

The hidden files are a Verilog testbench that `$display`s a marker string found only in it, and
a cocotb module that prints its own source (`open(__file__).read()`) and fails one test with
that source as its message. The instructor's sweep finds the marker (the sweep reaches the
hidden content: the test could fail); no sweep of anyone else does.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.assignments.test_assignments import COUNTER, HIDDEN_TB, MARKER, A, accept, make_assignment
from tests.conftest import Api, UserCtx, make_user
from tests.git.test_git_http import Git, api_token, remote
from tests.jobs_support import Queues, api_queue, make_queues, wait_for
from tests.runner.test_jobs_e2e import RunnerProcess
from tests.stack_support import api_on, push, runner_on

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="the git client is not installed"),
]

BROKEN = COUNTER.replace("count + 4'd1", "count")  # the skeleton the student must fix
HIDDEN_COCOTB = f'''\
# {MARKER} (cocotb)
import cocotb
from cocotb.triggers import Timer

SOURCE = open(__file__).read()
print(SOURCE)


async def tick(dut):
    dut.clk.value = 0
    await Timer(1, unit="ns")
    dut.clk.value = 1
    await Timer(1, unit="ns")


@cocotb.test()
async def counts_up(dut):
    print(SOURCE)
    dut.rst.value = 1
    await tick(dut)
    dut.rst.value = 0
    for _ in range(5):
        await tick(dut)
    assert int(dut.count.value) == 5, f"count is {{int(dut.count.value)}}"


@cocotb.test()
async def reveals_itself(dut):
    assert False, SOURCE
'''
PIPELINE = """\
jobs:
  sim:
    type: simulation
    config: {testbench: hidden/tb.v}
  unit:
    type: cocotb
    config: {toplevel: counter, test_modules: [hidden.test_counter]}
"""
TERMINAL = {"passed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def queues(emulator: Any) -> Iterator[Queues]:
    q = make_queues(max_receives=3, visibility=10)
    with api_queue(q.url):
        yield q


@pytest.fixture(scope="module")
def server(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_on(queues, tmp_path_factory, "assign") as url:
        yield url


@pytest.fixture(scope="module")
def runner(queues: Queues, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    with runner_on(queues, tmp_path_factory, "assign") as process:
        yield process


def student_push(api: Api, student: UserCtx, server: str, copy: int, tmp_path: Path,
                 files: dict[str, str], message: str) -> tuple[Git, Path, str]:
    """Clone the student's copy with the real git client (it holds nothing hidden), write
    `files` ({path: text}) into it, commit and push main; the client, its work tree and the
    pushed commit's sha."""
    git = Git(tmp_path / "home")
    work = tmp_path / "work"
    git.run("clone", "-q", remote(server, str(copy), api_token(api, student)), str(work))
    assert not (work / "hidden").exists()
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    return git, work, push(git, work, message)


def graded_row_of(api: Api, instructor: UserCtx, aid: int, head: str,
           runner: RunnerProcess) -> dict[str, Any]:
    """The instructor's grades row once `head` is graded (the runner's output on a timeout)."""
    try:
        row: dict[str, Any] = wait_for(lambda: _graded_row(api, instructor, aid, head),
                                       timeout=300, every=1,
                                       what="the graded pipeline of the student's push")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{runner.output()[-4000:]}") from e
    return row


def _p(pid: int) -> str:
    return f"/api/v1/projects/{pid}"


def _graded_row(api: Api, instructor: UserCtx, assignment_id: int,
                head: str) -> dict[str, Any] | None:
    rows = api.get(f"{A}/{assignment_id}/grades", token=instructor.token).json
    row = rows[0] if rows else None
    done = row and row["commit"] == head and row["status"] in TERMINAL
    return dict(row) if done else None


def _urls(api: Api, routes: dict[str, Any], values: dict[str, list[str]],
          queries: dict[str, list[str]]) -> list[str]:
    """Every GET route of the app with its path parameters filled from `values` (a route
    with a parameter that has no values is left out), each with the extra query strings."""
    urls: list[str] = []
    for template, methods in sorted(routes.items()):
        if "GET" not in methods or template.startswith("/docs"):
            continue
        filled = [template]
        for name in [seg[1:-1] for seg in template.split("/") if seg.startswith("{")]:
            options = values.get(name, [])
            filled = [u.replace("{" + name + "}", quote(v, safe="")) for u in filled
                      for v in options]
        for url in filled:
            urls += [url + q for q in queries.get(template.rsplit("}", 1)[-1], [""])]
    return urls


def _sweep(api: Api, urls: list[str], token: str | None) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for url in urls:
        reply = api.get(url, token=token)
        out[url] = (reply.status, reply.body.decode("utf-8", "replace")
                    + " ".join(f"{k}: {v}" for k, v in reply.headers.items()))
    return out


def test_no_route_gives_a_student_the_hidden_tests(
        api: Api, chalice_app: Any, server: str, runner: RunnerProcess,
        tmp_path: Path) -> None:
    from chalicelib.services import live

    # GIVEN an assignment whose hidden files print themselves, and a student's copy
    instructor, student, other, stranger = (make_user(api) for _ in range(4))
    # (the tools' messages shown, scrubbed: the sweep covers the most a student can be shown)
    assignment = make_assignment(api, instructor, pipeline=PIPELINE,
                                 extra={"hidden/test_counter.py": HIDDEN_COCOTB},
                                 student_messages="scrubbed")
    apid, aid = int(assignment["project_id"]), int(assignment["id"])
    api.put(f"{_p(apid)}/files/{_file_id(api, instructor, apid, 'rtl/counter.v')}",
            token=instructor.token, json_body={"content": BROKEN})
    copy = accept(api, student, assignment)
    accept(api, other, assignment)
    # WHEN the student clones the copy with the real git client, fixes the counter, tries to
    # plant their own hidden/tb.v and hidden/extra.v, and pushes
    git, work, head = student_push(api, student, server, copy, tmp_path, {
        "rtl/counter.v": COUNTER, "hidden/tb.v": "module tb; initial $finish; endmodule\n",
        "hidden/extra.v": "module extra; endmodule\n"}, "fix the counter")
    # THEN the assignment's pipeline grades it with the hidden files (the student's tb.v lost)
    row = graded_row_of(api, instructor, aid, head, runner)
    assert row["jobs"] == {"sim": "passed", "unit": "failed"}, row
    assert row["tests"] == {"unit/counts_up": "passed", "unit/reveals_itself": "failed"}
    assert row["late"] is False
    pipelines = api.get(f"{_p(apid)}/pipelines", token=instructor.token).json
    graded = next(p for p in pipelines if p["id"] == row["pipeline_id"])
    job_ids = [str(j["job_id"]) for j in graded["jobs"]]
    sim_log = api.get(f"{_p(apid)}/jobs/{job_ids[0]}/logs", token=instructor.token).json["logs"]
    assert MARKER in sim_log  # the hidden testbench ran, not the student's
    assert "cache key" not in sim_log  # graded jobs neither look up nor store a cache key
    sim = api.get(f"{_p(apid)}/jobs/{job_ids[0]}", token=instructor.token).json
    assert "hidden/extra.v" not in {i["path"] for i in sim.get("inputs") or []}
    # AND the student's results say so, with the self-quoting message withheld
    [latest, *_] = api.get(f"{A}/{aid}/results", token=student.token).json
    assert latest["commit"] == head
    unit = next(j for j in latest["jobs"] if j["name"] == "unit")
    assert {t["name"]: t["outcome"] for t in unit["tests"]} == {
        "counts_up": "passed", "reveals_itself": "failed"}
    assert next(t for t in unit["tests"] if t["name"] == "reveals_itself")["message"] == \
        "(message withheld: it quotes the hidden tests)"

    # AND a fork of the student's copy holds nothing hidden either
    fork = api.post(f"{_p(copy)}/fork", token=student.token, json_body={"name": "my fork"})
    assert fork.status == 202, fork.body
    fork_id = int(fork.json["id"])
    wait_for(lambda: api.get(_p(fork_id), token=student.token).json.get("import_status")
             in ("completed", "failed"), timeout=120, every=0.5, what="the fork")

    # AND over every GET route of the app, with every id that could name hidden content
    hidden_files = [str(f["id"]) for f in api.get(f"{_p(apid)}/files",
                                                  token=instructor.token).json
                    if f["filepath"].startswith("hidden/")]
    a_head = api.get(f"{_p(apid)}/git/commits/HEAD", token=instructor.token).json["id"]
    modules = [str(m["id"]) for m in api.get(f"{_p(apid)}/modules",
                                             token=instructor.token).json or []]
    artifacts = [str(a["name"]) for jid in job_ids for a in
                 api.get(f"{_p(apid)}/jobs/{jid}", token=instructor.token).json
                 .get("artifacts") or []]
    values = {"project_id": [str(apid), str(copy), str(fork_id)], "job_id": job_ids,
              "file_id": hidden_files, "sha": [a_head, head, "HEAD"], "module_id": modules,
              "name": artifacts or ["results.xml"], "assignment_id": [str(aid)]}
    rev = f"?base={a_head}&head={head}"
    queries = {"/diff": ["", rev], "/compare": [rev], "/content": [
        "?path=hidden/tb.v", "?path=hidden/test_counter.py"],
        "/logs": ["", "?offset=0"], "/git/commits": ["", "?path=hidden/tb.v"]}
    urls = _urls(api, chalice_app.routes, values, queries)
    assert len(urls) > 60, urls
    seen = _sweep(api, urls, instructor.token)
    assert any(MARKER in body for _, body in seen.values())  # the sweep reaches it
    for who, token in (("student", student.token), ("other student", other.token),
                       ("stranger", stranger.token), ("anonymous", None)):
        for url, (status, body) in _sweep(api, urls, token).items():
            assert MARKER not in body, (who, url, status)
            if url.startswith(_p(apid) + "/") or url == _p(apid):
                # refused (git's info/refs answers 403 to a token that may not read)
                assert 400 <= status < 500, (who, url, status)
        # the live-updates socket of a graded job is refused
        for jid in job_ids:
            shown = live.connect(f"leak-{who}-{jid}", {"job_id": jid, "token": token or ""})
            assert shown in (401, 403, 404), (who, jid, shown)
    # AND the real git client cannot clone the assignment; the copy's history has no marker
    refused = git.run("clone", "-q", remote(server, str(apid), api_token(api, student)),
                      str(tmp_path / "stolen"), check=False)
    assert refused.returncode != 0 and MARKER not in refused.stdout + refused.stderr
    everything = git.run("log", "--all", "-p", cwd=work).stdout
    assert MARKER not in everything and HIDDEN_TB not in everything
    assert "HIDDEN_MARKER" not in subprocess.run(
        ["grep", "-r", "HIDDEN_MARKER", str(work)], capture_output=True, text=True).stdout


def _file_id(api: Api, user: UserCtx, pid: int, path: str) -> int:
    return int(next(f["id"] for f in api.get(f"{_p(pid)}/files", token=user.token).json
                    if f["filepath"] == path))
