"""Who may do what: every accounts/projects/members/files/history/uploads/modules/jobs route x every kind of
caller x project visibility, with the status each must get; a refused write must leave
everything as it was.

The table is checked against the app's own routes, so a new route in these blueprints without
a row here fails `test_the_matrix_covers_every_route`. Git's smart-HTTP routes are exercised per
role with the real git client (tests/git/test_git_http.py), and import per caller in
tests/git/test_git_import.py; the forum, whose roles are anonymous / signed-in / author / admin
rather than project roles, in tests/api/test_forum.py (and the live-updates socket per project role
in tests/api/test_live_updates.py); they are listed in COVERED_ELSEWHERE.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from urllib3.filepost import encode_multipart_formdata

from tests.conftest import (
    Api,
    Reply,
    UserCtx,
    add_member,
    make_file,
    make_project,
    make_user,
    unique,
)
from tests.jobs_support import api_queue, make_queues
from tests.waveform_support import make_small_fst, store_waveform_job

ROLES = ["owner", "editor", "viewer", "stranger", "anonymous"]
VISIBILITIES = ["private", "public"]
RANK = {"owner": 3, "editor": 2, "viewer": 1}
NEED = {"read": 1, "write": 2, "admin": 3}
MODULES = {"chalicelib.api.accounts", "chalicelib.api.projects", "chalicelib.api.files",
           "chalicelib.api.git", "chalicelib.api.uploads", "chalicelib.api.modules",
           "chalicelib.api.forum", "chalicelib.api.waveforms", "chalicelib.api.jobs",
           "chalicelib.api.builds", "chalicelib.api.pipelines", "chalicelib.api.assignments",
           "chalicelib.api.webhooks"}
COVERED_ELSEWHERE = {
    # Assignments: instructor / student / other student / stranger / anonymous, and every GET
    # route of the app swept for the hidden tests, in tests/assignments/test_leaks.py.
    ("POST", "/api/v1/assignments"),
    ("GET", "/api/v1/assignments/{assignment_id}"),
    ("POST", "/api/v1/assignments/{assignment_id}/accept"),
    ("GET", "/api/v1/assignments/{assignment_id}/grades"),
    ("GET", "/api/v1/assignments/{assignment_id}/results"),
    ("GET", "/api/v1/projects/{project_id}/git/info/refs"),
    ("POST", "/api/v1/projects/{project_id}/git/git-upload-pack"),
    ("POST", "/api/v1/projects/{project_id}/git/git-receive-pack"),
    ("POST", "/api/v1/projects/import"),
    # The build page's routes, per role and visibility, in tests/api/test_builds_api.py.
    ("GET", "/api/v1/builds/{project_id}/build/config"),
    ("PUT", "/api/v1/builds/{project_id}/build/config"),
    ("POST", "/api/v1/builds/{project_id}/build"),
    ("GET", "/api/v1/builds/{project_id}/build/status"),
    ("GET", "/api/v1/builds/presets"), ("GET", "/api/v1/builds/pdks"),
    *((method, f"/api/v1/forum{path}") for path, methods in {
        "/categories": ("GET", "POST"), "/categories/{category_id}": ("PUT", "PATCH"),
        "/categories/{category_id}/topics": ("GET",), "/topics": ("POST",),
        "/topics/{topic_id}": ("GET", "PUT", "PATCH", "DELETE"),
        "/topics/{topic_id}/posts": ("GET", "POST"),
        "/posts/{post_id}": ("PUT", "PATCH", "DELETE")}.items() for method in methods),
}


class World:
    """A project of `owner` with editor and viewer members and one more member; the rest (a
    file, a commit, an upload, a module, jobs) is made the first time a route asks for it.

    A writer's call that succeeds gets a world of its own; making only what the route uses
    keeps that affordable (routes about the whole project ask for all of it: `whole`).
    """

    def __init__(self, api: Api, users: dict[str, UserCtx], visibility: str) -> None:
        self._api, self._owner = api, users["owner"]
        self.visibility = visibility
        self.project_id: int = make_project(api, self._owner, visibility=visibility)["id"]
        add_member(api, self._owner, self.project_id, users["editor"], "editor")
        add_member(api, self._owner, self.project_id, users["viewer"], "viewer")
        add_member(api, self._owner, self.project_id, users["member"], "viewer")
        self.member_id = users["member"].id

    def complete(self) -> World:
        """Everything made now (what reads and refused writes of the shared worlds see)."""
        for name in ("file_id", "upload_id", "module_id", "job_id", "pending_job_id", "webhook_id"):
            getattr(self, name)
        return self

    @functools.cached_property
    def _file(self) -> tuple[int, str]:
        api, owner, pid = self._api, self._owner, self.project_id
        created = make_file(api, owner, pid, "rtl/top.v", "module top; endmodule\n")
        first = api.get(f"/api/v1/projects/{pid}/git/commits/HEAD", token=owner.token).json["id"]
        changed = api.put(f"/api/v1/projects/{pid}/files/{created['id']}", token=owner.token,
                          json_body={"content": "module top(); endmodule\n"})
        assert changed.status == 200, changed.body
        return created["id"], first

    @property
    def file_id(self) -> int:
        return self._file[0]

    @property
    def first_commit(self) -> str:
        """The file as created; a later commit changed it."""
        return self._file[1]

    @functools.cached_property
    def upload_id(self) -> int:
        """A presigned upload the owner asked for."""
        upload = self._api.post(f"/api/v1/projects/{self.project_id}/files/upload-url",
                                token=self._owner.token,
                                json_body={"filename": "pending.hex", "filepath": "mem/pending.hex"})
        assert upload.status == 201, upload.body
        return int(upload.json["upload_id"])

    @functools.cached_property
    def module_id(self) -> int:
        """The module `top` of the file."""
        assert self.file_id
        listed = self._api.get(f"/api/v1/projects/{self.project_id}/modules", token=self._owner.token)
        assert [m["name"] for m in listed.json] == ["top"], listed.body
        return int(listed.json[0]["id"])

    @functools.cached_property
    def job_id(self) -> int:
        """A completed simulation with a waveform."""
        vcd, fst = small_waveform()
        return store_waveform_job(self.project_id, self._owner.id, vcd, fst)

    @functools.cached_property
    def webhook_id(self) -> int:
        """A webhook of the owner's to a global address (an IP literal: no DNS needed)."""
        made = self._api.post(f"/api/v1/projects/{self.project_id}/webhooks",
                              token=self._owner.token, json_body={"url": WEBHOOK_URL})
        assert made.status == 201, made.body
        return int(made.json["id"])

    @functools.cached_property
    def pending_job_id(self) -> int:
        """A lint job of the file that the owner submitted (no runner takes it)."""
        assert self.file_id
        pending = self._api.post(f"/api/v1/projects/{self.project_id}/jobs", token=self._owner.token,
                                 json_body=LINT)
        assert pending.status == 201, pending.body
        return int(pending.json["id"])


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class ProjectRoute:
    method: str
    template: str
    need: str  # read | write | admin
    ok: int
    build: Callable[[World, dict[str, UserCtx]], Call]
    login: bool = False  # a GET that still needs a signed-in caller
    check: Callable[[Reply, World], bool] | None = None  # what a 2xx answer must hold
    whole: bool = False  # the route reads or removes the whole project: make all of its world

    @property
    def writes(self) -> bool:
        return self.method != "GET"


