"""The local server over real HTTP: the README's own curl examples, keep-alive, CORS, 404/405/413,
and binary uploads through the API Gateway emulation."""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.filepost import encode_multipart_formdata

from tests.conftest import unique

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:8000"


def readme_curl_commands() -> list[list[str]]:
    """Every curl command in the README's ```sh blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "curl":
                commands.append(words)
    return commands


def run_curl(words: list[str]) -> tuple[int, str]:
    """Run a curl command as written, adding only a trailer that prints the status code."""
    done = subprocess.run([*words, "-w", "\n%{http_code}"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def data_argument(words: list[str]) -> int:
    for flag in ("-d", "--data", "--data-raw"):
        if flag in words:
            return words.index(flag) + 1
    raise AssertionError(f"no request body in {words}")


def test_readme_curl_examples_work_against_the_server(live_server: str) -> None:
    # GIVEN the README's curl commands, pointed at the running server
    by_path: dict[str, list[str]] = {}
    for command in readme_curl_commands():
        target = next(w for w in command if w.startswith(README_URL))
        by_path.setdefault(target[len(README_URL):],
                           [w.replace(README_URL, live_server) for w in command])
    wanted = ["/api/v1/auth/register", "/api/v1/auth/login", "/health"]
    assert set(wanted) <= set(by_path), f"README examples: {sorted(by_path)}"
    register, login, health = (by_path[path] for path in wanted)
    # The examples register with the four fields and log in with email and password; they run
    # with a fresh email and username so the test can run against a server that has seen them.
    reg_at, login_at = data_argument(register), data_argument(login)
    registration = json.loads(register[reg_at])
    assert set(registration) == {"email", "username", "password", "full_name"}
    credentials = json.loads(login[login_at])
    assert set(credentials) == {"email", "password"}
    assert credentials == {k: registration[k] for k in ("email", "password")}
    name = unique("readme")
    registration.update(email=f"{name}@example.test", username=name)
    register[reg_at] = json.dumps(registration)
    login[login_at] = json.dumps({"email": registration["email"],
                                  "password": registration["password"]})
    # WHEN they run, in order
    # THEN registration answers the user, login a bearer token, /health ok
    status, body = run_curl(register)
    assert status == 201, body
    user = json.loads(body)
    assert set(user) == {"id", "email", "username", "full_name", "is_active", "created_at",
                         "public_email", "commit_email"}
    assert user["full_name"] == registration["full_name"]
    status, body = run_curl(login)
    assert status == 200, body
    token = json.loads(body)
    assert token["token_type"] == "bearer" and token["access_token"]
    me = requests.get(f"{live_server}/api/v1/auth/me", timeout=10,
                      headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["id"] == user["id"]
    status, body = run_curl(health)
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"


def test_keep_alive_reuses_one_connection(live_server: str) -> None:
    # GIVEN one client session
    with requests.Session() as session:
        # WHEN it makes 50 requests
        replies = [session.get(f"{live_server}/health", timeout=10) for _ in range(50)]
        # THEN all succeed over a single TCP connection that the server kept open
        assert all(r.status_code == 200 for r in replies)
        assert all(r.headers.get("Connection", "").lower() != "close" for r in replies)
        manager = session.get_adapter(live_server).poolmanager
        pools = [manager.pools[key] for key in manager.pools.keys()]
        assert len(pools) == 1
        assert pools[0].num_requests == 50
        assert pools[0].num_connections == 1


def test_cors_preflight(live_server: str) -> None:
    reply = requests.options(f"{live_server}/api/v1/projects", timeout=10, headers={
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    allowed = reply.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    # An actual response carries the origin header too.
    public = requests.get(f"{live_server}/api/v1/projects/public", timeout=10,
                          headers={"Origin": "http://localhost:3000"})
    assert public.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")
    # So do errors, or a browser client could not read their detail.
    refused = requests.get(f"{live_server}/api/v1/auth/me", timeout=10,
                           headers={"Origin": "http://localhost:3000"})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")


def test_unknown_path_and_method_answer_json_detail(live_server: str) -> None:
    missing = requests.get(f"{live_server}/api/v1/no-such-thing", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json")
    assert missing.json()["detail"]
    wrong_method = requests.delete(f"{live_server}/api/v1/projects/public", timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["detail"]
    unauthenticated = requests.get(f"{live_server}/api/v1/auth/me", timeout=10)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["detail"]
    assert unauthenticated.headers["WWW-Authenticate"] == "Bearer"


def test_body_over_10_mb_is_413(live_server: str) -> None:
    name = unique("huge")
    body = json.dumps({"email": f"{name}@example.test", "username": name,
                       "password": "x" * (10 * 1024 * 1024)}).encode()
    try:
        reply = requests.post(f"{live_server}/api/v1/auth/register", data=body, timeout=60,
                              headers={"Content-Type": "application/json"})
    except requests.ConnectionError as e:  # pragma: no cover - reported with the reason
        raise AssertionError(f"the server dropped the connection instead of answering: {e}") from e
    assert reply.status_code == 413
    assert reply.json()["detail"]
    # Nothing was stored: the name is still free.
    ok = requests.post(f"{live_server}/api/v1/auth/register", timeout=30, json={
        "email": f"{name}@example.test", "username": name, "password": "short enough"})
    assert ok.status_code == 201


def _register_and_login(live_server: str) -> dict[str, str]:
    name = unique("bin")
    requests.post(f"{live_server}/api/v1/auth/register", timeout=30, json={
        "email": f"{name}@example.test", "username": name, "password": "a passphrase"})
    login = requests.post(f"{live_server}/api/v1/auth/login", timeout=30, json={
        "email": f"{name}@example.test", "password": "a passphrase"})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_binary_upload_survives_the_gateway(live_server: str) -> None:
    auth = _register_and_login(live_server)
    project = requests.post(f"{live_server}/api/v1/projects", timeout=30, headers=auth,
                            json={"name": unique("bin ")}).json()
    blob = bytes(range(256)) * 64 + b"\r\n--\r\n"
    form, content_type = encode_multipart_formdata({
        "file": ("image.bin", blob, "application/octet-stream"), "filepath": "mem/"})
    uploaded = requests.post(f"{live_server}/api/v1/projects/{project['id']}/files/upload",
                             data=form, timeout=30, headers={**auth, "Content-Type": content_type})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["size_bytes"] == len(blob)
    assert uploaded.headers["ETag"] == '"1"'
    got: Any = requests.get(
        f"{live_server}/api/v1/projects/{project['id']}/files/{uploaded.json()['id']}",
        timeout=30, headers=auth).json()
    assert got["encoding"] == "base64" and base64.b64decode(got["content"]) == blob
