"""Integer ids: JSON numbers below 2**53, time-ordered, unique by conditional write with retry.

The web client types every id as a JavaScript `number` and reads path ids with `parseInt`, so
an id must survive a round trip through a double exactly and have one spelling in a URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib import ids
from tests.conftest import Api, UserCtx, make_file, make_project, make_user, unique
from tests.jobs_support import Queues, queues_fixture

JS_MAX_SAFE = 2**53 - 1


# -- the scheme ----------------------------------------------------------------------------------

def test_ids_are_positive_integers_below_2_to_the_53() -> None:
    drawn = [ids.new_number_id() for _ in range(2000)]
    assert all(isinstance(i, int) and 1 <= i <= JS_MAX_SAFE for i in drawn)
    # at the end of the 41-bit clock the largest id is still exact in a double
    last_ms = ids.ID_EPOCH_MS + (1 << 41) - 1
    assert ids.new_number_id(last_ms) <= JS_MAX_SAFE
    with pytest.raises(ValueError):
        ids.new_number_id(last_ms + 1)
    with pytest.raises(ValueError):
        ids.new_number_id(ids.ID_EPOCH_MS - 1)


def test_ids_are_time_ordered_to_the_millisecond() -> None:
    t = ids.ID_EPOCH_MS + 123_456_789
    earlier = [ids.new_number_id(t) for _ in range(200)]
    later = [ids.new_number_id(t + 1) for _ in range(200)]
    assert max(earlier) < min(later)
    assert {i >> 12 for i in earlier} == {t - ids.ID_EPOCH_MS}


def test_every_id_survives_a_javascript_number() -> None:
    # JSON.parse turns a number into a double; below 2**53 every integer is exact
    for value in (1, JS_MAX_SAFE, ids.new_number_id()):
        assert int(float(value)) == value


@pytest.mark.parametrize("text", ["0", "01", "007", "1.0", "-1", "+1", " 1", "1 ", "1e3", "0x1F",
                                  "١٢", str(2**53), "9" * 17, "", "abc"])
def test_only_the_canonical_spelling_parses(text: str) -> None:
    assert ids.parse_number_id(text) is None


@pytest.mark.parametrize("value", [1, 42, JS_MAX_SAFE])
def test_canonical_ids_round_trip(value: int) -> None:
    assert ids.parse_number_id(str(value)) == value


def test_distinct_ids_for_one_transaction() -> None:
    drawn: set[int] = set()
    made = [ids.distinct_number_id(drawn) for _ in range(500)]
    assert len(set(made)) == 500 and drawn == set(made)


# -- the API answers integers --------------------------------------------------------------------

queues = queues_fixture()


def _is_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= JS_MAX_SAFE


def test_every_id_in_responses_is_an_integer(api: Api, queues: Queues) -> None:
    owner, other = make_user(api), make_user(api)
    assert _is_id(owner.id)
    me = api.get("/api/v1/auth/me", token=owner.token).json
    assert me["id"] == owner.id
    project = make_project(api, owner)
    assert _is_id(project["id"]) and project["owner_id"] == owner.id
    added = api.post(f"/api/v1/projects/{project['id']}/members", token=owner.token,
                     json_body={"username": other.username, "role": "viewer"}).json
    assert added["user_id"] == other.id
    created = make_file(api, owner, project["id"])
    assert _is_id(created["id"])
    job = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                   json_body={"job_type": "lint", "config": {}}).json
    assert _is_id(job["id"]) and job["project_id"] == project["id"] and job["created_by"] == owner.id
    logs = api.get(f"/api/v1/projects/{project['id']}/jobs/{job['id']}/logs", token=owner.token).json
    assert logs["job_id"] == job["id"]
    token = api.post("/api/v1/auth/tokens", token=owner.token, json_body={"name": "ci"}).json
    assert _is_id(token["id"])
    upload = api.post(f"/api/v1/projects/{project['id']}/files/upload-url", token=owner.token,
                      json_body={"filename": "big.v", "filepath": "rtl/big.v"}).json
    assert _is_id(upload["upload_id"])
    # and each of them is readable again at its path
    assert api.get(f"/api/v1/projects/{project['id']}/files/{created['id']}",
                   token=owner.token).status == 200
    assert api.get(f"/api/v1/projects/{project['id']}/files/uploads/{upload['upload_id']}",
                   token=owner.token).status == 200


def test_newest_first_follows_creation(api: Api, queues: Queues) -> None:
    owner = make_user(api)
    project = make_project(api, owner)
    made = []
    for _ in range(4):
        reply = api.post(f"/api/v1/projects/{project['id']}/jobs", token=owner.token,
                         json_body={"job_type": "lint", "config": {}})
        made.append(reply.json["id"])
    # ids drawn later are never in an earlier millisecond
    assert [i >> 12 for i in made] == sorted(i >> 12 for i in made)
    listed = [j["id"] for j in api.get(f"/api/v1/projects/{project['id']}/jobs",
                                       token=owner.token).json]
    assert listed == sorted(made, reverse=True)


# -- collisions are retried with a fresh id ------------------------------------------------------

@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[int]], list[int]]:
    """Make our own id source hand out `values` first, then fresh ids; returns what it gave."""

    def install(values: list[int]) -> list[int]:
        queue, given = list(values), []
        real = ids.new_number_id

        def fake(now_ms: int | None = None) -> int:
            value = queue.pop(0) if queue else real(now_ms)
            given.append(value)
            return value

        monkeypatch.setattr(ids, "new_number_id", fake)
        return given

    return install


def test_a_colliding_project_id_is_drawn_again(api: Api, draws: Callable[[list[int]], list[int]]) -> None:
    owner = make_user(api)
    existing = make_project(api, owner)
    given = draws([existing["id"], existing["id"]])
    created = make_project(api, owner)
    assert given[:2] == [existing["id"], existing["id"]] and len(given) == 3
    assert created["id"] == given[2] != existing["id"]
    # the existing project is untouched
    again = api.get(f"/api/v1/projects/{existing['id']}", token=owner.token).json
    assert again["name"] == existing["name"]


def test_a_colliding_user_id_is_drawn_again(api: Api, draws: Callable[[list[int]], list[int]]) -> None:
    first = make_user(api)
    given = draws([first.id])
    second = make_user(api)
    assert len(given) == 2 and second.id == given[1] != first.id
    assert api.get("/api/v1/auth/me", token=first.token).json["username"] == first.username


def test_a_colliding_file_id_is_drawn_again(api: Api, draws: Callable[[list[int]], list[int]]) -> None:
    owner = make_user(api)
    project = make_project(api, owner)
    # (not HDL files: an HDL file's modules draw ids of their own, see the next test)
    existing = make_file(api, owner, project["id"], "doc/a.txt", "module a; endmodule\n")
    given = draws([existing["id"]])
    created = make_file(api, owner, project["id"], "doc/b.txt", "module b; endmodule\n")
    assert len(given) == 2 and created["id"] == given[1]
    files = api.get(f"/api/v1/projects/{project['id']}/files", token=owner.token).json
    assert sorted(f["filepath"] for f in files) == ["doc/a.txt", "doc/b.txt"]
    body = api.get(f"/api/v1/projects/{project['id']}/files/{existing['id']}", token=owner.token).json
    assert body["content"] == "module a; endmodule\n"


def test_a_colliding_module_id_is_drawn_again(api: Api, draws: Callable[[list[int]], list[int]]) -> None:
    owner = make_user(api)
    project = make_project(api, owner)
    base = f"/api/v1/projects/{project['id']}"
    make_file(api, owner, project["id"], "rtl/a.v", "module a; endmodule\n")
    existing = api.get(f"{base}/modules", token=owner.token).json[0]
    api.put(f"{base}/modules/{existing['id']}", token=owner.token, json_body={"description": "A"})
    # the new file's id is free; its module's first id is module a's
    given = draws([ids.new_number_id(), existing["id"]])
    created = make_file(api, owner, project["id"], "rtl/b.v", "module b; endmodule\n")
    modules = {m["name"]: m for m in api.get(f"{base}/modules", token=owner.token).json}
    assert given[:2] == [created["id"], existing["id"]] and len(given) == 3
    assert modules["b"]["id"] == given[2] != existing["id"]
    assert modules["a"] == {**existing, "description": "A", "updated_at": modules["a"]["updated_at"]}


def test_colliding_job_and_token_and_upload_ids_are_drawn_again(
        api: Api, queues: Queues, draws: Callable[[list[int]], list[int]]) -> None:
    owner = make_user(api)
    project = make_project(api, owner)
    base = f"/api/v1/projects/{project['id']}"
    job = api.post(f"{base}/jobs", token=owner.token, json_body={"job_type": "lint"}).json
    given = draws([job["id"]])
    second = api.post(f"{base}/jobs", token=owner.token, json_body={"job_type": "lint"})
    assert second.status == 201 and second.json["id"] == given[1] != job["id"]

    token = api.post("/api/v1/auth/tokens", token=owner.token, json_body={"name": "a"}).json
    given = draws([token["id"]])
    other = api.post("/api/v1/auth/tokens", token=owner.token, json_body={"name": "b"})
    assert other.status == 201 and other.json["id"] == given[1] != token["id"]

    up = api.post(f"{base}/files/upload-url", token=owner.token,
                  json_body={"filename": "x.v", "filepath": "x.v"}).json
    given = draws([up["upload_id"]])
    again = api.post(f"{base}/files/upload-url", token=owner.token,
                     json_body={"filename": "y.v", "filepath": "y.v"})
    assert again.status == 201 and again.json["upload_id"] == given[1] != up["upload_id"]
    first = api.get(f"{base}/files/uploads/{up['upload_id']}", token=owner.token).json
    assert first["filepath"] == "x.v"


def test_a_taken_name_is_not_retried_as_a_collision(api: Api,
                                                    draws: Callable[[list[int]], list[int]]) -> None:
    owner = make_user(api)
    name = unique("same ")
    make_project(api, owner, name=name)
    given = draws([])
    reply = api.post("/api/v1/projects", token=owner.token, json_body={"name": name})
    assert reply.status == 409 and len(given) == 1


# -- path ids have one spelling ------------------------------------------------------------------

NON_CANONICAL = ["01", "1.0", "-1", "+1", "0", str(2**53), "1e3", "%201"]


@pytest.mark.parametrize("spelling", NON_CANONICAL)
def test_non_canonical_path_ids_are_404(api: Api, queues: Queues, owner: UserCtx,
                                         spelling: str) -> None:
    project = make_project(api, owner)
    pid = project["id"]
    created = make_file(api, owner, pid)
    job = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token, json_body={"job_type": "lint"}).json
    # a real id spelt differently, and the spelling on its own
    variants = {spelling}
    if spelling in ("01", "+1", "1.0"):
        variants |= {f"0{pid}", f"+{pid}", f"{pid}.0"}
    for bad in variants:
        for path in (f"/api/v1/projects/{bad}", f"/api/v1/projects/{bad}/files",
                     f"/api/v1/projects/{pid}/files/{bad}", f"/api/v1/projects/{pid}/jobs/{bad}",
                     f"/api/v1/projects/{pid}/jobs/{bad}/logs",
                     f"/api/v1/projects/{pid}/files/uploads/{bad}"):
            reply = api.get(path, token=owner.token)
            assert reply.status == 404, (path, reply.body)
            assert reply.json["detail"]
        assert api.delete(f"/api/v1/auth/tokens/{bad}", token=owner.token).status == 404
        assert api.delete(f"/api/v1/projects/{pid}/members/{bad}", token=owner.token).status == 404
    # the canonical spellings still work
    assert api.get(f"/api/v1/projects/{pid}/files/{created['id']}", token=owner.token).status == 200
    assert api.get(f"/api/v1/projects/{pid}/jobs/{job['id']}", token=owner.token).status == 200