def _upload(w: World, users: dict[str, UserCtx]) -> Call:
    body, content_type = encode_multipart_formdata({
        "file": ("blob.bin", bytes(range(256)), "application/octet-stream"),
        "filepath": "data/blob.bin",
    })
    return Call("POST", f"/api/v1/projects/{w.project_id}/files/upload", raw=body,
                headers={"Content-Type": content_type})


def _p(w: World) -> str:
    return f"/api/v1/projects/{w.project_id}"


def _wave(w: World) -> str:
    return f"/api/v1/projects/{w.project_id}/jobs/{w.job_id}/waveform"


def _jobs(w: World) -> str:
    return f"/api/v1/projects/{w.project_id}/jobs"


LINT = {"job_type": "lint", "config": {}}
WEBHOOK_URL = "https://93.184.215.14/a6hub-hook"


# Where a route template's ids come from in a World ({user_id} is the member's).
WORLD_IDS = {"project_id": "project_id", "file_id": "file_id", "user_id": "member_id",
             "sha": "first_commit", "upload_id": "upload_id", "module_id": "module_id",
             "job_id": "job_id"}


def route(method: str, template: str, need: str, ok: int, query: str = "", body: Any = None,
          **more: Any) -> ProjectRoute:
    """A row whose call is `method` on `template` + `query`, each {id} in them filled from the
    world (WORLD_IDS), with the JSON `body` (called first when it is a function: a fresh name per
    call); `more` is the rest of ProjectRoute (login, check, whole)."""
    def build(w: World, u: dict[str, UserCtx]) -> Call:
        path = template + query
        names = {n for n in WORLD_IDS if "{" + n + "}" in path}
        return Call(method, path.format(**{n: getattr(w, WORLD_IDS[n]) for n in names}),
                    body() if callable(body) else body)

    return ProjectRoute(method, template, need, ok, build, **more)


