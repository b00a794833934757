"""Jobs name a commit: resolved to a sha at submit, recorded on the job, and run on its tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, UserCtx, make_file, make_project
from tests.jobs_support import Queues, queues_fixture, wait_for

LINT = {"job_type": "lint", "config": {}}
TB_A = 'module tb; initial begin $display("value is A"); $finish; end endmodule\n'
TB_B = 'module tb; initial begin $display("value is B"); $finish; end endmodule\n'


queues = queues_fixture(max_receives=3, visibility=5)


def submit(api: Api, user: UserCtx, project_id: str, **more: Any) -> Any:
    return api.post(f"/api/v1/projects/{project_id}/jobs", token=user.token,
                    json_body={**LINT, **more})


def head(api: Api, user: UserCtx, project_id: str) -> str:
    reply = api.get(f"/api/v1/projects/{project_id}/git/commits/HEAD", token=user.token)
    assert reply.status == 200, reply.body
    return str(reply.json["id"])


def two_commits(api: Api, owner: UserCtx) -> tuple[str, str, str]:
    """A new project whose first commit adds a.v and second b.v: (project id, first, second)."""
    project = make_project(api, owner)["id"]
    make_file(api, owner, project, "a.v", "module a; endmodule\n")
    first = head(api, owner, project)
    make_file(api, owner, project, "b.v", "module b; endmodule\n")
    return project, first, head(api, owner, project)


def test_a_job_records_main_head_or_the_commit_it_names(api: Api, owner: UserCtx,
                                                        queues: Queues) -> None:
    # GIVEN a project with two commits
    project, first, second = two_commits(api, owner)
    # WHEN jobs are submitted without a commit, and naming one several ways
    plain = submit(api, owner, project).json
    by_sha = submit(api, owner, project, commit=first).json
    by_abbrev = submit(api, owner, project, commit=first[:9].upper()).json
    by_head = submit(api, owner, project, commit="HEAD").json
    by_branch = submit(api, owner, project, commit="main").json
    # THEN each records a full sha; only a named commit pins the files to its tree
    assert (plain["commit"], plain["commit_pinned"]) == (second, False)
    assert (by_sha["commit"], by_sha["commit_pinned"]) == (first, True)
    assert by_abbrev["commit"] == first
    assert by_head["commit"] == by_branch["commit"] == second and by_head["commit_pinned"]
    shown = api.get(f"/api/v1/projects/{project}/jobs/{by_sha['id']}", token=owner.token).json
    assert (shown["commit"], shown["commit_pinned"]) == (first, True)


def test_an_unknown_commit_is_a_422_and_starts_nothing(api: Api, owner: UserCtx,
                                                       queues: Queues) -> None:
    # GIVEN a project with history, another project's commit, and an empty project
    project = make_project(api, owner)["id"]
    make_file(api, owner, project, "a.v", "module a; endmodule\n")
    other = make_project(api, owner)["id"]
    make_file(api, owner, other, "z.v", "module z; endmodule\n")
    foreign = head(api, owner, other)
    empty = make_project(api, owner)["id"]
    before = queues.depth()
    # THEN unknown names, unknown shas and another project's commit are refused
    for commit in ("nope", "0" * 40, foreign, foreign[:10], "refs/heads/x", "HEAD~1"):
        reply = submit(api, owner, project, commit=commit)
        assert reply.status == 422, (commit, reply.body)
        assert "commit" in reply.json["detail"]
    # AND a project without history has no head to name, and records none
    assert submit(api, owner, empty, commit="HEAD").status == 422
    assert submit(api, owner, empty).json["commit"] is None
    assert queues.depth() == before + 1


@pytest.mark.integration
@pytest.mark.slow
def test_a_simulation_on_an_older_commit_runs_that_commit_files(
        api: Api, owner: UserCtx, queues: Queues, tmp_path: Path) -> None:
    from tests.runner.test_jobs_e2e import RunnerProcess

    # GIVEN a testbench saying "A" at commit A, then changed to say "B"
    project = make_project(api, owner)["id"]
    made = make_file(api, owner, project, "tb.v", TB_A)
    commit_a = head(api, owner, project)
    got = api.get(f"/api/v1/projects/{project}/files/{made['id']}", token=owner.token)
    changed = api.put(f"/api/v1/projects/{project}/files/{made['id']}", token=owner.token,
                      headers={"If-Match": got.headers["ETag"]}, json_body={"content": TB_B})
    assert changed.status == 200, changed.body
    commit_b = head(api, owner, project)
    assert commit_b != commit_a
    simulation = {"job_type": "simulation", "config": {"testbench": "tb.v"}}
    # WHEN a simulation runs on commit A, and another on the current files (a real runner
    # process, which holds no JWT key and reads the commit straight from the git store)
    runner = RunnerProcess(queues, tmp_path / "runner.log")
    try:
        on_a = submit(api, owner, project, **simulation, commit=commit_a).json["id"]
        current = submit(api, owner, project, **simulation).json["id"]
        jobs = {}
        for job_id in (on_a, current):
            jobs[job_id] = wait_for(
                lambda j=job_id: (r := api.get(f"/api/v1/projects/{project}/jobs/{j}",
                                               token=owner.token).json)["status"]
                in ("completed", "failed", "cancelled") and r,
                timeout=180, every=0.2, what="the simulation")
    finally:
        assert runner.stop() == 0, runner.output()[-3000:]
    logs = {j: api.get(f"/api/v1/projects/{project}/jobs/{j}/logs", token=owner.token).json["logs"]
            for j in jobs}
    # THEN the job on A printed A's value, from A's tree, and recorded A
    assert jobs[on_a]["status"] == "completed", (jobs[on_a], logs[on_a])
    assert "value is A" in logs[on_a] and "value is B" not in logs[on_a]
    assert f"files from commit {commit_a}" in logs[on_a]
    assert jobs[on_a]["commit"] == commit_a and jobs[on_a]["commit_pinned"] is True
    assert [i["path"] for i in jobs[on_a]["inputs"]] == ["tb.v"]
    # AND the job without a commit ran the current files and recorded main's head
    assert jobs[current]["status"] == "completed", (jobs[current], logs[current])
    assert "value is B" in logs[current] and "value is A" not in logs[current]
    assert jobs[current]["commit"] == commit_b and jobs[current]["commit_pinned"] is False


def _tag(project_id: str, commit: str) -> None:
    """v1: a lightweight tag on `commit`; v2: an annotated tag of it (as `git tag -a` pushes)."""
    from dulwich.objects import Commit, Tag

    from chalicelib.services.git.store import open_repo

    repo = open_repo(int(project_id))
    tag = Tag()
    tag.object = (Commit, commit.encode())
    tag.name, tag.message = b"v2", b"release 2\n"
    tag.tagger, tag.tag_time, tag.tag_timezone = b"T <t@example.com>", 1_700_000_000, 0
    repo.object_store.add_object(tag)
    repo.object_store.flush()
    assert repo.refs.add_if_new(b"refs/tags/v1", commit.encode())
    assert repo.refs.add_if_new(b"refs/tags/v2", tag.id)


def test_routes_and_jobs_name_commits_with_one_grammar(api: Api, owner: UserCtx,
                                                       queues: Queues) -> None:
    # GIVEN a project with two commits, the first tagged v1 (lightweight) and v2 (annotated)
    project, first, second = two_commits(api, owner)
    _tag(project, first)
    base = f"/api/v1/projects/{project}/git"
    for rev in ("v1", "v2", first[:9], first):
        # WHEN the history routes and a job name the first commit by a tag or a short sha
        shown = api.get(f"{base}/commits/{rev}", token=owner.token)
        content = api.get(f"{base}/commits/{rev}/content?path=a.v", token=owner.token)
        diff = api.get(f"{base}/diff?base={rev}&head=main", token=owner.token)
        job = submit(api, owner, project, commit=rev)
        # THEN each resolves it to the same commit
        assert shown.status == 200 and shown.json["id"] == first, (rev, shown.body)
        assert content.status == 200 and content.json["commit"] == first, (rev, content.body)
        assert diff.status == 200, (rev, diff.body)
        assert (diff.json["base"], diff.json["head"]) == (first, second)
        assert [f["path"] for f in diff.json["files"]] == ["b.v"]
        assert job.status == 201 and job.json["commit"] == first, (rev, job.body)
    # AND what names no commit is a 404 on the routes and a 422 for a job, with the same reason
    for rev in ("v3", "abcd"):
        missing = api.get(f"{base}/commits/{rev}", token=owner.token)
        refused = submit(api, owner, project, commit=rev)
        assert missing.status == 404 and refused.status == 422, (rev, missing.body, refused.body)
        assert missing.json["detail"].split(": ", 1)[1] == refused.json["detail"].split(": ", 1)[1]
