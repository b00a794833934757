"""Accounts over HTTP: register, login, me, login limits, password change, personal API tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from chalice.local import LambdaEventConverter

from tests.conftest import Api, UserCtx, make_user, unique
from tests.settings_override import settings_env

# The wire contract's fields, plus the commit address settings (issue 10, finding 9).
USER_FIELDS = {"id", "email", "username", "full_name", "is_active", "created_at", "public_email",
               "commit_email"}


@pytest.fixture
def client_ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test logs in from its own address (a label only: no traffic goes there), so failed
    logins of one test never count against another's per-client limit."""
    address = f"203.0.113.{int(unique('')[:6], 16) % 250 + 1}-{unique('')}"
    monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)
    yield address


def register(api: Api, **fields: str | None) -> tuple[int, dict]:
    reply = api.post("/api/v1/auth/register", json_body=fields)
    return reply.status, reply.json


def login(api: Api, email: str, password: str) -> tuple[int, dict, str | None]:
    reply = api.post("/api/v1/auth/login", json_body={"email": email, "password": password})
    return reply.status, reply.json, reply.header("Retry-After")


def assert_no_secret(body: object) -> None:
    text = json.dumps(body)
    assert "$2b$" not in text and "password" not in text


# --- register / login / me ------------------------------------------------------------------


def test_register_answers_the_public_user_only(api: Api) -> None:
    # GIVEN a new email written with capitals
    name = unique("reg")
    # WHEN registering with the four fields of the wire contract
    status, body = register(api, email=f"{name.upper()}@Example.TEST", username=name,
                            password="a long passphrase", full_name="Ada Lovelace")
    # THEN 201 with exactly the public fields, the email normalised, no hash anywhere
    assert status == 201, body
    assert set(body) == USER_FIELDS
    assert body["email"] == f"{name}@example.test"
    assert body["username"] == name and body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True and body["created_at"].endswith("Z")
    assert_no_secret(body)


def test_full_name_is_optional(api: Api) -> None:
    name = unique("nofn")
    status, body = register(api, email=f"{name}@example.test", username=name,
                            password="a long passphrase")
    assert status == 201, body
    assert body["full_name"] is None


def test_duplicate_email_any_case_stores_nothing_and_is_not_confirmed(api: Api, owner: UserCtx) -> None:
    # GIVEN an existing user; WHEN someone registers their email in other capitals
    fresh_name = unique("dupe")
    status, body = register(api, email=owner.email.upper(), username=fresh_name,
                            password="another passphrase")
    # THEN the answer is a 201 like any other (registration must not confirm which addresses
    # have accounts: issue 10, finding 9)...
    assert status == 201, body
    assert body["username"] == fresh_name and body["id"] != owner.id
    # ...but nothing was kept: the username of that request is still free,
    # and the owner's password is unchanged
    assert login(api, owner.email, "another passphrase")[0] == 401
    status, _ = register(api, email=f"{fresh_name}@example.test", username=fresh_name,
                         password="another passphrase")
    assert status == 201


def test_duplicate_username_any_case_is_refused_and_stores_nothing(api: Api, owner: UserCtx) -> None:
    fresh_email = f"{unique('dupu')}@example.test"
    status, body = register(api, email=fresh_email, username=owner.username.upper(),
                            password="another passphrase")
    assert status == 400
    assert "already registered" in body["detail"].lower() and "username" in body["detail"].lower()
    # The email of the refused request was not taken.
    assert login(api, fresh_email, "another passphrase")[0] == 401
    status, _ = register(api, email=fresh_email, username=unique("dupu"),
                         password="another passphrase")
    assert status == 201


def test_login_answers_a_bearer_token_and_me_the_user(api: Api, owner: UserCtx) -> None:
    status, body, _ = login(api, owner.email.upper(), owner.password)
    assert status == 200, body
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    me = api.get("/api/v1/auth/me", token=body["access_token"])
    assert me.status == 200
    assert set(me.json) == USER_FIELDS
    assert me.json["id"] == owner.id and me.json["username"] == owner.username
    assert_no_secret(me.json)