P = "/api/v1/projects/{project_id}"
PROJECT_ROUTES = [
    route("GET", P, "read", 200),
    route("PUT", P, "admin", 200, body={"description": "changed"}),
    route("PATCH", P, "admin", 200, body=lambda: {"name": unique("renamed ")}),
    route("DELETE", P, "admin", 204, whole=True),
    route("GET", f"{P}/members", "read", 200),
    ProjectRoute("POST", "/api/v1/projects/{project_id}/members", "admin", 201,
                 lambda w, u: Call("POST", f"{_p(w)}/members",
                                   {"username": u["invitee"].username, "role": "viewer"})),
    route("PUT", f"{P}/members/{{user_id}}", "admin", 200, body={"role": "editor"}),
    route("PATCH", f"{P}/members/{{user_id}}", "admin", 200, body={"role": "editor"}),
    route("DELETE", f"{P}/members/{{user_id}}", "admin", 204),
    route("GET", f"{P}/files", "read", 200),
    route("POST", f"{P}/files", "write", 201, body={"filename": "new.v", "filepath": "rtl/new.v",
                                                     "content": "module n; endmodule\n"}),
    ProjectRoute("POST", "/api/v1/projects/{project_id}/files/upload", "write", 201, _upload),
    route("GET", f"{P}/files/{{file_id}}", "read", 200),
    route("PUT", f"{P}/files/{{file_id}}", "write", 200, body={"content": "changed\n"}),
    route("PATCH", f"{P}/files/{{file_id}}", "write", 200, body={"filepath": "rtl/moved.v"}),
    route("DELETE", f"{P}/files/{{file_id}}", "write", 204),
    route("GET", f"{P}/git/commits", "read", 200),
    route("GET", f"{P}/git/commits/{{sha}}", "read", 200),
    route("GET", f"{P}/git/commits/{{sha}}/content", "read", 200, "?path=rtl/top.v"),
    route("GET", f"{P}/git/diff", "read", 200, "?base={sha}&head=HEAD"),
    ProjectRoute("POST", "/api/v1/projects/{project_id}/git/restore", "write", 200,
                 lambda w, u: Call("POST", f"{_p(w)}/git/restore",
                                   {"commit": w.first_commit, "path": "rtl/top.v"})),
    # Anyone who can read a project may fork it (the fork is theirs; the source is untouched).
    route("POST", f"{P}/fork", "read", 202, body=lambda: {"name": unique("fork ")}, whole=True),
    route("POST", f"{P}/files/upload-url", "write", 201,
          body={"filename": "big.hex", "filepath": "mem/big.hex"}),
    route("GET", f"{P}/files/uploads/{{upload_id}}", "write", 200, login=True),
    route("GET", f"{P}/modules", "read", 200, "?search=top"),
    route("GET", f"{P}/modules/{{module_id}}", "read", 200),
    route("PUT", f"{P}/modules/{{module_id}}", "write", 200, body={"description": "the top"}),
    route("DELETE", f"{P}/modules/{{module_id}}", "write", 204),
    route("POST", f"{P}/modules/reparse", "write", 200),
    route("POST", f"{P}/files/{{file_id}}/parse", "write", 200),
    # Any reader may star a project; starring is per user (never another's star).
    route("GET", f"{P}/star", "read", 200, login=True),
    route("POST", f"{P}/star", "read", 200),
    route("DELETE", f"{P}/star", "read", 200),
    # CI: a project's pipelines, their comparison, the badge and the pipeline file check.
    ProjectRoute("GET", "/api/v1/projects/{project_id}/pipelines", "read", 200,
                 lambda w, u: Call("GET", f"{_p(w)}/pipelines?ref=main")),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/pipelines/compare", "read", 200,
                 lambda w, u: Call("GET", f"{_p(w)}/pipelines/compare?base={w.first_commit}"
                                          "&head=HEAD")),
    ProjectRoute("POST", "/api/v1/projects/{project_id}/pipelines/validate", "read", 200,
                 lambda w, u: Call("POST", f"{_p(w)}/pipelines/validate",
                                   {"content": "jobs:\n  lint: {type: lint}\n"})),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/badge.svg", "read", 200,
                 lambda w, u: Call("GET", f"{_p(w)}/badge.svg?ref=main")),
    # Webhooks: the owner only (a URL may carry the receiver's token; deliveries show its
    # answers); creating one answers its secret once.
    ProjectRoute("POST", "/api/v1/projects/{project_id}/webhooks", "admin", 201,
                 lambda w, u: Call("POST", f"{_p(w)}/webhooks", {"url": WEBHOOK_URL}),
                 check=lambda r, w: len(r.json["secret"]) >= 32),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/webhooks", "admin", 200,
                 lambda w, u: Call("GET", f"{_p(w)}/webhooks"), login=True,
                 check=lambda r, w: [h["id"] for h in r.json] == [w.webhook_id]
                 and all("secret" not in h for h in r.json)),
    ProjectRoute("DELETE", "/api/v1/projects/{project_id}/webhooks/{webhook_id}", "admin", 204,
                 lambda w, u: Call("DELETE", f"{_p(w)}/webhooks/{w.webhook_id}")),
    ProjectRoute("POST", "/api/v1/projects/{project_id}/webhooks/{webhook_id}/ping", "admin", 202,
                 lambda w, u: Call("POST", f"{_p(w)}/webhooks/{w.webhook_id}/ping"),
                 check=lambda r, w: r.json["status"] == "pending"),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/webhooks/{webhook_id}/deliveries", "admin",
                 200, lambda w, u: Call("GET", f"{_p(w)}/webhooks/{w.webhook_id}/deliveries"),
                 login=True),
    # A job's waveform: readers of the project, as for the job (public ones without a token).
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/waveform", "read", 200,
                 lambda w, u: Call("GET", f"{_wave(w)}")),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/waveform/signals", "read",
                 200, lambda w, u: Call("GET", f"{_wave(w)}/signals?scope=tb")),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/waveform/values", "read",
                 200, lambda w, u: Call("GET", f"{_wave(w)}/values?signals=tb.count,tb.clk")),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/waveform/search", "read",
                 200, lambda w, u: Call("GET", f"{_wave(w)}/search?signal=tb.count&value=0d9")),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/waveform/compare", "read",
                 200, lambda w, u: Call("GET", f"{_wave(w)}/compare?other_job={w.job_id}"
                                               "&signals=tb.count")),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/waveform.svg", "read", 200,
                 lambda w, u: Call("GET", f"{_wave(w)}.svg?signals=tb.clk,tb.count")),
    # Jobs: readers list and read them (public ones without a token); writers submit and cancel.
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs", "read", 200,
                 lambda w, u: Call("GET", _jobs(w)),
                 check=lambda r, w: {w.job_id, w.pending_job_id} <= {j["id"] for j in r.json}),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}", "read", 200,
                 lambda w, u: Call("GET", f"{_jobs(w)}/{w.pending_job_id}"),
                 check=lambda r, w: r.json["id"] == w.pending_job_id),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/logs", "read", 200,
                 lambda w, u: Call("GET", f"{_jobs(w)}/{w.pending_job_id}/logs"),
                 check=lambda r, w: r.json["job_id"] == w.pending_job_id),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}/artifacts/{name}", "read", 200,
                 lambda w, u: Call("GET", f"{_jobs(w)}/{w.job_id}/artifacts/tb.vcd")),
    ProjectRoute("POST", "/api/v1/projects/{project_id}/jobs", "write", 201,
                 lambda w, u: Call("POST", _jobs(w), LINT), whole=True,  # lints all files
                 check=lambda r, w: r.json["status"] == "pending"),
    ProjectRoute("DELETE", "/api/v1/projects/{project_id}/jobs/{job_id}", "write", 200,
                 lambda w, u: Call("DELETE", f"{_jobs(w)}/{w.pending_job_id}"),
                 check=lambda r, w: r.json["status"] == "cancelled"),
    # The long poll (tests/api/test_job_wait.py): answered at once for a job that has ended, or
    # one whose status already differs from since_status, so no reader waits here.
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}", "read", 200,
                 lambda w, u: Call("GET", f"{_jobs(w)}/{w.job_id}?wait=20"),
                 check=lambda r, w: r.json["id"] == w.job_id),
    ProjectRoute("GET", "/api/v1/projects/{project_id}/jobs/{job_id}", "read", 200,
                 lambda w, u: Call("GET", f"{_jobs(w)}/{w.pending_job_id}?wait=20"
                                          "&since_status=running"),
                 check=lambda r, w: r.json["status"] == "pending"),
]

