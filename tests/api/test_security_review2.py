"""Second security review (issue 10), API side: each test shows an exploit that used to work.

Findings 3 (project path depth), 5 (registration and multipart cost), 6 (job quotas), 7 (a
viewer publishing a private project), 8 (/auth/password as a guessing oracle) and 9 (login
emails in public history, registration confirming addresses).
"""

from __future__ import annotations

import time

from chalicelib.errors import BadRequest, TooManyRequests
from tests.api.test_security_review import private_project_with_a_viewer
from tests.conftest import Api, UserCtx, add_member, make_file, make_project, make_user, unique
from tests.settings_override import settings_env

# --- finding 3: project paths get a depth limit --------------------------------------------------


def test_a_path_509_folders_deep_is_refused(api: Api) -> None:
    # GIVEN an owner's project
    user = make_user(api)
    pid = make_project(api, user)["id"]
    # WHEN a file is created 509 folders deep (1,018 characters: inside the length limit)
    deep = "a/" * 509 + "x.v"
    reply = api.post(f"/api/v1/projects/{pid}/files", token=user.token,
                     json_body={"filename": "x.v", "filepath": deep, "content": "module x; endmodule\n"})
    # THEN 422 naming the depth limit, and nothing is stored
    assert reply.status == 422, reply.body
    assert "deeper than 32" in reply.json["detail"]
    assert api.get(f"/api/v1/projects/{pid}/files", token=user.token).json == []
    # AND 32 levels are still fine
    ok = "a/" * 31 + "x.v"
    assert api.post(f"/api/v1/projects/{pid}/files", token=user.token, json_body={
        "filename": "x.v", "filepath": ok, "content": "module x; endmodule\n"}).status == 201


# --- finding 5: cheap requests that pinned workers -----------------------------------------------


def test_registrations_are_limited_per_client_address(api: Api) -> None:
    from chalicelib.schemas.accounts import UserCreate
    from chalicelib.services import accounts

    # GIVEN a limit of 3 registrations per client address and window (a window of months: the
    # windows are fixed, and a test straddling a boundary would start a fresh one midway)
    with settings_env(A6HUB_REGISTER_MAX_PER_CLIENT=3, A6HUB_REGISTER_WINDOW_SECONDS=10_000_000):
        client = unique("203.0.113.")

        def register() -> str:
            name = unique("rl")
            try:
                accounts.register(UserCreate(email=f"{name}@example.test", username=name,
                                             password="a long passphrase"), client)
            except TooManyRequests as e:
                return f"429 after {e.headers['Retry-After']}"
            return "201"

        # WHEN one address registers 5 accounts (each a bcrypt hash of the server's CPU)
        outcomes = [register() for _ in range(5)]
        # THEN the first 3 are created and the rest are told when to come back
        assert outcomes[:3] == ["201"] * 3, outcomes
        assert all(o.startswith("429 after ") for o in outcomes[3:]), outcomes
        # AND another address is not affected
        client = unique("198.51.100.")
        assert register() == "201"
        # AND IPv6 addresses of one /64 share their window (a subscriber holds the whole /64)
        prefix = f"2001:db8:{unique('')[:4]}:1:"
        outcomes = []
        for host in range(5):
            client = f"{prefix}:{host + 1}"
            outcomes.append(register())
        assert outcomes[:3] == ["201"] * 3 and outcomes[3].startswith("429"), outcomes


