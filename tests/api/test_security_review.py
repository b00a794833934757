"""Security review findings: each test shows an exploit that used to work, and now does not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.errors import TooManyRequests, Unauthorized
from tests.conftest import Api, UserCtx, add_member, make_file, make_project, make_user, unique
from tests.settings_override import settings_env

# --- login limits under concurrency ------------------------------------------------------------


def test_concurrent_wrong_passwords_cannot_exceed_the_account_limit(api: Api) -> None:
    from chalicelib.schemas.accounts import UserLogin
    from chalicelib.services import accounts

    # GIVEN an account and a limit of 3 failed logins per account
    user = make_user(api)
    with settings_env(A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT=3,
                      A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT=1000, A6HUB_LOGIN_WINDOW_SECONDS=600):
        client = unique("198.51.100.")

        def guess(n: int) -> str:
            try:
                accounts.login(UserLogin(email=user.email, password=f"guess {n}"), client)
            except Unauthorized:
                return "checked"
            except TooManyRequests:
                return "refused"
            return "logged in"

        # WHEN 8 guesses arrive at once (each bcrypt check takes a while)
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(guess, range(8)))
        # THEN only 3 of them had their password checked; the rest were refused
        assert outcomes.count("checked") == 3, outcomes
        assert outcomes.count("refused") == 5, outcomes


def test_a_successful_login_does_not_use_up_the_limit(api: Api) -> None:
    from chalicelib.schemas.accounts import UserLogin
    from chalicelib.services import accounts

    # GIVEN a limit of 2 failures per account
    user = make_user(api)
    with settings_env(A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT=2,
                      A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT=1000, A6HUB_LOGIN_WINDOW_SECONDS=600):
        client = unique("198.51.100.")
        # WHEN the user logs in 3 times with the right password
        for _ in range(3):
            accounts.login(UserLogin(email=user.email, password=user.password), client)
        # THEN two wrong passwords are still checked (401), and the next attempt is refused
        for _ in range(2):
            try:
                accounts.login(UserLogin(email=user.email, password="wrong one"), client)
                raise AssertionError("a wrong password logged in")
            except Unauthorized:
                pass
        try:
            accounts.login(UserLogin(email=user.email, password=user.password), client)
            raise AssertionError("the limit did not apply")
        except TooManyRequests:
            pass



# --- paths a git checkout would treat as the repository's own .git folder ------------------------


def test_git_folder_lookalikes_are_refused(api: Api) -> None:
    # GIVEN an owner's project
    user = make_user(api)
    project = make_project(api, user)
    # WHEN files are created under names that git on macOS (HFS+ ignores zero-width characters)
    # or Windows (8.3 short name GIT~1) checks out into the clone's own .git folder
    for folder in (".g\u200cit", "\u200b.git", ".gi\ufefft", "GIT~1", "git~1."):
        reply = api.post(f"/api/v1/projects/{project['id']}/files", token=user.token,
                         json_body={"filename": "config", "filepath": f"{folder}/config",
                                    "content": "[core]\n\tfsmonitor = touch /tmp/pwned\n"})
        # THEN each is refused, and nothing is stored
        assert reply.status == 422, (folder, reply.body)
    listed = api.get(f"/api/v1/projects/{project['id']}/files", token=user.token)
    assert listed.json == []


# --- diff cost ---------------------------------------------------------------------------------


def test_a_huge_change_is_not_fed_to_difflib(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.services.git import log as history

    # GIVEN a public project where one commit rewrote a 600 KiB file of short lines (difflib
    # needs minutes for a few MiB of those: anyone could pin a worker per request)
    user = make_user(api)
    project = make_project(api, user, visibility="public")
    base_url = f"/api/v1/projects/{project['id']}"
    lines = 120_000
    created = make_file(api, user, project["id"], "big.mem",
                        "".join(f"{i % 251:x}\n" for i in range(lines)))
    changed = api.put(f"{base_url}/files/{created['id']}", token=user.token,
                      json_body={"content": "".join(f"{i % 241:x}\n" for i in range(lines))})
    assert changed.status == 200, changed.body
    commits = api.get(f"{base_url}/git/commits").json
    fed: list[int] = []
    real = history.difflib.unified_diff

    def counting(a: list[str], b: list[str], *args: object, **kw: object) -> object:
        fed.append(sum(map(len, a)) + sum(map(len, b)))
        return real(a, b, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(history.difflib, "unified_diff", counting)
    # WHEN an anonymous caller asks for the diff
    reply = api.get(f"{base_url}/git/diff?base={commits[1]['id']}&head={commits[0]['id']}")
    # THEN the file is listed as truncated, and difflib never saw more than the input cap
    assert reply.status == 200, reply.body
    (entry,) = reply.json["files"]
    assert entry["path"] == "big.mem" and entry["truncated"] and entry["patch"] is None
    assert all(size <= history.MAX_DIFF_INPUT_BYTES for size in fed), fed


# --- personal API tokens -----------------------------------------------------------------------


def test_a_leaked_api_token_cannot_mint_a_token_that_outlives_its_revocation(api: Api) -> None:
    # GIVEN a user whose CI token leaked
    user = make_user(api)
    leaked = api.post("/api/v1/auth/tokens", token=user.token, json_body={"name": "ci"}).json
    # WHEN the holder of the leaked token asks for another, non-expiring one
    minted = api.post("/api/v1/auth/tokens", token=leaked["token"], json_body={"name": "mine"})
    # THEN it is refused (403) and no token was created
    assert minted.status == 403, minted.body
    names = [t["name"] for t in api.get("/api/v1/auth/tokens", token=user.token).json]
    assert names == ["ci"]
    # AND revoking the leaked token shuts the holder out
    assert api.delete(f"/api/v1/auth/tokens/{leaked['id']}", token=user.token).status == 204
    assert api.get("/api/v1/auth/me", token=leaked["token"]).status == 401


# --- upload notifications ----------------------------------------------------------------------


def test_a_notification_outside_the_uploads_prefix_deletes_nothing(api: Api) -> None:
    from chalicelib import storage
    from chalicelib.models.files import File
    from chalicelib.services import uploads

    # GIVEN a stored file (its body under projects/...)
    user = make_user(api)
    project = make_project(api, user)
    created = make_file(api, user, project["id"], "rtl/keep.v", "module keep; endmodule\n")
    key = File.get(project["id"], created["id"]).s3_key
    assert storage.object_size(key)
    # WHEN an ObjectCreated notification names a key outside uploads/ (a bucket notification
    # without its prefix filter reports every write)
    assert uploads.handle_object_created(key) == "ignored"
    # THEN the file's body is still there
    reply = api.get(f"/api/v1/projects/{project['id']}/files/{created['id']}", token=user.token)
    assert reply.status == 200 and reply.json["content"] == "module keep; endmodule\n", reply.body


# --- content sniffing --------------------------------------------------------------------------


def test_every_answer_forbids_content_sniffing(api: Api) -> None:
    # GIVEN answers of several kinds (JSON, an error, the docs page)
    for path in ("/health", "/api/v1/projects/public", "/api/v1/projects/nope", "/docs"):
        # WHEN fetched THEN the browser is told not to guess another type (an inline artifact,
        # text a job's author chose, must never run as HTML on the API's origin)
        reply = api.get(path)
        assert reply.header("X-Content-Type-Options") == "nosniff", (path, reply.headers)


def private_project_with_a_viewer(api: Api) -> tuple[UserCtx, UserCtx, int]:
    """New users owner and viewer, and a private project of owner's holding secret.v that
    viewer may read: (owner, viewer, project id)."""
    owner, viewer = make_user(api), make_user(api)
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "secret.v", "module secret; endmodule\n")
    add_member(api, owner, pid, viewer, "viewer")
    return owner, viewer, pid


def test_a_collaborator_cannot_publish_a_fork_of_a_private_project(api: Api) -> None:
    # GIVEN a private project with a file, shared with a viewer
    owner, viewer, pid = private_project_with_a_viewer(api)
    # WHEN the viewer forks it as public THEN 403 and no project of theirs exists
    reply = api.post(f"/api/v1/projects/{pid}/fork", token=viewer.token,
                     json_body={"name": unique("leak "), "visibility": "public"})
    assert reply.status == 403, reply.body
    assert [p["id"] for p in api.get("/api/v1/projects", token=viewer.token).json] == [pid]
    # AND a private fork is still theirs to keep
    kept = api.post(f"/api/v1/projects/{pid}/fork", token=viewer.token,
                    json_body={"name": unique("copy ")})
    assert kept.status == 202, kept.body
    assert kept.json["visibility"] == "private"
    # AND the owner may publish a fork of their own project
    published = api.post(f"/api/v1/projects/{pid}/fork", token=owner.token,
                         json_body={"name": unique("pub "), "visibility": "public"})
    assert published.status == 202, published.body


def test_commit_cursors_are_signed_and_bound_to_their_project(api: Api) -> None:
    # GIVEN two projects with a few commits each, and a genuine next-page link of the first
    user = make_user(api)
    first, second = make_project(api, user)["id"], make_project(api, user)["id"]
    for pid in (first, second):
        for i in range(3):
            make_file(api, user, pid, f"f{i}.v", f"// {i}\n")
    link = api.get(f"/api/v1/projects/{first}/git/commits?limit=1", token=user.token).header("Link")
    assert link
    cursor = link[link.index("cursor=") + len("cursor="):link.index(">")]
    head = api.get(f"/api/v1/projects/{first}/git/commits/HEAD", token=user.token).json["id"]
    # WHEN a cursor is forged (any skip), or taken to another project
    forged = [f"{head}.100000000", f"{head}.1", cursor + "x"]
    for bad in forged:
        reply = api.get(f"/api/v1/projects/{first}/git/commits?cursor={bad}", token=user.token)
        assert reply.status == 400, (bad, reply.body)
    moved = api.get(f"/api/v1/projects/{second}/git/commits?cursor={cursor}", token=user.token)
    # THEN each is refused; the genuine one still works where it belongs
    assert moved.status == 400
    assert api.get(f"/api/v1/projects/{first}/git/commits?cursor={cursor}",
                   token=user.token).status == 200