# Routes that are not about one project: (method, path, expected status per caller).
ACCOUNT_ROUTES = {
    ("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/auth/me"), ("PATCH", "/api/v1/auth/me"), ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/auth/tokens"), ("GET", "/api/v1/auth/tokens"),
    ("DELETE", "/api/v1/auth/tokens/{token_id}"),
    ("POST", "/api/v1/projects"), ("GET", "/api/v1/projects"), ("GET", "/api/v1/projects/public"),
}


def expected_status(route: ProjectRoute, role: str, visibility: str) -> int:
    if (route.writes or route.login) and role == "anonymous":
        return 401
    if role not in RANK and visibility == "private":
        return 404
    rank = RANK.get(role, 1)  # a non-member of a public project may read it
    return route.ok if rank >= NEED[route.need] else 403


@pytest.fixture(scope="module", autouse=True)
def jobs_queue(emulator: Any) -> Iterator[None]:
    """The jobs this module submits go to a queue of its own, which no runner reads."""
    with api_queue(make_queues().url):
        yield


@pytest.fixture(scope="module")
def users(api: Api, owner: UserCtx, editor: UserCtx, viewer: UserCtx,
          stranger: UserCtx) -> dict[str, UserCtx]:
    return {"owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger,
            "member": make_user(api), "invitee": make_user(api)}