def test_the_registration_route_answers_429_with_retry_after(api: Api) -> None:
    with settings_env(A6HUB_REGISTER_MAX_PER_CLIENT=1, A6HUB_REGISTER_WINDOW_SECONDS=10_000_000):
        replies = []
        for _ in range(2):
            name = unique("rr")
            replies.append(api.post("/api/v1/auth/register", json_body={
                "email": f"{name}@example.test", "username": name, "password": "a long passphrase"}))
    assert replies[-1].status == 429, replies[-1].body
    assert int(replies[-1].header("Retry-After") or 0) >= 1


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    chunks = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
                      + content + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def test_a_multipart_body_of_many_parts_is_refused_before_it_is_parsed(api: Api) -> None:
    # GIVEN an owner's project and a form with the file and 2,000 tiny extra parts
    user = make_user(api)
    pid = make_project(api, user)["id"]
    body = _multipart([("file", "top.v", b"module top; endmodule\n")]
                      + [(f"x{i}", None, b"y") for i in range(2000)])
    # WHEN it is uploaded
    reply = api.post(f"/api/v1/projects/{pid}/files/upload", raw=body, token=user.token,
                     headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    # THEN 422 naming the cap, and nothing is stored
    assert reply.status == 422, reply.body
    assert "more than 8 parts" in reply.json["detail"]
    assert api.get(f"/api/v1/projects/{pid}/files", token=user.token).json == []


def test_an_upload_is_authorised_before_its_body_is_parsed(api: Api) -> None:
    # GIVEN a private project and a stranger
    owner, stranger = make_user(api), make_user(api)
    pid = make_project(api, owner)["id"]
    # WHEN the stranger posts a body that would fail parsing
    reply = api.post(f"/api/v1/projects/{pid}/files/upload", raw=b"--b0undary\r\ngarbage",
                     token=stranger.token,
                     headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    # THEN the project is not found for them: the body was never looked at
    assert reply.status == 404, reply.body


# --- finding 6: job quotas ----------------------------------------------------------------------


def _submit(api: Api, user: UserCtx, pid: str) -> object:
    return api.post(f"/api/v1/projects/{pid}/jobs", token=user.token,
                    json_body={"job_type": "lint", "config": {}})


def test_queued_and_running_jobs_are_limited_per_user(api: Api) -> None:
    # GIVEN a limit of 3 queued-or-running jobs per user, and a user with two projects
    user = make_user(api)
    first, second = make_project(api, user)["id"], make_project(api, user)["id"]
    make_file(api, user, first)
    make_file(api, user, second)
    with settings_env(A6HUB_JOBS_MAX_ACTIVE_PER_USER=3, A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT=100):
        # WHEN they submit 5 jobs across both projects (no runner takes them here)
        replies = [_submit(api, user, pid) for pid in (first, second, first, second, first)]
        # THEN 3 are accepted and the rest are 429 with Retry-After, storing no job
        statuses = [r.status for r in replies]  # type: ignore[attr-defined]
        assert statuses == [201, 201, 201, 429, 429], [r.body for r in replies]  # type: ignore[attr-defined]
        refused = replies[3]
        assert int(refused.header("Retry-After") or 0) >= 1  # type: ignore[attr-defined]
        assert "3 queued or running jobs" in refused.json["detail"]  # type: ignore[attr-defined]
        jobs = api.get(f"/api/v1/projects/{second}/jobs", token=user.token).json
        assert len(jobs) == 1
        # AND cancelling one frees a slot
        job_id = replies[0].json["id"]  # type: ignore[attr-defined]
        assert api.delete(f"/api/v1/projects/{first}/jobs/{job_id}", token=user.token).status == 200
        assert _submit(api, user, second).status == 201  # type: ignore[attr-defined]


def test_queued_and_running_jobs_are_limited_per_project(api: Api) -> None:
    # GIVEN a project with two editors and a limit of 2 active jobs per project
    owner, editor = make_user(api), make_user(api)
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid)
    add_member(api, owner, pid, editor, "editor")
    with settings_env(A6HUB_JOBS_MAX_ACTIVE_PER_USER=100, A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT=2):
        statuses = [_submit(api, u, pid).status for u in (owner, editor, editor)]  # type: ignore[attr-defined]
    assert statuses == [201, 201, 429]


def test_submissions_per_minute_are_limited_and_a_refused_one_stores_nothing(api: Api) -> None:
    # GIVEN a limit of 2 job submissions per user per minute (the caps on active jobs far off)
    limits = {"A6HUB_JOBS_MAX_SUBMITS_PER_MINUTE": 2, "A6HUB_JOBS_MAX_ACTIVE_PER_USER": 100,
              "A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT": 100}
    for _ in range(3):  # a fresh user and minute if the three fell across a minute's boundary
        user = make_user(api)
        pid = make_project(api, user)["id"]
        make_file(api, user, pid)
        with settings_env(**limits):
            # WHEN they submit three jobs within the same minute
            minute = int(time.time()) // 60
            replies = [_submit(api, user, pid) for _ in range(3)]
            if int(time.time()) // 60 == minute:
                break
    # THEN two are accepted, the third is 429 with Retry-After and no job is stored for it
    statuses = [r.status for r in replies]  # type: ignore[attr-defined]
    assert statuses == [201, 201, 429], [r.body for r in replies]  # type: ignore[attr-defined]
    refused = replies[2]
    assert 1 <= int(refused.header("Retry-After") or 0) <= 60  # type: ignore[attr-defined]
    assert "last minute" in refused.json["detail"]  # type: ignore[attr-defined]
    jobs = api.get(f"/api/v1/projects/{pid}/jobs", token=user.token).json
    assert sorted(j["id"] for j in jobs) == sorted(r.json["id"] for r in replies[:2])  # type: ignore[attr-defined]


def test_a_pending_job_shows_its_queue_position(api: Api) -> None:
    # GIVEN two pending jobs submitted one after the other (no runner takes them here; jobs
    # other tests left pending are ahead of both)
    user = make_user(api)
    pid = make_project(api, user)["id"]
    make_file(api, user, pid)
    first = _submit(api, user, pid).json  # type: ignore[attr-defined]
    second = _submit(api, user, pid).json  # type: ignore[attr-defined]
    # WHEN the second is read / THEN it stands right behind the first
    got = api.get(f"/api/v1/projects/{pid}/jobs/{second['id']}", token=user.token).json
    assert got["status"] == "pending"
    assert first["queue_position"] >= 1
    assert got["queue_position"] == first["queue_position"] + 1
    # AND moves up when the first leaves the queue; an ended job has no position
    assert api.delete(f"/api/v1/projects/{pid}/jobs/{first['id']}", token=user.token).status == 200
    got = api.get(f"/api/v1/projects/{pid}/jobs/{second['id']}", token=user.token).json
    assert got["queue_position"] == first["queue_position"]
    ended = api.get(f"/api/v1/projects/{pid}/jobs/{first['id']}", token=user.token).json
    assert ended["queue_position"] is None


def test_artifacts_count_against_a_storage_quota(api: Api) -> None:
    from chalicelib.services import job_quotas

    # GIVEN a project whose jobs already stored artifacts up to the quota
    user = make_user(api)
    pid = make_project(api, user)["id"]
    make_file(api, user, pid)
    with settings_env(A6HUB_MAX_ARTIFACT_BYTES_PER_PROJECT=1000):
        assert job_quotas.reserve_artifact_bytes(pid, 600) is True
        # WHEN a job would store 600 bytes more / THEN it is refused; a smaller one fits
        assert job_quotas.reserve_artifact_bytes(pid, 600) is False
        assert job_quotas.reserve_artifact_bytes(pid, 400) is True


# --- finding 7: a viewer publishing a private project ---------------------------------------------


def test_a_private_fork_of_a_private_project_cannot_be_made_public_by_a_viewer(api: Api) -> None:
    # GIVEN a private project shared with a viewer, who forks it privately
    owner, viewer, pid = private_project_with_a_viewer(api)
    fork = api.post(f"/api/v1/projects/{pid}/fork", token=viewer.token,
                    json_body={"name": unique("copy ")}).json
    assert fork["forked_from"] == pid
    # WHEN the viewer makes the fork public / THEN 403, and it stays private and unlisted
    reply = api.put(f"/api/v1/projects/{fork['id']}", token=viewer.token,
                    json_body={"visibility": "public"})
    assert reply.status == 403, reply.body
    assert api.get(f"/api/v1/projects/{fork['id']}").status == 404
    # AND a fork of that fork cannot be published either
    again = api.post(f"/api/v1/projects/{fork['id']}/fork", token=viewer.token,
                     json_body={"name": unique("copy2 ")}).json
    assert api.put(f"/api/v1/projects/{again['id']}", token=viewer.token,
                   json_body={"visibility": "public"}).status == 403
    # AND once the owner publishes the original, the copies may be published too
    assert api.put(f"/api/v1/projects/{pid}", token=owner.token,
                   json_body={"visibility": "public"}).status == 200
    assert api.put(f"/api/v1/projects/{again['id']}", token=viewer.token,
                   json_body={"visibility": "public"}).status == 200


def test_the_owner_may_publish_a_fork_of_their_own_private_project(api: Api) -> None:
    owner = make_user(api)
    pid = make_project(api, owner)["id"]
    fork = api.post(f"/api/v1/projects/{pid}/fork", token=owner.token,
                    json_body={"name": unique("mine ")}).json
    assert api.put(f"/api/v1/projects/{fork['id']}", token=owner.token,
                   json_body={"visibility": "public"}).status == 200


# --- finding 8: /auth/password ------------------------------------------------------------------


def _api_token(api: Api, user: UserCtx) -> str:
    reply = api.post("/api/v1/auth/tokens", token=user.token, json_body={"name": unique("t")})
    assert reply.status == 201, reply.body
    return str(reply.json["token"])


def test_an_api_token_cannot_change_the_password(api: Api) -> None:
    # GIVEN a user's personal API token (leaked), and their password (also leaked, say)
    user = make_user(api)
    secret = _api_token(api, user)
    # WHEN the token holder changes the password / THEN 403, and the password still logs in
    reply = api.post("/api/v1/auth/password", token=secret, json_body={
        "current_password": user.password, "new_password": "taken over now"})
    assert reply.status == 403, reply.body
    assert api.post("/api/v1/auth/login", json_body={
        "email": user.email, "password": user.password}).status == 200


def test_password_guesses_take_from_the_login_limits(api: Api) -> None:
    from chalicelib.models.accounts import User
    from chalicelib.schemas.accounts import PasswordChange
    from chalicelib.services import accounts
    from chalicelib.services.identity import Caller

    # GIVEN a session and a limit of 3 failures per account
    user = make_user(api)
    caller = Caller(user=User.get(user.id))
    with settings_env(A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT=3, A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT=1000,
                      A6HUB_LOGIN_WINDOW_SECONDS=10_000_000):
        client = unique("192.0.2.")
        outcomes = []
        # WHEN 5 wrong current passwords are tried, then the right one
        for guess in ["guess 1", "guess 2", "guess 3", "guess 4", "guess 5", user.password]:
            try:
                accounts.change_password(caller, PasswordChange(
                    current_password=guess, new_password="a new passphrase"), client)
                outcomes.append("changed")
            except BadRequest:
                outcomes.append("400")
            except TooManyRequests:
                outcomes.append("429")
    # THEN 3 were checked and the rest refused, the right one included (the window is spent)
    assert outcomes == ["400", "400", "400", "429", "429", "429"], outcomes


def test_a_password_change_revokes_api_tokens_and_sessions(api: Api) -> None:
    # GIVEN a user with an API token and a session
    user = make_user(api)
    secret = _api_token(api, user)
    assert api.get("/api/v1/auth/me", token=secret).status == 200
    # WHEN they change their password in that session
    reply = api.post("/api/v1/auth/password", token=user.token, json_body={
        "current_password": user.password, "new_password": "a brand new passphrase"})
    assert reply.status == 204, reply.body
    # THEN the token and the session no longer work
    assert api.get("/api/v1/auth/me", token=secret).status == 401
    assert api.get("/api/v1/auth/me", token=user.token).status == 401


# --- finding 9: login emails ----------------------------------------------------------------------


def test_commits_show_a_no_reply_address_unless_the_user_chooses(api: Api) -> None:
    # GIVEN a public project where its owner commits through the files API
    user = make_user(api)
    pid = make_project(api, user, visibility="public")["id"]
    make_file(api, user, pid, "a.v")
    # WHEN anyone reads its history / THEN the login email is not there
    commits = api.get(f"/api/v1/projects/{pid}/git/commits").json
    assert commits and all(user.email not in (c["author_email"], c["committer_email"])
                           for c in commits)
    assert commits[0]["author_email"] == f"{user.username.lower()}@users.noreply.a6hub.invalid"
    me = api.get("/api/v1/auth/me", token=user.token).json
    assert me["commit_email"] == commits[0]["author_email"] and me["public_email"] is False
    # AND a user who opts in gets their login email on later commits
    changed = api.patch("/api/v1/auth/me", token=user.token, json_body={"public_email": True})
    assert changed.status == 200 and changed.json["commit_email"] == user.email
    make_file(api, user, pid, "b.v")
    assert api.get(f"/api/v1/projects/{pid}/git/commits").json[0]["author_email"] == user.email


def test_registration_does_not_confirm_that_an_email_has_an_account(api: Api) -> None:
    # GIVEN an existing account
    user = make_user(api)
    # WHEN someone registers its email under a fresh username
    name = unique("probe")
    taken = api.post("/api/v1/auth/register", json_body={
        "email": user.email.upper(), "username": name, "password": "probing passphrase"})
    fresh_name = unique("fresh")
    fresh = api.post("/api/v1/auth/register", json_body={
        "email": f"{fresh_name}@example.test", "username": fresh_name,
        "password": "probing passphrase"})
    # THEN the answer has the same status and shape as for a new address
    assert taken.status == fresh.status == 201, taken.body
    assert set(taken.json) == set(fresh.json)
    assert taken.json["username"] == name and taken.json["id"] != user.id
    # AND nothing was stored: the owner's password still logs in, the probe's does not
    assert api.post("/api/v1/auth/login", json_body={
        "email": user.email, "password": user.password}).status == 200
    assert api.post("/api/v1/auth/login", json_body={
        "email": user.email, "password": "probing passphrase"}).status == 401
    # AND a taken username is still reported (usernames are public anyway)
    dupe = api.post("/api/v1/auth/register", json_body={
        "email": f"{unique('d')}@example.test", "username": user.username,
        "password": "probing passphrase"})
    assert dupe.status == 400 and "Username already registered" in dupe.json["detail"]