def test_bad_credentials_are_401_with_one_message(api: Api, owner: UserCtx, client_ip: str) -> None:
    wrong_password = login(api, owner.email, owner.password + "x")
    unknown_email = login(api, f"{unique('nobody')}@example.test", owner.password)
    assert wrong_password[0] == unknown_email[0] == 401
    # The same words for both: the answer does not tell which emails have accounts.
    assert wrong_password[1]["detail"] == unknown_email[1]["detail"]


def test_me_without_a_token_is_401(api: Api) -> None:
    reply = api.get("/api/v1/auth/me")
    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == "Bearer"
    assert reply.json["detail"]


def test_passwords_longer_than_72_bytes_are_compared_whole(api: Api, client_ip: str) -> None:
    # GIVEN a user whose password is longer than bcrypt's 72-byte input
    shared = "é" * 36  # 72 bytes of UTF-8
    user = make_user(api, password=shared + "first ending")
    # WHEN logging in with a password that shares the first 72 bytes only
    # THEN it is a different password
    assert login(api, user.email, shared + "other ending")[0] == 401
    assert login(api, user.email, shared)[0] == 401
    assert login(api, user.email, shared + "first ending")[0] == 200


# --- login limits -----------------------------------------------------------------------------


def test_failed_logins_per_account_are_limited(api: Api, client_ip: str) -> None:
    # GIVEN a fresh account and a limit of 3 failures per account
    user = make_user(api)
    with settings_env(A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT=3,
                      A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT=1000, A6HUB_LOGIN_WINDOW_SECONDS=600):
        # WHEN 3 logins fail
        for _ in range(3):
            assert login(api, user.email, "wrong password")[0] == 401
        # THEN the next one, even with the right password, is 429 with Retry-After
        status, body, retry_after = login(api, user.email, user.password)
        assert status == 429, body
        assert retry_after is not None and 1 <= int(retry_after) <= 600
        assert body["detail"]
        # AND the email in other capitals is the same account
        assert login(api, user.email.upper(), user.password)[0] == 429
    # AND another account from the same address still logs in
    other = make_user(api)
    assert login(api, other.email, other.password)[0] == 200


def test_failed_logins_per_client_address_are_limited(api: Api, owner: UserCtx,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     client_ip: str) -> None:
    # GIVEN a limit of 3 failures per client address
    with settings_env(A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT=3,
                      A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000, A6HUB_LOGIN_WINDOW_SECONDS=600):
        # WHEN one address fails 3 times, against different (unknown) accounts
        for _ in range(3):
            assert login(api, f"{unique('guess')}@example.test", "guess")[0] == 401
        # THEN that address is refused even for a real account's right password
        status, _, retry_after = login(api, owner.email, owner.password)
        assert status == 429 and retry_after is not None and int(retry_after) >= 1
        # AND another address is not
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", client_ip + "-other")
        assert login(api, owner.email, owner.password)[0] == 200


# --- password change ---------------------------------------------------------------------------


def test_change_password_revokes_older_tokens(api: Api, client_ip: str) -> None:
    # GIVEN a user with a session token
    user = make_user(api)
    old_token = user.token
    # WHEN they give a wrong current password THEN 400 and nothing changes
    wrong = api.post("/api/v1/auth/password", token=old_token,
                     json_body={"current_password": "not it", "new_password": "new passphrase"})
    assert wrong.status == 400
    assert api.get("/api/v1/auth/me", token=old_token).status == 200
    assert login(api, user.email, "new passphrase")[0] == 401
    # WHEN they change it properly
    changed = api.post("/api/v1/auth/password", token=old_token,
                       json_body={"current_password": user.password,
                                  "new_password": "new passphrase"})
    assert changed.status == 204, changed.body
    # THEN the old token and the old password stop working at once
    assert api.get("/api/v1/auth/me", token=old_token).status == 401
    assert login(api, user.email, user.password)[0] == 401
    # AND a token from the new password works, even within the same second
    status, body, _ = login(api, user.email, "new passphrase")
    assert status == 200
    assert api.get("/api/v1/auth/me", token=body["access_token"]).status == 200


def test_change_password_validates_the_new_one(api: Api, owner: UserCtx) -> None:
    short = api.post("/api/v1/auth/password", token=owner.token,
                     json_body={"current_password": owner.password, "new_password": "short"})
    assert short.status == 422
    assert api.get("/api/v1/auth/me", token=owner.token).status == 200
    anonymous = api.post("/api/v1/auth/password",
                         json_body={"current_password": owner.password, "new_password": "x" * 12})
    assert anonymous.status == 401