@functools.cache
def small_waveform() -> tuple[Path, Path]:
    """One small VCD + FST (iverilog, vcd2fst) for every world's waveform job."""
    return make_small_fst(Path(tempfile.mkdtemp(prefix="matrix-waves-")))


@pytest.fixture(scope="module")
def shared_worlds(api: Api, users: dict[str, UserCtx]) -> dict[str, World]:
    """Worlds that only reads and refused writes touch."""
    return {v: World(api, users, v).complete() for v in VISIBILITIES}


def snapshot(api: Api, owner: UserCtx, w: World) -> dict[str, Any]:
    """Everything a write could change, read by the owner."""
    project = api.get(_p(w), token=owner.token)
    members = api.get(f"{_p(w)}/members", token=owner.token)
    files = api.get(f"{_p(w)}/files", token=owner.token)
    body = api.get(f"{_p(w)}/files/{w.file_id}", token=owner.token)
    modules = api.get(f"{_p(w)}/modules", token=owner.token)
    jobs = api.get(f"{_p(w)}/jobs", token=owner.token)
    hooks = api.get(f"{_p(w)}/webhooks", token=owner.token)
    deliveries = api.get(f"{_p(w)}/webhooks/{w.webhook_id}/deliveries", token=owner.token)
    return {"project": (project.status, project.json), "members": members.json,
            "files": files.json, "file": (body.status, body.json), "modules": modules.json,
            "jobs": jobs.json, "webhooks": hooks.json, "deliveries": deliveries.json}


def send(api: Api, call: Call, token: str | None) -> Any:
    return api.request(call.method, call.path, json_body=call.body, raw=call.raw, token=token,
                       headers=call.headers)


ROUTE_CASES = [(r, vis) for r in PROJECT_ROUTES for vis in VISIBILITIES]


@pytest.mark.parametrize(("route", "visibility"), ROUTE_CASES,
                         ids=[f"{r.method} {r.template} on {vis}" for r, vis in ROUTE_CASES])
def test_project_route(api: Api, users: dict[str, UserCtx], shared_worlds: dict[str, World],
                       route: ProjectRoute, visibility: str) -> None:
    """Each caller in turn; the writes that must be refused share one before/after comparison."""
    shared = shared_worlds[visibility]
    before = snapshot(api, users["owner"], shared) if route.writes else None
    wrong: list[str] = []
    for role in ROLES:
        # GIVEN a project of the given visibility and a caller in this role
        expected = expected_status(route, role, visibility)
        mutates = route.writes and expected < 400
        world = World(api, users, visibility) if mutates else shared
        if mutates and route.whole:
            world.complete()
        token = users[role].token if role in users else None
        # WHEN the caller calls the route
        reply = send(api, route.build(world, users), token)
        # THEN the status is the expected one, errors carry a detail
        if reply.status != expected or (expected >= 400 and not has_reason(reply)):
            wrong.append(f"{role}: expected {expected}, got {reply.status} {reply.body[:200]!r}")
        elif expected < 400 and route.check and not route.check(reply, world):
            wrong.append(f"{role}: {reply.status} but the answer is not right: {reply.body[:300]!r}")
    assert not wrong, "\n".join(wrong)
    # AND the refused writes changed nothing the owner can see
    if route.writes:
        assert snapshot(api, users["owner"], shared) == before


