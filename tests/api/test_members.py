"""Collaborators over HTTP: add by username or email, change role, remove, leave; the owner stays."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, UserCtx, add_member, make_project, user_fixture

alice = user_fixture("alice", "module")
bob = user_fixture("bob", "module")


def members(api: Api, owner: UserCtx, pid: str) -> dict[str, str]:
    reply = api.get(f"/api/v1/projects/{pid}/members", token=owner.token)
    assert reply.status == 200
    return {m["user_id"]: m["role"] for m in reply.json}


def can_write(api: Api, user: UserCtx, pid: str, name: str) -> int:
    return api.post(f"/api/v1/projects/{pid}/files", token=user.token,
                    json_body={"filename": f"{name}.v", "content": "x"}).status


def test_add_by_username(api: Api, owner: UserCtx, alice: UserCtx, bob: UserCtx) -> None:
    # GIVEN a private project
    pid = make_project(api, owner)["id"]
    assert members(api, owner, pid) == {owner.id: "owner"}
    # WHEN the owner adds two people by username
    by_name = api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
                       json_body={"username": alice.username, "role": "editor"})
    second = api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
                      json_body={"username": bob.username})
    # THEN both are members with the roles given (viewer by default)
    assert by_name.status == 201, by_name.body
    assert set(by_name.json) == {"user_id", "username", "role", "created_at"}
    assert by_name.json["user_id"] == alice.id and by_name.json["role"] == "editor"
    assert second.status == 201, second.body
    assert second.json["username"] == bob.username and second.json["role"] == "viewer"
    assert members(api, owner, pid) == {owner.id: "owner", alice.id: "editor", bob.id: "viewer"}
    # AND they see the project in their own list, and can act by their role
    for user in (alice, bob):
        mine = api.get("/api/v1/projects?limit=100", token=user.token)
        assert pid in {p["id"] for p in mine.json}
        assert api.get(f"/api/v1/projects/{pid}", token=user.token).status == 200
    assert can_write(api, alice, pid, "alice") == 201
    assert can_write(api, bob, pid, "bob") == 403


def test_adding_by_email_does_not_tell_whether_the_address_has_an_account(
        api: Api, owner: UserCtx, alice: UserCtx) -> None:
    # GIVEN a private project, an address with an account and one without
    pid = make_project(api, owner)["id"]
    # WHEN the owner tries to add each by email
    known = api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
                     json_body={"email": alice.email.upper()})
    unknown = api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
                       json_body={"email": "nobody-here@example.test"})
    # THEN both get the same refusal, which says to use the username, and nobody was added
    assert known.status == unknown.status == 422, (known.body, unknown.body)
    assert known.json == unknown.json and "by username" in known.json["detail"]
    assert members(api, owner, pid) == {owner.id: "owner"}


def test_adding_twice_or_the_owner_is_409(api: Api, owner: UserCtx, alice: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, alice, "viewer")
    again = api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
                     json_body={"username": alice.username, "role": "editor"})
    assert again.status == 409
    owner_again = api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
                           json_body={"username": owner.username, "role": "viewer"})
    assert owner_again.status == 409
    assert members(api, owner, pid) == {owner.id: "owner", alice.id: "viewer"}


@pytest.mark.parametrize(("body", "status"), [
    ({"username": "nobody-here-xyz"}, 404),
    ({}, 422),
    ({"role": "editor"}, 422),
    ({"username": "x", "email": "x@example.test"}, 422),
    ({"username": "{alice}", "role": "owner"}, 422),
    ({"username": "{alice}", "role": "admin"}, 422),
    ({"username": "{alice}", "user_id": "x"}, 422),
])
def test_bad_additions_change_nothing(api: Api, owner: UserCtx, alice: UserCtx,
                                      body: dict[str, Any], status: int) -> None:
    pid = make_project(api, owner)["id"]
    body = {k: v.replace("{alice}", alice.username) for k, v in body.items()}
    reply = api.post(f"/api/v1/projects/{pid}/members", token=owner.token, json_body=body)
    assert reply.status == status, reply.body
    assert members(api, owner, pid) == {owner.id: "owner"}


def test_change_role_takes_effect(api: Api, owner: UserCtx, alice: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, alice, "viewer")
    assert can_write(api, alice, pid, "before") == 403
    promoted = api.put(f"/api/v1/projects/{pid}/members/{alice.id}", token=owner.token,
                       json_body={"role": "editor"})
    assert promoted.status == 200 and promoted.json["role"] == "editor"
    assert can_write(api, alice, pid, "after") == 201
    demoted = api.patch(f"/api/v1/projects/{pid}/members/{alice.id}", token=owner.token,
                        json_body={"role": "viewer"})
    assert demoted.status == 200 and demoted.json["role"] == "viewer"
    assert can_write(api, alice, pid, "again") == 403
    for bad in ({"role": "owner"}, {}, {"role": "editor", "username": "x"}):
        reply = api.put(f"/api/v1/projects/{pid}/members/{alice.id}", token=owner.token,
                        json_body=bad)
        assert reply.status == 422
    assert members(api, owner, pid)[alice.id] == "viewer"


def test_an_editor_cannot_manage_members(api: Api, owner: UserCtx, alice: UserCtx,
                                         bob: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, alice, "editor")
    add_member(api, owner, pid, bob, "viewer")
    before = members(api, owner, pid)
    assert api.put(f"/api/v1/projects/{pid}/members/{bob.id}", token=alice.token,
                   json_body={"role": "editor"}).status == 403
    assert api.put(f"/api/v1/projects/{pid}/members/{alice.id}", token=alice.token,
                   json_body={"role": "editor"}).status == 403
    assert api.delete(f"/api/v1/projects/{pid}/members/{bob.id}", token=alice.token).status == 403
    assert members(api, owner, pid) == before


def test_owner_cannot_be_removed_or_demoted(api: Api, owner: UserCtx, alice: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, alice, "editor")
    demote = api.put(f"/api/v1/projects/{pid}/members/{owner.id}", token=owner.token,
                     json_body={"role": "viewer"})
    remove = api.delete(f"/api/v1/projects/{pid}/members/{owner.id}", token=owner.token)
    by_editor = api.delete(f"/api/v1/projects/{pid}/members/{owner.id}", token=alice.token)
    assert demote.status == 400 and remove.status == 400, (demote.body, remove.body)
    assert by_editor.status == 403
    assert members(api, owner, pid)[owner.id] == "owner"
    assert api.put(f"/api/v1/projects/{pid}", token=owner.token,
                   json_body={"description": "still the owner"}).status == 200


def test_removal_and_leaving(api: Api, owner: UserCtx, alice: UserCtx, bob: UserCtx,
                             stranger: UserCtx) -> None:
    # GIVEN a private project with two members
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, alice, "editor")
    add_member(api, owner, pid, bob, "viewer")
    # WHEN the owner removes one THEN they lose access at once
    assert api.delete(f"/api/v1/projects/{pid}/members/{alice.id}", token=owner.token).status == 204
    assert api.get(f"/api/v1/projects/{pid}", token=alice.token).status == 404
    assert pid not in {p["id"] for p in api.get("/api/v1/projects", token=alice.token).json}
    assert api.delete(f"/api/v1/projects/{pid}/members/{alice.id}", token=owner.token).status == 404
    # WHEN a viewer leaves on their own THEN the same
    assert api.delete(f"/api/v1/projects/{pid}/members/{bob.id}", token=bob.token).status == 204
    assert api.get(f"/api/v1/projects/{pid}", token=bob.token).status == 404
    assert members(api, owner, pid) == {owner.id: "owner"}
    # AND a stranger can neither leave nor see it
    assert api.delete(f"/api/v1/projects/{pid}/members/{stranger.id}",
                      token=stranger.token).status == 404


def test_non_member_leaving_a_public_project_is_404(api: Api, owner: UserCtx,
                                                   stranger: UserCtx) -> None:
    pid = make_project(api, owner, visibility="public")["id"]
    reply = api.delete(f"/api/v1/projects/{pid}/members/{stranger.id}", token=stranger.token)
    assert reply.status == 404
    assert members(api, owner, pid) == {owner.id: "owner"}


def test_members_list_pages(api: Api, owner: UserCtx, alice: UserCtx, bob: UserCtx) -> None:
    pid = make_project(api, owner, visibility="public")["id"]
    add_member(api, owner, pid, alice, "editor")
    add_member(api, owner, pid, bob, "viewer")
    first = api.get(f"/api/v1/projects/{pid}/members?limit=2")
    assert first.status == 200 and len(first.json) == 2
    link = first.header("Link")
    assert link is not None and link.endswith('; rel="next"')
    second = api.get(link[1:link.index(">")])
    assert second.status == 200
    seen = [m["user_id"] for m in first.json + second.json]
    assert sorted(seen) == sorted([owner.id, alice.id, bob.id])