# --- personal API tokens ----------------------------------------------------------------------


def test_api_token_lifecycle(api: Api, editor: UserCtx, stranger: UserCtx) -> None:
    # GIVEN a user who creates a personal token
    created = api.post("/api/v1/auth/tokens", token=editor.token, json_body={"name": "ci"})
    assert created.status == 201, created.body
    secret = created.json["token"]
    assert secret.startswith("a6p_") and created.json["prefix"] == secret[:10]
    assert created.json["name"] == "ci" and created.json["expires_at"] is None
    token_id = created.json["id"]
    # THEN the list shows it without the secret
    listed = api.get("/api/v1/auth/tokens", token=editor.token)
    assert listed.status == 200
    mine = [t for t in listed.json if t["id"] == token_id]
    assert len(mine) == 1 and "token" not in mine[0]
    assert secret not in listed.body.decode()
    # AND it works as a Bearer token for the user
    me = api.get("/api/v1/auth/me", token=secret)
    assert me.status == 200 and me.json["id"] == editor.id
    # WHEN another user tries to revoke it THEN 404 and it still works
    assert api.delete(f"/api/v1/auth/tokens/{token_id}", token=stranger.token).status == 404
    assert api.get("/api/v1/auth/me", token=secret).status == 200
    # WHEN the owner revokes it THEN it stops working and leaves the list
    assert api.delete(f"/api/v1/auth/tokens/{token_id}", token=editor.token).status == 204
    assert api.get("/api/v1/auth/me", token=secret).status == 401
    listed = api.get("/api/v1/auth/tokens", token=editor.token)
    assert token_id not in {t["id"] for t in listed.json}
    assert api.delete(f"/api/v1/auth/tokens/{token_id}", token=editor.token).status == 404


def test_api_token_with_expiry_and_bad_requests(api: Api, viewer: UserCtx) -> None:
    created = api.post("/api/v1/auth/tokens", token=viewer.token,
                       json_body={"name": "nightly", "expires_in_days": 7})
    assert created.status == 201
    assert created.json["expires_at"] > 0
    for bad in ({}, {"name": ""}, {"name": "x", "expires_in_days": 0},
                {"name": "x", "expires_in_days": "7"}, {"name": "x", "scope": "all"}):
        reply = api.post("/api/v1/auth/tokens", token=viewer.token, json_body=bad)
        assert reply.status == 422, (bad, reply.body)
    names = [t["name"] for t in api.get("/api/v1/auth/tokens", token=viewer.token).json]
    assert "x" not in names and "" not in names
    assert api.post("/api/v1/auth/tokens", json_body={"name": "anon"}).status == 401
    assert api.get("/api/v1/auth/tokens").status == 401


def test_unknown_api_token_is_401(api: Api) -> None:
    assert api.get("/api/v1/auth/me", token="a6p_" + "x" * 43).status == 401


def test_expired_api_token_is_401(api: Api, owner: UserCtx) -> None:
    from chalicelib.models.accounts import ApiToken
    from chalicelib.services.identity import hash_api_token

    created = api.post("/api/v1/auth/tokens", token=owner.token,
                       json_body={"name": "short-lived", "expires_in_days": 1})
    secret = created.json["token"]
    assert api.get("/api/v1/auth/me", token=secret).status == 200
    # WHEN its expiry passes (moved into the past rather than waiting a day)
    ApiToken.get(hash_api_token(secret)).update(actions=[ApiToken.expires_at.set(1)])
    reply = api.get("/api/v1/auth/me", token=secret)
    assert reply.status == 401 and "expired" in reply.json["detail"].lower()


def test_a_disabled_account_cannot_log_in_or_use_its_tokens(api: Api, client_ip: str) -> None:
    from chalicelib.models.accounts import User

    user = make_user(api)
    secret = api.post("/api/v1/auth/tokens", token=user.token,
                      json_body={"name": "ci"}).json["token"]
    User.get(user.id).update(actions=[User.is_active.set(False)])
    assert login(api, user.email, user.password)[0] == 401
    assert api.get("/api/v1/auth/me", token=user.token).status == 401
    assert api.get("/api/v1/auth/me", token=secret).status == 401
