"""Fixtures: emulator (our store, moto inside, over HTTP) -> resources from infra/ -> app client -> factories.

The environment is set here, before any test module imports chalicelib, because table names
are read from it when the models are first imported.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import vcdvcd  # noqa: F401 - imported first for its SIGPIPE side effect, undone below

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update({
    "A6HUB_STAGE": "test",
    "A6HUB_JWT_SECRET": secrets.token_urlsafe(48),
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "NO_PROXY": "127.0.0.1,localhost",
    "A6HUB_LOG_LEVEL": os.environ.get("A6HUB_LOG_LEVEL", "WARNING"),
    # Every test request comes from one client address, and the suite makes hundreds of users
    # and jobs: the per-client and per-user caps are lifted here; tests of a cap lower it.
    "A6HUB_REGISTER_MAX_PER_CLIENT": "1000000",
    "A6HUB_JOBS_MAX_ACTIVE_PER_USER": "1000000",
    "A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT": "1000000",
    "A6HUB_JOBS_MAX_SUBMITS_PER_MINUTE": "1000000",
    # The session's users (owner, editor, ...) keep one access token for the whole run, and the
    # full suite on a loaded machine ran past the 1 h default (test_route_auth then got "Token has
    # expired" at 62 min): 8 h here; the expiry tests sign their own `exp`.
    "A6HUB_JWT_TTL_SECONDS": "28800",
})
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
              "https_proxy"):
    os.environ.pop(_name, None)

from devstack import bootstrap  # noqa: E402
from devstack.emulator import Emulator, free_port, start_moto, start_store  # noqa: E402
from tests import tiers  # noqa: E402

# vcdvcd sets SIGPIPE back to the default action when it is imported (for its command line). In
# the test process that turns a write to a socket whose peer left (a test git server whose client
# gave up) into pytest dying silently, so which test ran first decided whether the suite ended.
# It is imported once, above; Python's own setting is restored here (BrokenPipeError instead).
signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (make test / CI passes it)")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers it adds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers.apply(items)
    tiers.deselect_slow(config, items)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Every test starts and ends with settings read from the environment as it then is; a test
    that changes A6HUB_* variables mid-way calls chalicelib.config.reload() itself."""
    from chalicelib.config import reload

    reload()
    yield
    reload()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The store (devstack.store, throwaway state) on 127.0.0.1, infra/resources.yaml deployed."""
    log = tmp_path_factory.mktemp("emulator") / "moto.log"
    # A6HUB_TEST_EMULATOR=moto runs the suite on moto's own server, unchanged: the store's
    # concurrency tests (tests/devstack/test_store.py) then show the lost updates it fixes.
    plain = os.environ.get("A6HUB_TEST_EMULATOR") == "moto"
    emu = start_moto(log_path=str(log)) if plain else start_store(log_path=str(log))
    os.environ["AWS_ENDPOINT_URL"] = emu.url
    outputs = bootstrap.deploy("test")
    os.environ["A6HUB_TABLE_PREFIX"] = outputs["TablePrefix"]
    os.environ["A6HUB_BUCKET"] = outputs["BucketName"]
    os.environ["A6HUB_JOBS_QUEUE_URL"] = bootstrap.queue_url("a6hub-test-jobs")
    os.environ["A6HUB_JOBS_DLQ_URL"] = bootstrap.queue_url("a6hub-test-jobs-dlq")
    yield emu
    emu.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class Api:
    """Chalice's in-process test client with JSON and token conveniences."""

    def __init__(self, client: Any) -> None:
        self._http = client.http

    def request(self, method: str, path: str, *, json_body: Any = None, raw: bytes | str | None = None,
                token: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        sent = {"Content-Type": "application/json"}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        body = raw if raw is not None else (json.dumps(json_body) if json_body is not None else None)
        response = getattr(self._http, method.lower())(path, headers=sent, body=body or b"")
        return Reply(response.status_code, dict(response.headers), response.body or b"")

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Reply:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Reply:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def chalice_app(emulator: Emulator) -> Any:
    from app import app

    return app


@pytest.fixture(scope="session")
def api(chalice_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from chalice.test import Client

    # An empty project dir: .chalice/config.json's stage variables (table prefix, secret id of a
    # deployed stage) must not be patched into the environment of the tests' requests.
    with Client(chalice_app, project_dir=str(tmp_path_factory.mktemp("chalice"))) as client:
        yield Api(client)


@dataclass
class UserCtx:
    id: int
    email: str
    username: str
    password: str
    token: str
    extra: dict[str, Any] = field(default_factory=dict)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def make_user(api: Api, *, password: str = "correct horse battery") -> UserCtx:
    """A user registered through the API, with an access token.

    The token is issued by the function the login route uses rather than by logging in: a login
    costs a bcrypt check (12 rounds, ~0.25 s a core), and the suite makes hundreds of users.
    Logging in itself is tested in tests/api/test_accounts.py and wherever a test logs in.
    """
    from chalicelib.auth.access_tokens import issue_access_token
    from chalicelib.config import get_settings

    username = unique("u")
    email = f"{username}@example.test"
    reply = api.post("/api/v1/auth/register", json_body={
        "email": email, "username": username, "password": password, "full_name": "Test User"})
    assert reply.status == 201, reply.body
    token = issue_access_token(get_settings(), int(reply.json["id"]))
    return UserCtx(id=reply.json["id"], email=email, username=username, password=password,
                   token=token)


def make_project(api: Api, owner: UserCtx, *, visibility: str = "private",
                 name: str | None = None) -> dict[str, Any]:
    reply = api.post("/api/v1/projects", token=owner.token,
                     json_body={"name": name or unique("proj "), "visibility": visibility})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def add_member(api: Api, owner: UserCtx, project_id: int, member: UserCtx, role: str) -> None:
    reply = api.post(f"/api/v1/projects/{project_id}/members", token=owner.token,
                     json_body={"username": member.username, "role": role})
    assert reply.status == 201, reply.body


def make_file(api: Api, user: UserCtx, project_id: int, path: str = "rtl/top.v",
              content: str = "module top; endmodule\n") -> dict[str, Any]:
    reply = api.post(f"/api/v1/projects/{project_id}/files", token=user.token,
                     json_body={"filename": path.rsplit("/", 1)[-1], "filepath": path,
                                "content": content})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def make_shared_project(api: Api, owner: UserCtx, visibility: str, editor: UserCtx,
                        viewer: UserCtx, path: str = "rtl/top.v",
                        content: str = "module top; endmodule\n") -> dict[str, Any]:
    """A project of `owner` (`visibility`: private or public) with `editor` and `viewer` as
    members and one file at `path`: the cast of the tests that go through every role."""
    project = make_project(api, owner, visibility=visibility)
    add_member(api, owner, project["id"], editor, "editor")
    add_member(api, owner, project["id"], viewer, "viewer")
    make_file(api, owner, project["id"], path, content)
    return project


def user_fixture(name: str, scope: str = "session") -> Any:
    """A fixture named `name` giving one user (`make_user`), registered once per `scope`; for a
    module's own cast: `alice = user_fixture("alice", "module")`."""

    @pytest.fixture(scope=scope, name=name)
    def user(api: Api) -> UserCtx:
        return make_user(api)

    return user


owner = user_fixture("owner")
editor = user_fixture("editor")
viewer = user_fixture("viewer")
stranger = user_fixture("stranger")


@contextmanager
def serving_api(log: Path, env: dict[str, str] | None = None, workers: int = 2) -> Iterator[str]:
    """The API served over real HTTP by `python -m devstack serve` (`workers` uvicorn workers), as
    `make run` does, with `env` added to ours; yields its base URL once /health answers (60 s at
    most, else RuntimeError with the server's log, written to `log`)."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "serve", "--port", str(port), "--workers",
             str(workers)],
            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/health", timeout=5).status_code in (200, 503):
                break
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or a worker still starting on a busy machine
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"API server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="session")
def live_server(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API over real HTTP (see `serving_api`)."""
    with serving_api(tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url
