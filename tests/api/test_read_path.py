"""The authenticated read path: one BatchGetItem checks the caller and loads the project, and a
token that is no longer good is refused on it exactly as on any other route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient

from chalicelib.models.accounts import User
from tests.conftest import Api, UserCtx, add_member, make_project, make_user


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every AWS API call this process makes while the test runs, by operation name."""
    calls: list[str] = []
    original = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    yield calls


def test_owner_member_and_anonymous_reads_cost_one_call(api: Api, owner: UserCtx, viewer: UserCtx,
                                                        aws_calls: list[str]) -> None:
    # GIVEN a private project shared with a viewer, and a public one
    private = make_project(api, owner)
    add_member(api, owner, private["id"], viewer, "viewer")
    public = make_project(api, owner, visibility="public")
    for who, pid in ((owner, private["id"]), (viewer, private["id"]), (None, public["id"])):
        token = who.token if who else None
        aws_calls.clear()
        # WHEN the project is read with an access token (or anonymously), first in this hour
        reply = api.get(f"/api/v1/projects/{pid}", token=token)
        # THEN it answers after one round trip, plus the transaction that counts the view
        assert reply.status == 200, reply.body
        assert aws_calls == ["BatchGetItem", "TransactWriteItems"]
        # AND read again, a single round trip (the view mark rides with the project)
        aws_calls.clear()
        assert api.get(f"/api/v1/projects/{pid}", token=token).status == 200
        assert aws_calls == ["BatchGetItem"]


def test_a_stranger_gets_404_for_a_private_project(api: Api, owner: UserCtx,
                                                   stranger: UserCtx) -> None:
    private = make_project(api, owner)
    assert api.get(f"/api/v1/projects/{private['id']}", token=stranger.token).status == 404


@pytest.mark.parametrize("project_exists", [True, False])
def test_a_revoked_token_is_401_on_the_read_path(api: Api, project_exists: bool) -> None:
    # GIVEN a user whose token was revoked by a password change
    user = make_user(api)
    pid = make_project(api, user, visibility="public")["id"] if project_exists else "0" * 26
    changed = api.post("/api/v1/auth/password", token=user.token,
                       json_body={"current_password": user.password, "new_password": "another one!"})
    assert changed.status == 204
    # WHEN the old token reads a project (public, so it would be readable anonymously)
    reply = api.get(f"/api/v1/projects/{pid}", token=user.token)
    # THEN the token is refused, not ignored
    assert reply.status == 401
    assert api.get(f"/api/v1/projects/{pid}/files", token=user.token).status == 401


def test_a_deleted_or_disabled_user_is_401_on_the_read_path(api: Api) -> None:
    gone, disabled = make_user(api), make_user(api)
    pid = make_project(api, gone, visibility="public")["id"]
    User.get(gone.id).delete()
    User.get(disabled.id).update(actions=[User.is_active.set(False)])
    assert api.get(f"/api/v1/projects/{pid}", token=gone.token).status == 401
    assert api.get(f"/api/v1/projects/{pid}", token=disabled.token).status == 401
    assert api.get("/api/v1/projects/not-an-id", token=disabled.token).status == 401