def has_reason(reply: Reply) -> bool:
    """An error says why: {"detail"} in JSON, or a text/plain line where git reads it."""
    if (reply.header("Content-Type") or "").startswith("text/plain"):
        return bool(reply.body.strip())
    return bool(reply.json.get("detail"))


def test_private_project_is_indistinguishable_from_a_missing_one(
        api: Api, users: dict[str, UserCtx], shared_worlds: dict[str, World]) -> None:
    w = shared_worlds["private"]
    missing = "0" * 26
    for suffix in ("", "/members", "/files", f"/files/{w.file_id}", "/modules",
                   f"/modules/{w.module_id}"):
        hidden = api.get(f"/api/v1/projects/{w.project_id}{suffix}", token=users["stranger"].token)
        absent = api.get(f"/api/v1/projects/{missing}{suffix}", token=users["stranger"].token)
        assert hidden.status == absent.status == 404
        assert hidden.json == absent.json


# --- routes not tied to one project -------------------------------------------------------------


def _account_call(api: Api, users: dict[str, UserCtx], method: str, path: str) -> tuple[Call, int]:
    """The call to make and the status an authenticated caller gets."""
    name = unique("mx")
    owner = users["owner"]
    if path == "/api/v1/auth/register":
        return Call(method, path, {"email": f"{name}@example.test", "username": name,
                                   "password": "matrix passphrase"}), 201
    if path == "/api/v1/auth/login":
        return Call(method, path, {"email": owner.email, "password": owner.password}), 200
    if path == "/api/v1/auth/me" and method == "PATCH":
        return Call(method, path, {"full_name": "Matrix Person"}), 200
    if path == "/api/v1/auth/password":
        # A wrong current password: 400 shows the caller got past authentication without
        # changing a shared session user's password.
        return Call(method, path, {"current_password": "not it", "new_password": "y" * 12}), 400
    if path == "/api/v1/auth/tokens" and method == "POST":
        return Call(method, path, {"name": name}), 201
    if path == "/api/v1/auth/tokens/{token_id}":
        created = api.post("/api/v1/auth/tokens", token=owner.token, json_body={"name": name})
        return Call(method, f"/api/v1/auth/tokens/{created.json['id']}"), 204
    if path == "/api/v1/projects" and method == "POST":
        return Call(method, path, {"name": name, "visibility": "public"}), 201
    return Call(method, path), 200


PUBLIC_ROUTES = {("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"),
                 ("GET", "/api/v1/projects/public")}
ACCOUNT_CASES = [(m, p, role) for m, p in sorted(ACCOUNT_ROUTES) for role in ROLES]


@pytest.mark.parametrize(("method", "path", "role"), ACCOUNT_CASES,
                         ids=[f"{m} {p} as {role}" for m, p, role in ACCOUNT_CASES])
def test_account_route(api: Api, users: dict[str, UserCtx], method: str, path: str,
                       role: str) -> None:
    call, ok = _account_call(api, users, method, path)
    token = users[role].token if role in users else None
    if (method, path) in PUBLIC_ROUTES:
        expected = ok
    elif role == "anonymous":
        expected = 401
    elif path == "/api/v1/auth/tokens/{token_id}" and role != "owner":
        expected = 404  # someone else's token does not exist for the caller
    else:
        expected = ok
    reply = send(api, call, token)
    assert reply.status == expected, reply.body
    if expected >= 400:
        assert reply.json["detail"]
    if path == "/api/v1/auth/tokens/{token_id}" and expected != 204:
        listed = api.get("/api/v1/auth/tokens?limit=100", token=users["owner"].token)
        assert int(call.path.rsplit("/", 1)[-1]) in {t["id"] for t in listed.json}
    if method == "POST" and path == "/api/v1/projects" and expected == 401:
        names = {p["name"] for p in api.get("/api/v1/projects/public?limit=100").json}
        assert call.body["name"] not in names


def test_the_matrix_covers_every_route(chalice_app: Any) -> None:
    registered = {(method, path) for path, methods in chalice_app.routes.items()
                  for method, entry in methods.items()
                  if entry.view_function.__module__ in MODULES}
    covered = ACCOUNT_ROUTES | COVERED_ELSEWHERE | {(r.method, r.template) for r in PROJECT_ROUTES}
    assert registered == covered
