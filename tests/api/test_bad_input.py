"""Bad input gets a clear 4xx and leaves nothing behind: bodies, fields, sizes, paths, quotas,
forged tokens."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import boto3
import jwt
import pytest
from urllib3.filepost import encode_multipart_formdata

from tests.conftest import Api, UserCtx, make_file, make_project, make_user, unique
from tests.settings_override import settings_env


@pytest.fixture(scope="module")
def s3(emulator: Any) -> Any:
    return boto3.client("s3", endpoint_url=emulator.url)


@pytest.fixture(scope="module")
def project(api: Api, owner: UserCtx) -> dict[str, Any]:
    """A project with one file, shared by the tests that must leave it unchanged."""
    created = make_project(api, owner)
    make_file(api, owner, created["id"], "rtl/top.v", "module top; endmodule\n")
    return created


def stored(api: Api, s3: Any, owner: UserCtx, project_id: str) -> dict[str, Any]:
    """What a project holds: paths, counters, and the S3 objects under its prefix."""
    files = api.get(f"/api/v1/projects/{project_id}/files?limit=100", token=owner.token).json
    got = api.get(f"/api/v1/projects/{project_id}", token=owner.token).json
    listed = s3.list_objects_v2(Bucket=os.environ["A6HUB_BUCKET"], Prefix=f"projects/{project_id}/")
    return {
        "paths": sorted(f["filepath"] for f in files),
        "versions": sorted((f["id"], f["version"]) for f in files),
        "file_count": got["file_count"], "total_bytes": got["total_bytes"],
        "objects": sorted(o["Key"] for o in listed.get("Contents", [])),
    }


def my_project_names(api: Api, user: UserCtx) -> set[str]:
    return {p["name"] for p in api.get("/api/v1/projects?limit=100", token=user.token).json}


# --- request bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "status"), [
    ('{"name": "x",', 400),            # truncated JSON
    ("{'name': 'x'}", 400),            # not JSON
    (b"\xff\xfe{}", 400),              # not UTF-8
    ("", 422),                         # no body
    ("[]", 422), ('"a string"', 422), ("42", 422), ("null", 422),  # not an object
    ("[" * 200_000, 400), ('{"a":' * 100_000 + "1" + "}" * 100_000, 400),  # nested too deeply
])
def test_unparseable_bodies(api: Api, owner: UserCtx, raw: str | bytes, status: int) -> None:
    before = my_project_names(api, owner)
    reply = api.post("/api/v1/projects", token=owner.token, raw=raw)
    assert reply.status == status, reply.body
    assert reply.json["detail"]
    assert my_project_names(api, owner) == before


@pytest.mark.parametrize("body", [
    {},                                                    # missing name
    {"description": "no name"},
    {"name": ""},                                          # too short
    {"name": "x" * 101},                                   # too long
    {"name": 42},                                          # wrong type
    {"name": ["a"]},
    {"name": "ok", "visibility": "secret"},                # not an allowed value
    {"name": "ok", "visibility": True},
    {"name": "ok", "owner_id": "01ABCDEFGHJKMNPQRSTVWXYZ00"},  # extra (mass assignment)
    {"name": "ok", "file_count": 0},
])
def test_invalid_project_bodies_are_422(api: Api, owner: UserCtx, body: dict[str, Any]) -> None:
    before = my_project_names(api, owner)
    reply = api.post("/api/v1/projects", token=owner.token, json_body=body)
    assert reply.status == 422, reply.body
    assert reply.json["detail"]
    assert my_project_names(api, owner) == before


@pytest.mark.parametrize("body", [
    {"email": "@example.test", "username": "{name}", "password": "long enough"},
    {"email": "not-an-email", "username": "someone", "password": "long enough"},
    {"email": "{name}@example.test", "username": "-bad-", "password": "long enough"},
    {"email": "{name}@example.test", "username": "has space", "password": "long enough"},
    {"email": "{name}@example.test", "username": "{name}", "password": "short"},
    {"email": "{name}@example.test", "username": "{name}", "password": "p" * 1025},
    {"email": "{name}@example.test", "username": "{name}", "password": 12345678},
    {"email": "{name}@example.test", "username": "{name}"},
    {"email": "{name}@example.test", "username": "{name}", "password": "long enough",
     "is_active": False},
    {"email": "{name}@example.test", "username": "{name}", "password": "long enough",
     "id": "01ABCDEFGHJKMNPQRSTVWXYZ00"},
])
def test_invalid_registrations_store_nothing(api: Api, body: dict[str, Any]) -> None:
    name = unique("bad")
    body = {k: v.replace("{name}", name) if isinstance(v, str) else v for k, v in body.items()}
    reply = api.post("/api/v1/auth/register", json_body=body)
    assert reply.status == 422, reply.body
    # Nothing was taken: the same email and username register fine afterwards.
    ok = api.post("/api/v1/auth/register", json_body={
        "email": f"{name}@example.test", "username": name, "password": "long enough"})
    assert ok.status == 201, ok.body


def test_unsupported_content_type_is_415(api: Api, owner: UserCtx) -> None:
    before = my_project_names(api, owner)
    reply = api.post("/api/v1/projects", token=owner.token, raw="name=x",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 415
    assert reply.json["detail"]
    assert my_project_names(api, owner) == before


def test_oversized_request_body_is_413(api: Api, s3: Any, owner: UserCtx,
                                       project: dict[str, Any]) -> None:
    before = stored(api, s3, owner, project["id"])
    with settings_env(A6HUB_MAX_REQUEST_BYTES=2000):
        reply = api.post(f"/api/v1/projects/{project['id']}/files", token=owner.token,
                         json_body={"filename": "big.v", "content": "x" * 3000})
    assert reply.status == 413, reply.body
    assert reply.json["detail"]
    assert stored(api, s3, owner, project["id"]) == before


@pytest.mark.parametrize("body", [
    {"filename": "a.v", "content": 7},
    {"filename": "a.v", "content": "x", "encoding": "latin-1"},
    {"filename": "a.v", "content": "not base64!", "encoding": "base64"},
    {"filename": "a.v", "content": "x", "size_bytes": 1},
    {"filename": "", "content": "x"},
    {"content": "x"},
    {"filename": "a.v", "filepath": 3},
])
def test_invalid_file_bodies_store_nothing(api: Api, s3: Any, owner: UserCtx,
                                           project: dict[str, Any], body: dict[str, Any]) -> None:
    before = stored(api, s3, owner, project["id"])
    reply = api.post(f"/api/v1/projects/{project['id']}/files", token=owner.token, json_body=body)
    assert reply.status == 422, reply.body
    assert stored(api, s3, owner, project["id"]) == before


# --- file sizes and paths -----------------------------------------------------------------------


def test_oversized_files_are_413_through_json_and_upload(api: Api, s3: Any, owner: UserCtx,
                                                         project: dict[str, Any]) -> None:
    pid = project["id"]
    before = stored(api, s3, owner, pid)
    with settings_env(A6HUB_MAX_FILE_BYTES=1000):
        as_text = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                           json_body={"filename": "big.v", "content": "x" * 1001})
        as_base64 = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                             json_body={"filename": "big.bin", "encoding": "base64",
                                        "content": base64.b64encode(b"\0" * 1001).decode()})
        form, content_type = encode_multipart_formdata({"file": ("big.bin", b"\1" * 1001)})
        uploaded = api.post(f"/api/v1/projects/{pid}/files/upload", token=owner.token, raw=form,
                            headers={"Content-Type": content_type})
        fits = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                        json_body={"filename": "fits.v", "content": "x" * 1000})
        assert fits.status == 201
        grown = api.put(f"/api/v1/projects/{pid}/files/{fits.json['id']}", token=owner.token,
                        json_body={"content": "y" * 1001})
    assert (as_text.status, as_base64.status, uploaded.status, grown.status) == (413,) * 4
    after = stored(api, s3, owner, pid)
    # Only the file that fitted was added, unchanged by the refused update.
    assert after["paths"] == sorted([*before["paths"], "fits.v"])
    assert after["total_bytes"] == before["total_bytes"] + 1000
    assert len(after["objects"]) == len(before["objects"]) + 1
    got = api.get(f"/api/v1/projects/{pid}/files/{fits.json['id']}", token=owner.token)
    assert got.json["content"] == "x" * 1000 and got.json["version"] == 1
    assert api.delete(f"/api/v1/projects/{pid}/files/{fits.json['id']}",
                      token=owner.token).status == 204


HOSTILE = [
    ("../etc/passwd", "passwd"),
    ("rtl/../../x.v", "x.v"),
    ("/etc/passwd", "passwd"),
    ("//server/share/x.v", "x.v"),
    ("rtl/a\0b.v", "a\0b.v"),
    ("rtl/a\nb.v", "a\nb.v"),
    ("rtl/a\rb.v", "a\rb.v"),
    ("rtl/a\x1bb.v", "a\x1bb.v"),
    ("rtl/a\x7fb.v", "a\x7fb.v"),
    ("rtl/a\x85b.v", "a\x85b.v"),            # C1 control (NEL)
    ("rtl/a\u2028b.v", "a\u2028b.v"),        # line separator
    ("rtl/\u202egnp.v", "\u202egnp.v"),       # right-to-left override
    ("rtl\\x.v", "x.v"),
    ("..\\x.v", "x.v"),
    ("rtl/x.v", "x\\y.v"),
    ("rtl/" + "a" * 256 + "/x.v", "x.v"),    # a segment over 255 bytes
    ("rtl/" + "é" * 128 + ".v", "é" * 128 + ".v"),  # 258 bytes in 130 characters
    ("/".join(["abcdefghij"] * 100) + "/x.v", "x.v"),  # over 1024 characters
    (".git/config", "config"),
    ("rtl/.git/hooks/pre-commit", "pre-commit"),
    (".GIT/config", "config"),
    (".git./config", "config"),
    ("rtl/top.v", "other.v"),                # filename is not the last segment
    ("rtl/x.v", "a/x.v"),                    # filename with a folder
    ("rtl/.", "."),
    ("..", ".."),
]


@pytest.mark.parametrize(("filepath", "filename"), HOSTILE,
                         ids=[repr(p)[:40] for p, _ in HOSTILE])
def test_hostile_paths_are_refused_and_store_nothing(api: Api, s3: Any, owner: UserCtx,
                                                     project: dict[str, Any], filepath: str,
                                                     filename: str) -> None:
    pid = project["id"]
    before = stored(api, s3, owner, pid)
    reply = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                     json_body={"filename": filename, "filepath": filepath, "content": "x"})
    assert reply.status in (400, 422), (reply.status, reply.body)
    assert reply.json["detail"]
    # The same path through a rename of an existing file and through an upload
    existing = api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json[0]
    renamed = api.put(f"/api/v1/projects/{pid}/files/{existing['id']}", token=owner.token,
                      json_body={"filepath": filepath, "filename": filename})
    assert renamed.status in (400, 422), (renamed.status, renamed.body)
    form, content_type = encode_multipart_formdata({
        "file": (filename, b"x"),
        "filepath": filepath.encode("utf-8"),
    })
    uploaded = api.post(f"/api/v1/projects/{pid}/files/upload", token=owner.token, raw=form,
                        headers={"Content-Type": content_type})
    assert uploaded.status in (400, 422), (uploaded.status, uploaded.body)
    assert stored(api, s3, owner, pid) == before


@pytest.mark.parametrize("filepath", ["rtl/top.v", "rtl//top.v", "./rtl/top.v", "rtl/./top.v",
                                      "rtl/"])
def test_duplicate_paths_are_409(api: Api, s3: Any, owner: UserCtx, project: dict[str, Any],
                                 filepath: str) -> None:
    pid = project["id"]
    before = stored(api, s3, owner, pid)
    reply = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                     json_body={"filename": "top.v", "filepath": filepath, "content": "dupe"})
    assert reply.status == 409, reply.body
    assert "rtl/top.v" in reply.json["detail"]
    assert stored(api, s3, owner, pid) == before


def test_unicode_forms_of_one_name_are_one_path(api: Api, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    composed = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                        json_body={"filename": "caf\u00e9.v", "filepath": "caf\u00e9.v"})
    decomposed = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                          json_body={"filename": "cafe\u0301.v", "filepath": "cafe\u0301.v"})
    assert (composed.status, decomposed.status) == (201, 409)


# --- quotas -------------------------------------------------------------------------------------


def test_files_per_project_limit(api: Api, s3: Any, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    with settings_env(A6HUB_MAX_FILES_PER_PROJECT=2):
        make_file(api, owner, pid, "a.v")
        make_file(api, owner, pid, "b.v")
        before = stored(api, s3, owner, pid)
        third = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                         json_body={"filename": "c.v", "content": "x"})
        form, content_type = encode_multipart_formdata({"file": ("d.bin", b"\0\1")})
        upload = api.post(f"/api/v1/projects/{pid}/files/upload", token=owner.token, raw=form,
                          headers={"Content-Type": content_type})
        assert (third.status, upload.status) == (409, 409), (third.body, upload.body)
        assert "limit" in third.json["detail"]
        assert stored(api, s3, owner, pid) == before
        assert before["file_count"] == 2


def test_project_bytes_limit(api: Api, s3: Any, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    with settings_env(A6HUB_MAX_PROJECT_BYTES=100):
        first = make_file(api, owner, pid, "a.v", "a" * 60)
        before = stored(api, s3, owner, pid)
        second = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                          json_body={"filename": "b.v", "content": "b" * 41})
        grown = api.put(f"/api/v1/projects/{pid}/files/{first['id']}", token=owner.token,
                        json_body={"content": "a" * 101})
        assert (second.status, grown.status) == (413, 413), (second.body, grown.body)
        assert stored(api, s3, owner, pid) == before
        assert before["total_bytes"] == 60
        # Up to the limit exactly is fine, and shrinking frees room.
        exact = api.post(f"/api/v1/projects/{pid}/files", token=owner.token,
                         json_body={"filename": "b.v", "content": "b" * 40})
        assert exact.status == 201
        shrunk = api.put(f"/api/v1/projects/{pid}/files/{first['id']}", token=owner.token,
                         json_body={"content": "a" * 10})
        assert shrunk.status == 200
        assert stored(api, s3, owner, pid)["total_bytes"] == 50


# --- forged tokens ------------------------------------------------------------------------------


def _claims(user: UserCtx, **changes: Any) -> dict[str, Any]:
    from chalicelib.config import get_settings

    settings = get_settings()
    now = int(time.time())
    claims = {"sub": str(user.id), "iat": now, "exp": now + 600, "iss": settings.jwt_issuer,
              "aud": settings.jwt_audience, "gen": 0}
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _sign(claims: dict[str, Any], key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or os.environ["A6HUB_JWT_SECRET"], algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


FORGERIES: dict[str, Any] = {
    "expired": lambda u: _sign(_claims(u, iat=int(time.time()) - 7200,
                                      exp=int(time.time()) - 3600)),
    "alg none": lambda u: _unsigned(_claims(u)),
    "alg none, signature kept": lambda u: _unsigned(_claims(u)) + _sign(_claims(u)).split(".")[2],
    "wrong key": lambda u: _sign(_claims(u), key="another-key-of-enough-length-0123456789abcdef"),
    "HS512 with the right key": lambda u: _sign(_claims(u), algorithm="HS512"),
    "wrong audience": lambda u: _sign(_claims(u, aud="someone-else")),
    "wrong issuer": lambda u: _sign(_claims(u, iss="evil")),
    "issued in the future": lambda u: _sign(_claims(u, iat=int(time.time()) + 3600)),
    "no exp": lambda u: _sign(_claims(u, exp=None)),
    "no iat": lambda u: _sign(_claims(u, iat=None)),
    "no sub": lambda u: _sign(_claims(u, sub=None)),
    "no iss": lambda u: _sign(_claims(u, iss=None)),
    "no aud": lambda u: _sign(_claims(u, aud=None)),
    "no gen": lambda u: _sign(_claims(u, gen=None)),
    "sub of no user": lambda u: _sign(_claims(u, sub="01" + "Z" * 24)),
    "sub not a string": lambda u: _sign(_claims(u, sub=12)),
    "another generation": lambda u: _sign(_claims(u, gen=7)),
    "garbage": lambda u: "not.a.token",
    "empty segments": lambda u: "..",
    "a personal token that does not exist": lambda u: "a6p_" + "A" * 43,
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_tokens_are_401_and_do_nothing(api: Api, owner: UserCtx, forgery: str) -> None:
    # GIVEN a token forged for the owner
    token = FORGERIES[forgery](owner)
    name = unique("forged ")
    # WHEN it is used to read and to write
    me = api.get("/api/v1/auth/me", token=token)
    created = api.post("/api/v1/projects", token=token, json_body={"name": name})
    # THEN both are 401 and no project was created
    assert (me.status, created.status) == (401, 401), (me.body, created.body)
    assert created.header("WWW-Authenticate") == "Bearer"
    assert name not in my_project_names(api, owner)


def test_a_correctly_built_token_is_accepted(api: Api, owner: UserCtx) -> None:
    """The forgeries above differ from this one in one thing each, so this must pass."""
    assert api.get("/api/v1/auth/me", token=_sign(_claims(owner))).status == 200


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc",
                                    "bearer"])
def test_malformed_authorization_headers_are_401(api: Api, header: str) -> None:
    reply = api.get("/api/v1/auth/me", headers={"Authorization": header})
    assert reply.status == 401


def test_token_of_a_user_whose_password_changed(api: Api) -> None:
    user = make_user(api)
    stale = user.token
    changed = api.post("/api/v1/auth/password", token=stale, json_body={
        "current_password": user.password, "new_password": "a new passphrase"})
    assert changed.status == 204
    reply = api.post("/api/v1/projects", token=stale, json_body={"name": "after change"})
    assert reply.status == 401
    fresh = api.post("/api/v1/auth/login", json_body={"email": user.email,
                                                      "password": "a new passphrase"})
    mine = api.get("/api/v1/projects", token=fresh.json["access_token"])
    assert mine.status == 200 and mine.json == []


# --- ids and paging -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5"])
def test_bad_limits_are_422(api: Api, owner: UserCtx, project: dict[str, Any], query: str) -> None:
    reply = api.get(f"/api/v1/projects/{project['id']}/files?{query}", token=owner.token)
    assert reply.status == 422, reply.body


@pytest.mark.parametrize("cursor", [
    "garbage!!",
    base64.urlsafe_b64encode(b"[1]").decode(),
    base64.urlsafe_b64encode(json.dumps({"project_id": {"S": "x"}}).encode()).decode(),
    base64.urlsafe_b64encode(json.dumps({"feed": {"S": "public"}, "x": {"S": "y"}}).encode()).decode(),
    base64.urlsafe_b64encode(json.dumps({"feed": {"S": "public"}, "id": {"N": "1"}}).encode()).decode(),
])
def test_forged_cursors_are_400(api: Api, owner: UserCtx, project: dict[str, Any],
                                cursor: str) -> None:
    for path in (f"/api/v1/projects/{project['id']}/files", "/api/v1/projects/public",
                 "/api/v1/projects", f"/api/v1/projects/{project['id']}/members",
                 "/api/v1/auth/tokens"):
        reply = api.get(f"{path}?cursor={cursor}", token=owner.token)
        assert reply.status == 400, (path, reply.body)
        assert reply.json["detail"] == "invalid cursor"


@pytest.mark.parametrize("bad_id", ["nope", "0" * 26, "..%2F..%2Fetc", "01ABCDEFGHJKMNPQRSTVWXYZ0I",
                                    "0", "01", "1.0", "-1", "+1", "1e3", "%201", str(2**53),
                                    str(2**64), "9" * 40])
def test_unknown_or_malformed_ids_are_404(api: Api, owner: UserCtx, project: dict[str, Any],
                                          bad_id: str) -> None:
    pid = project["id"]
    for path in (f"/api/v1/projects/{bad_id}", f"/api/v1/projects/{bad_id}/files",
                 f"/api/v1/projects/{pid}/files/{bad_id}"):
        reply = api.get(path, token=owner.token)
        assert reply.status == 404, (path, reply.body)
    reply = api.put(f"/api/v1/projects/{pid}/members/{bad_id}", token=owner.token,
                    json_body={"role": "editor"})
    assert reply.status == 404
