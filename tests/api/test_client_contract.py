"""What the a6hub web client sends and reads: its job config names, a bare testbench name,
git_branch, stars and views (CORS on every answer: tests/api/test_cors.py)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, UserCtx, add_member, make_file, make_project, make_user
from tests.jobs_support import Queues, queues_fixture

TB = "module testbench; initial $finish; endmodule\n"


queues = queues_fixture()


def _simulate(api: Api, user: UserCtx, pid: int, config: dict[str, Any]) -> Any:
    return api.post(f"/api/v1/projects/{pid}/jobs", token=user.token,
                    json_body={"job_type": "simulation", "config": config})


def _jobs(api: Api, user: UserCtx, pid: int) -> list[Any]:
    return list(api.get(f"/api/v1/projects/{pid}/jobs", token=user.token).json)


# -- the simulation page's request ---------------------------------------------------------------

def test_the_simulation_page_request_is_accepted_as_sent(api: Api, queues: Queues) -> None:
    # GIVEN a project whose files the design page created under src/
    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "src/testbench.v", TB)
    make_file(api, owner, pid, "src/counter.v", "module counter; endmodule\n")
    for simulator in ("icarus", "verilator"):
        # WHEN the page sends its config as it does
        reply = _simulate(api, owner, pid, {"simulator": simulator, "testbench": "testbench.v",
                                            "timescale": "1ns/1ps", "dump_waves": True})
        # THEN the job is accepted with the file's full path and the waveform on
        assert reply.status == 201, reply.body
        config = reply.json["config"]
        assert config["testbench"] == "src/testbench.v"
        assert config["simulator"] == simulator and config["timescale"] == "1ns/1ps"
        assert config["waveform"] is True and "dump_waves" not in config
        # and the job carries upstream's names for who submitted it and when it changed
        assert reply.json["user_id"] == owner.id == reply.json["created_by"]
        assert reply.json["updated_at"] == reply.json["created_at"]


def test_dump_waves_and_waveform_are_one_setting(api: Api, queues: Queues) -> None:
    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "tb/tb.v", TB)
    off = _simulate(api, owner, pid, {"testbench": "tb/tb.v", "dump_waves": False})
    assert off.status == 201 and off.json["config"]["waveform"] is False
    same = _simulate(api, owner, pid, {"testbench": "tb/tb.v", "dump_waves": True, "waveform": True})
    assert same.status == 201 and same.json["config"]["waveform"] is True
    before = _jobs(api, owner, pid)
    for bad in ({"dump_waves": True, "waveform": False}, {"dump_waves": "yes"},
                {"dump_waves": 1}):
        reply = _simulate(api, owner, pid, {"testbench": "tb/tb.v", **bad})
        assert reply.status == 422, (bad, reply.body)
        assert "dump_waves" in reply.json["detail"]
    # nothing stored from the refused requests
    assert _jobs(api, owner, pid) == before


def test_a_bare_testbench_name_must_name_exactly_one_file(api: Api, queues: Queues) -> None:
    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "src/tb.v", TB)
    make_file(api, owner, pid, "sim/tb.v", TB)
    make_file(api, owner, pid, "top_tb.v", TB)
    # several files of that name: 422 naming them
    several = _simulate(api, owner, pid, {"testbench": "tb.v"})
    assert several.status == 422
    assert "sim/tb.v" in several.json["detail"] and "src/tb.v" in several.json["detail"]
    # none: 422
    none = _simulate(api, owner, pid, {"testbench": "nothing.v"})
    assert none.status == 422 and "nothing.v" in none.json["detail"]
    assert _jobs(api, owner, pid) == []
    # a path given whole, a file at the root, and a module name are taken as they are
    for given, stored in (("sim/tb.v", "sim/tb.v"), ("top_tb.v", "top_tb.v"),
                          ("top_tb", "top_tb")):
        reply = _simulate(api, owner, pid, {"testbench": given})
        assert reply.status == 201 and reply.json["config"]["testbench"] == stored


def test_a_pinned_job_resolves_the_name_in_its_commit(api: Api, queues: Queues) -> None:
    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    created = make_file(api, owner, pid, "src/testbench.v", TB)
    first = api.get(f"/api/v1/projects/{pid}/git/commits/HEAD", token=owner.token).json["id"]
    # the file moves after that commit
    moved = api.patch(f"/api/v1/projects/{pid}/files/{created['id']}", token=owner.token,
                      json_body={"filepath": "bench/testbench.v"})
    assert moved.status == 200, moved.body
    now = _simulate(api, owner, pid, {"testbench": "testbench.v"})
    assert now.json["config"]["testbench"] == "bench/testbench.v"
    pinned = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token, json_body={
        "job_type": "simulation", "config": {"testbench": "testbench.v"}, "commit": first})
    assert pinned.status == 201, pinned.body
    assert pinned.json["config"]["testbench"] == "src/testbench.v"


# -- the settings page: git_branch ---------------------------------------------------------------

def test_git_branch_is_main_and_the_settings_save_is_accepted(api: Api) -> None:
    owner = make_user(api)
    project = make_project(api, owner)
    assert project["git_branch"] == "main"
    pid = project["id"]
    # WHEN the settings page saves what it shows
    saved = api.put(f"/api/v1/projects/{pid}", token=owner.token, json_body={
        "name": project["name"], "description": "d", "visibility": "private", "git_branch": "main"})
    assert saved.status == 200, saved.body
    assert saved.json["git_branch"] == "main" and saved.json["description"] == "d"
    # a branch that is not main is refused, and nothing of that request is stored
    for body in ({"git_branch": "develop"}, {"git_branch": "develop", "description": "x"}):
        refused = api.put(f"/api/v1/projects/{pid}", token=owner.token, json_body=body)
        assert refused.status == 422 and "git_branch" in refused.json["detail"]
    assert api.get(f"/api/v1/projects/{pid}", token=owner.token).json["description"] == "d"
    created = api.post("/api/v1/projects", token=owner.token,
                       json_body={"name": "on a branch", "git_branch": "dev"})
    assert created.status == 422
    ok = api.post("/api/v1/projects", token=owner.token,
                  json_body={"name": "on main", "git_branch": "main"})
    assert ok.status == 201 and ok.json["git_branch"] == "main"


def test_project_responses_carry_upstreams_fields(api: Api) -> None:
    owner = make_user(api)
    project = make_project(api, owner, visibility="public")
    for listed in (api.get("/api/v1/projects", token=owner.token).json,
                   api.get("/api/v1/projects/public?limit=100").json):
        mine = next(p for p in listed if p["id"] == project["id"])
        for field in ("id", "name", "slug", "description", "visibility", "git_branch", "owner_id",
                      "stars_count", "views_count", "created_at", "updated_at"):
            assert field in mine, field


# -- stars ---------------------------------------------------------------------------------------

def _star(api: Api, user: UserCtx, pid: int, method: str = "POST") -> Any:
    return api.request(method, f"/api/v1/projects/{pid}/star", token=user.token)


def test_stars_are_per_user_and_idempotent(api: Api) -> None:
    owner, fan, other = make_user(api), make_user(api), make_user(api)
    pid = make_project(api, owner, visibility="public")["id"]
    assert _star(api, fan, pid).json == {"project_id": pid, "starred": True, "stars_count": 1}
    assert _star(api, fan, pid).json["stars_count"] == 1  # twice: still one
    assert _star(api, other, pid).json["stars_count"] == 2
    assert _star(api, owner, pid, "GET").json == {"project_id": pid, "starred": False,
                                                  "stars_count": 2}
    assert api.get(f"/api/v1/projects/{pid}").json["stars_count"] == 2
    assert _star(api, fan, pid, "DELETE").json == {"project_id": pid, "starred": False,
                                                   "stars_count": 1}
    assert _star(api, fan, pid, "DELETE").json["stars_count"] == 1  # twice: nothing more
    assert _star(api, owner, pid, "DELETE").json["stars_count"] == 1  # never starred
    assert _star(api, other, pid, "GET").json["starred"] is True


def test_deleting_a_project_removes_its_stars(api: Api) -> None:
    from chalicelib.models.projects import Star

    owner, fan = make_user(api), make_user(api)
    pid = make_project(api, owner, visibility="public")["id"]
    _star(api, fan, pid)
    assert api.delete(f"/api/v1/projects/{pid}", token=owner.token).status == 204
    assert list(Star.query(pid)) == []


# -- views ---------------------------------------------------------------------------------------

def test_views_count_once_per_viewer_per_hour(api: Api) -> None:
    owner, reader, member = make_user(api), make_user(api), make_user(api)
    project = make_project(api, owner, visibility="public")
    pid = project["id"]
    add_member(api, owner, pid, member, "viewer")
    assert project["views_count"] == 0
    first = api.get(f"/api/v1/projects/{pid}", token=reader.token).json
    assert first["views_count"] == 1
    for _ in range(3):
        assert api.get(f"/api/v1/projects/{pid}", token=reader.token).json["views_count"] == 1
    assert api.get(f"/api/v1/projects/{pid}", token=member.token).json["views_count"] == 2
    assert api.get(f"/api/v1/projects/{pid}").json["views_count"] == 3  # anonymous, by address
    assert api.get(f"/api/v1/projects/{pid}").json["views_count"] == 3
    # a refused read is no view
    private = make_project(api, owner)
    assert api.get(f"/api/v1/projects/{private['id']}", token=reader.token).status == 404
    assert api.get(f"/api/v1/projects/{private['id']}", token=owner.token).json["views_count"] == 1


def test_a_view_mark_that_has_expired_counts_again(api: Api) -> None:
    import time

    from chalicelib.services import views

    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    viewer = views.viewer_key(owner.id, "")
    assert api.get(f"/api/v1/projects/{pid}", token=owner.token).json["views_count"] == 1
    # WHEN the hour is over (the mark's expires_at has passed; TTL deletes it later)
    later = time.time() + views.WINDOW_SECONDS + 1
    mark = views.mark(pid, viewer)
    mark.refresh()
    assert views.count(pid, viewer, mark, now=later) is True
    # THEN it counted once more, and not again within the new hour
    mark.refresh()
    assert views.count(pid, viewer, mark, now=later + 1) is False
    assert api.get(f"/api/v1/projects/{pid}", token=owner.token).json["views_count"] == 2


def test_repeated_views_write_nothing(api: Api) -> None:
    from bench.measure import counting_backend_calls

    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    api.get(f"/api/v1/projects/{pid}", token=owner.token)
    with counting_backend_calls() as calls:
        assert api.get(f"/api/v1/projects/{pid}", token=owner.token).status == 200
    assert dict(calls) == {"BatchGetItem": 1}, dict(calls)
