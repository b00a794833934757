"""Import a project from a git URL: the SSRF guard, the API, and the runner's fetch.

Every server here is on 127.0.0.1 (the real `git http-backend` and `git daemon`); nothing
else on the network is contacted: refused addresses are refused before any connection.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import reload
from chalicelib.services.git import url_guard as import_guard
from tests.conftest import Api, UserCtx, unique
from tests.git_server import git_daemon, http_git_server, make_repo
from tests.jobs_support import Queues, api_queue, make_queues

HISTORY = [
    {"rtl/top.v": "module top; endmodule\n", "README.md": "first\n"},
    {"rtl/top.v": "module top(input a); endmodule\n"},
    {"tb/tb.v": "module tb; top t(.a(1'b0)); endmodule\n"},
]

# --- the address checks ------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "169.254.169.254", "169.254.0.1", "10.0.0.1", "10.255.255.255", "172.16.0.1",
    "172.31.255.254", "192.168.1.1", "127.0.0.1", "127.8.9.10", "0.0.0.0", "100.64.0.1",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fe80::1%eth0",
    "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
    "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
])
def test_internal_addresses_are_refused(address: str) -> None:
    assert import_guard.address_problem(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "140.82.112.3", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert import_guard.address_problem(address) is None


@pytest.mark.parametrize("url, said", [
    ("ftp://example.com/r.git", "only https"),
    ("file:///etc/passwd", "only https"),
    ("ssh://git@example.com/r.git", "only https"),
    ("https://user:pw@example.com/r.git", "credentials"),
    ("https://evil.com@127.0.0.1/r.git", "credentials"),
    ("https://example.com:22/r.git", "port 22"),
    ("https://example.com/r.git?x=1", "query"),
    ("https:///r.git", "no host"),
    ("https://exa mple.com/r.git", "spaces"),
])
def test_malformed_or_tricky_urls_are_refused(url: str, said: str) -> None:
    with pytest.raises(import_guard.ImportRefused) as refused:
        import_guard.parse_url(url)
    assert said in refused.value.detail


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names that resolve where a test says, without asking any DNS server."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def lookup(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in table:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in table[host]]

    monkeypatch.setattr(import_guard.socket, "getaddrinfo", lookup)
    return table


def test_every_resolved_address_is_checked(fake_dns: dict[str, list[str]]) -> None:
    # GIVEN a name with one public and one metadata address, and one with only public ones
    fake_dns["mixed.example"] = ["140.82.112.3", "169.254.169.254"]
    fake_dns["v6.example"] = ["2606:4700:4700::1111", "::ffff:127.0.0.1"]
    fake_dns["good.example"] = ["140.82.112.3", "2606:4700:4700::1111"]
    # THEN any internal address refuses the name; all-global names pass
    for name in ("mixed.example", "v6.example"):
        with pytest.raises(import_guard.ImportRefused):
            import_guard.check_url(f"https://{name}/r.git")
    assert import_guard.check_url("https://good.example/r.git").host == "good.example"


def test_a_name_that_rebinds_to_loopback_is_refused_when_connecting(
        fake_dns: dict[str, list[str]], tmp_path: Path) -> None:
    # GIVEN a name that passed the API's check with a public address ...
    fake_dns["rebind.example"] = ["140.82.112.3"]
    assert import_guard.check_url("http://rebind.example/r.git")
    # ... and now answers with the address of a server on this machine
    with http_git_server(tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        fake_dns["rebind.example"] = ["127.0.0.1"]
        # WHEN the fetch's HTTP client connects
        manager = import_guard.pool_manager(timeout=5)
        with pytest.raises(import_guard.ImportRefused):
            manager.request("GET", f"http://rebind.example:{port}/r.git/info/refs")
        # THEN it refused before connecting: the server saw nothing
        assert server.requests == []


def test_a_redirect_to_an_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    # GIVEN a server taken for public (127.0.0.1 let through) that redirects to 127.0.0.2
    real = import_guard.address_problem
    monkeypatch.setattr(import_guard, "address_problem",
                        lambda a: None if str(a) == "127.0.0.1" else real(a))
    with http_git_server(tmp_path) as target, \
            http_git_server(tmp_path, redirect_to=target.url.replace("127.0.0.1", "127.0.0.2")
                            ) as redirecting:
        # WHEN the guarded client follows the redirect
        with pytest.raises(import_guard.ImportRefused):
            import_guard.pool_manager(timeout=5).request("GET", f"{redirecting.url}/r.git/info/refs")
        # THEN the first server was asked, the redirect target never
        assert redirecting.requests and target.requests == []


# --- the API and the runner --------------------------------------------------------------


@pytest.fixture
def queues(emulator: Any) -> Iterator[Queues]:
    q = make_queues(max_receives=2, visibility=5)
    with api_queue(q.url):
        yield q


def make_worker(queues: Queues) -> Any:
    from runner.worker import RunnerSettings, Worker

    settings = dataclasses.replace(RunnerSettings.from_queue(queues.url), wait_seconds=1,
                                   dlq_check_seconds=60, log_flush_seconds=0.2,
                                   cancel_poll_seconds=0.2)
    return Worker(settings)


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    root = tmp_path / "repos"
    root.mkdir()
    make_repo(root, "core", HISTORY)
    make_repo(root, "linked", [{"a.v": "module a; endmodule\n"}])
    work = root / "linked-work"
    (work / "link.v").symlink_to("a.v")
    from tests.git_server import git

    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "a symlink")
    git(work, "push", "-q", str(root / "linked.git"), "trunk")
    return root


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A6HUB_IMPORT_ALLOW_PRIVATE", "1")
    reload()


def start(api: Api, user: UserCtx, url: str, **more: Any) -> Any:
    return api.post("/api/v1/projects/import", token=user.token,
                    json_body={"url": url, "name": unique("imported "), **more})


def finish(api: Api, user: UserCtx, queues: Queues, project: dict[str, Any]) -> dict[str, Any]:
    """Let an in-process runner take the import job; returns the job as the API shows it."""
    worker = make_worker(queues)
    assert worker.poll_once(wait_seconds=1) == 1
    reply = api.get(f"/api/v1/projects/{project['id']}/jobs/{project['import_job_id']}",
                    token=user.token)
    assert reply.status == 200, reply.body
    return dict(reply.json)


def import_served(api: Api, user: UserCtx, queues: Queues, repos: Path,
                  name: str = "core.git") -> tuple[dict[str, Any], dict[str, Any]]:
    """Import `repos/name`, served over smart HTTP for the duration, and let an in-process runner
    run the job; returns (the project as accepted, its job as the API shows it)."""
    with http_git_server(repos) as server:
        project = start(api, user, f"{server.url}/{name}").json
        return project, finish(api, user, queues, project)


def commit_a_symlink(work: Path) -> None:
    """Commit link.v -> README.md in the working tree `work` (a push would refuse it)."""
    from tests.git_server import git

    (work / "link.v").symlink_to("README.md")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "a symlink")


def logs_of(api: Api, user: UserCtx, project: dict[str, Any]) -> str:
    reply = api.get(f"/api/v1/projects/{project['id']}/jobs/{project['import_job_id']}/logs",
                    token=user.token)
    return str(reply.json["logs"])


def test_import_over_http_brings_files_and_full_history(
        api: Api, owner: UserCtx, stranger: UserCtx, queues: Queues, repos: Path,
        allow_private: None) -> None:
    with http_git_server(repos) as server:
        # WHEN the owner imports the repository (its default branch is "trunk")
        reply = start(api, owner, f"{server.url}/core.git", visibility="private")
        # THEN the project exists at once, marked importing, with its job to follow
        assert reply.status == 202, reply.body
        project = reply.json
        assert project["import_status"] == "importing" and project["import_job_id"]
        assert reply.headers["Location"].endswith(f"/jobs/{project['import_job_id']}")
        job = api.get(f"/api/v1/projects/{project['id']}/jobs/{project['import_job_id']}",
                      token=owner.token).json
        assert job["job_type"] == "import" and job["status"] == "pending"
        # WHEN a runner takes the job
        job = finish(api, owner, queues, project)
    # THEN it completed, and the project holds the last commit's files
    assert job["status"] == "completed", job
    assert "importing HEAD" in logs_of(api, owner, project)
    base = f"/api/v1/projects/{project['id']}"
    shown = api.get(base, token=owner.token).json
    assert shown["import_status"] == "completed" and shown["file_count"] == 3
    files = {f["filepath"]: f for f in api.get(f"{base}/files", token=owner.token).json}
    assert set(files) == {"README.md", "rtl/top.v", "tb/tb.v"}
    top = api.get(f"{base}/files/{files['rtl/top.v']['id']}", token=owner.token).json
    assert top["content"] == HISTORY[1]["rtl/top.v"]
    # AND the whole history, newest first, authored as in the source
    commits = api.get(f"{base}/git/commits", token=owner.token).json
    assert [c["summary"] for c in commits] == ["commit 3", "commit 2", "commit 1"]
    assert {c["author_email"] for c in commits} == {"ada@example.com"}
    assert job["summary"]["import"]["head"] == commits[0]["id"]
    first = api.get(f"{base}/git/commits/{commits[2]['id']}/content?path=rtl/top.v",
                    token=owner.token).json
    assert first["content"] == HISTORY[0]["rtl/top.v"]
    # AND its modules were extracted by the import, as a push does
    modules = {m["name"]: m for m in api.get(f"{base}/modules", token=owner.token).json}
    assert set(modules) == {"top", "tb"}
    assert modules["tb"]["module_metadata"]["instances"] == ["top"]
    # AND the imported project is as private as asked
    assert api.get(base, token=stranger.token).status == 404


def test_import_over_git_protocol_and_a_named_branch(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    from tests.git_server import git

    git(repos / "core-work", "checkout", "-q", "-b", "feature")
    (repos / "core-work" / "extra.v").write_text("module extra; endmodule\n")
    git(repos / "core-work", "add", "-A")
    git(repos / "core-work", "commit", "-q", "-m", "on feature")
    git(repos / "core-work", "tag", "-a", "v1", "-m", "release 1", "HEAD~1")
    git(repos / "core-work", "push", "-q", str(repos / "core.git"), "feature", "v1")
    with git_daemon(repos) as url:
        project = start(api, owner, f"{url}/core.git", branch="feature").json
        job = finish(api, owner, queues, project)
    assert job["status"] == "completed", (job, logs_of(api, owner, project))
    commits = api.get(f"/api/v1/projects/{project['id']}/git/commits", token=owner.token).json
    assert [c["summary"] for c in commits] == ["on feature", "commit 3", "commit 2", "commit 1"]
    # AND the remote's branches and its annotated tag are kept beside main
    from chalicelib.models.git import GitRef

    refs = {r.ref: r.target for r in GitRef.query(project["id"], consistent_read=True)}
    assert set(refs) == {"refs/heads/main", "refs/heads/feature", "refs/heads/trunk",
                         "refs/tags/v1"}
    assert refs["refs/heads/main"] == refs["refs/heads/feature"] == commits[0]["id"]
    assert refs["refs/heads/trunk"] == commits[1]["id"]
    assert job["summary"]["import"]["other_refs"] == 3


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "169.254.169.254",
                                  "10.0.0.1", "2130706433", "0x7f.1"])
def test_without_the_allowance_internal_hosts_are_refused_at_submit(
        api: Api, owner: UserCtx, queues: Queues, host: str) -> None:
    # WHEN an import names an internal address (no server is needed: nothing is contacted)
    name = unique("ssrf ")
    reply = api.post("/api/v1/projects/import", token=owner.token,
                     json_body={"url": f"http://{host}:8080/r.git", "name": name})
    # THEN it is a 422 saying why, and no project was made
    assert reply.status == 422, reply.body
    assert "not allowed" in reply.json["detail"] or "resolve" in reply.json["detail"]
    mine = api.get("/api/v1/projects?limit=100", token=owner.token).json
    assert name not in {p["name"] for p in mine}
    assert queues.depth() == 0


def test_without_the_allowance_the_runner_refuses_too(
        api: Api, owner: UserCtx, queues: Queues, repos: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with http_git_server(repos) as server:
        # GIVEN an import accepted while internal addresses were allowed (localhost: a name)
        monkeypatch.setenv("A6HUB_IMPORT_ALLOW_PRIVATE", "1")
        reload()
        url = server.url.replace("127.0.0.1", "localhost") + "/core.git"
        project = start(api, owner, url).json
        # WHEN the runner runs it where they are not
        monkeypatch.delenv("A6HUB_IMPORT_ALLOW_PRIVATE")
        reload()
        job = finish(api, owner, queues, project)
        # THEN the job failed with the reason, before any request reached the server
        assert server.requests == []
    assert job["status"] == "failed" and "refused" in job["error_message"], job
    assert "loopback" in job["error_message"]
    assert "import failed: refused" in logs_of(api, owner, project)
    shown = api.get(f"/api/v1/projects/{project['id']}", token=owner.token).json
    assert shown["import_status"] == "failed" and shown["file_count"] == 0


def test_a_repository_that_breaks_the_push_rules_is_refused_whole(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    project, job = import_served(api, owner, queues, repos, "linked.git")
    assert job["status"] == "failed", job
    assert "'link.v': symbolic links are not supported" in job["error_message"]
    base = f"/api/v1/projects/{project['id']}"
    assert api.get(f"{base}/git/commits", token=owner.token).json == []
    assert api.get(f"{base}/files", token=owner.token).json == []


def test_an_unknown_branch_or_repository_fails_with_the_reason(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    with http_git_server(repos) as server:
        no_branch = start(api, owner, f"{server.url}/core.git", branch="nope").json
        job = finish(api, owner, queues, no_branch)
        assert job["status"] == "failed" and "no branch 'nope'" in job["error_message"], job
        missing = start(api, owner, f"{server.url}/missing.git").json
        job = finish(api, owner, queues, missing)
        assert job["status"] == "failed" and job["error_message"], job


def test_import_request_validation(api: Api, owner: UserCtx, allow_private: None) -> None:
    url = "http://127.0.0.1:65500/r.git"  # never contacted: each request is refused first
    post = api.post
    assert post("/api/v1/projects/import", json_body={"url": url}).status == 401
    for body, said in (({"url": url, "branch": "../x"}, "branch"),
                       ({"url": url, "branch": "-x"}, "branch"),
                       ({"url": url, "extra": 1}, "extra"),
                       ({"url": "ftp://127.0.0.1/r.git"}, "only https")):
        reply = post("/api/v1/projects/import", token=owner.token, json_body=body)
        assert reply.status == 422 and said in reply.body.decode(), reply.body


@pytest.mark.slow
def test_a_runner_process_without_the_api_key_imports(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, tmp_path: Path,
        allow_private: None) -> None:
    from tests.jobs_support import wait_for
    from tests.runner.test_jobs_e2e import RunnerProcess

    # GIVEN `python -m runner` as deployed: no JWT signing key in its environment
    runner = RunnerProcess(queues, tmp_path / "runner.log", A6HUB_IMPORT_ALLOW_PRIVATE="1")
    try:
        with http_git_server(repos) as server:
            # WHEN an import is submitted
            project = start(api, owner, f"{server.url}/core.git").json
            base = f"/api/v1/projects/{project['id']}"
            # THEN the runner completes it and the project shows its files
            shown = wait_for(lambda: (p := api.get(base, token=owner.token).json)[
                "import_status"] != "importing" and p, timeout=120, what="the import")
    finally:
        assert runner.stop() == 0, runner.output()[-3000:]
    assert shown["import_status"] == "completed", logs_of(api, owner, project)
    assert shown["file_count"] == 3


def test_an_import_released_by_a_stopping_runner_stays_importing_and_then_completes(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    import threading

    from tests.jobs_support import wait_for

    with http_git_server(repos, delay=2) as server:
        # GIVEN an import being fetched (from a server slow to answer) by a serving runner
        project = start(api, owner, f"{server.url}/core.git").json
        base = f"/api/v1/projects/{project['id']}"
        job_path = f"{base}/jobs/{project['import_job_id']}"
        worker = make_worker(queues)
        serving = threading.Thread(target=worker.serve, daemon=True)
        serving.start()
        wait_for(lambda: api.get(job_path, token=owner.token).json["status"] == "running",
                 what="the import to start")
        # WHEN the runner stops (a deploy): the import is cancelled and the job given back
        worker.stop(0)
        serving.join(30)
        assert api.get(job_path, token=owner.token).json["status"] == "pending"
        # THEN the project still says importing (the job runs again), not failed
        assert api.get(base, token=owner.token).json["import_status"] == "importing"
        # AND the next runner's attempt completes it
        job = finish(api, owner, queues, project)
    assert job["status"] == "completed" and job["attempts"] == 2, job
    assert api.get(base, token=owner.token).json["import_status"] == "completed"


def test_an_import_retried_after_main_moved_finishes_the_first_attempts_work(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import EndpointConnectionError

    from chalicelib.services.git import sync

    # GIVEN an import whose first attempt moved main, then lost storage while filling the files
    # table (the runner gives such a job back to the queue: it is retried)
    real_sync = sync.sync_files

    def storage_down(*args: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://storage.invalid")

    monkeypatch.setattr(sync, "sync_files", storage_down)
    with http_git_server(repos) as server:
        project = start(api, owner, f"{server.url}/core.git").json
        base = f"/api/v1/projects/{project['id']}"
        worker = make_worker(queues)
        worker.settings = dataclasses.replace(worker.settings, release_backoff_seconds=0)
        assert worker.poll_once(wait_seconds=1) == 1
        job_path = f"{base}/jobs/{project['import_job_id']}"
        assert api.get(job_path, token=owner.token).json["status"] == "pending"
        assert api.get(f"{base}/git/commits", token=owner.token).json  # main moved
        assert api.get(f"{base}/files", token=owner.token).json == []
        # WHEN storage is back and the import runs again
        monkeypatch.setattr(sync, "sync_files", real_sync)
        job = finish(api, owner, queues, project)
    # THEN the retry completes it: same main, every file in the files table
    assert job["status"] == "completed" and job["attempts"] == 2, logs_of(api, owner, project)
    shown = api.get(base, token=owner.token).json
    assert shown["import_status"] == "completed" and shown["file_count"] == 3, shown
    assert job["summary"]["import"]["files"] == 3


def test_an_import_never_resumes_over_a_main_it_did_not_move(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    import threading

    from chalicelib.models.projects import Project
    from chalicelib.services.git.imports import ImportFailed, fetch_into

    # GIVEN a project whose import completed
    project, job = import_served(api, owner, queues, repos)
    assert job["status"] == "completed", job
    pid = int(project["id"])
    commits = api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json
    with http_git_server(repos) as server:
        # WHEN it is imported into again: refused, the project is no longer importing
        with pytest.raises(ImportFailed, match="already has commits"):
            fetch_into(pid, f"{server.url}/core.git", None, lambda _: None, threading.Event())
        # AND while still importing, from a repository whose tip is not the project's main (as
        # after a push meanwhile): refused too
        Project(pid).update(actions=[Project.import_status.set("importing")],
                            add_version_condition=False)
        with pytest.raises(ImportFailed, match="received commits while it was being imported"):
            fetch_into(pid, f"{server.url}/linked.git", "trunk", lambda _: None,
                       threading.Event())
    # THEN main and its history are as the import left them
    assert api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json == commits


def test_the_download_is_capped_in_size_and_time(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a pack size cap smaller than the repository's pack
    monkeypatch.setenv("A6HUB_IMPORT_MAX_PACK_BYTES", "200")
    reload()
    project, job = import_served(api, owner, queues, repos)
    # THEN the import stops with the reason, having stored nothing
    assert job["status"] == "failed" and "import limit of 200 bytes" in job["error_message"], job
    assert api.get(f"/api/v1/projects/{project['id']}/git/commits", token=owner.token).json == []
    # GIVEN a time cap of 1 s and a server that takes 3 s to answer
    monkeypatch.delenv("A6HUB_IMPORT_MAX_PACK_BYTES")
    monkeypatch.setenv("A6HUB_IMPORT_TIMEOUT_SECONDS", "1")
    reload()
    with http_git_server(repos, delay=3) as server:
        project = start(api, owner, f"{server.url}/core.git").json
        job = finish(api, owner, queues, project)
    # THEN it fails as a timeout instead of waiting
    assert job["status"] == "failed" and "the repository timed out" in job["error_message"], job


def test_an_import_cancelled_before_it_ran_shows_failed(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    # GIVEN an import still waiting for a runner
    project = start(api, owner, "http://127.0.0.1:65500/core.git").json
    base = f"/api/v1/projects/{project['id']}"
    assert api.get(base, token=owner.token).json["import_status"] == "importing"
    # WHEN its job is cancelled (no runner ever records the outcome)
    cancel = api.delete(f"{base}/jobs/{project['import_job_id']}", token=owner.token)
    assert cancel.status == 200 and cancel.json["status"] == "cancelled", cancel.body
    # THEN the project no longer claims to be importing
    assert api.get(base, token=owner.token).json["import_status"] == "failed"


def test_git_protocol_connections_refuse_a_rebound_name(fake_dns: dict[str, list[str]]) -> None:
    # GIVEN a listening socket on 127.0.0.1 and a name that now resolves to it
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        fake_dns["rebind.example"] = ["140.82.112.3", "127.0.0.1"]
        # WHEN the git:// client's connection is made
        with pytest.raises(import_guard.ImportRefused):
            import_guard.connect("rebind.example", port, timeout=2)
        # THEN nothing connected
        with pytest.raises(TimeoutError):
            listener.accept()


def test_https_connections_go_through_the_guard_too(fake_dns: dict[str, list[str]]) -> None:
    # GIVEN a TLS URL whose name resolves to loopback (nothing listens: nothing must connect)
    fake_dns["tls.example"] = ["127.0.0.1"]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        # WHEN the guarded client opens it
        with pytest.raises(import_guard.ImportRefused):
            import_guard.pool_manager(timeout=2).request(
                "GET", f"https://tls.example:{port}/r.git/info/refs")
        # THEN it was refused before any TCP connection
        with pytest.raises(TimeoutError):
            listener.accept()


def test_a_branch_a_push_would_refuse_is_left_out_and_said(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    from tests.git_server import git

    # GIVEN a repository whose default branch is fine and another branch has a symlink
    work = repos / "core-work"
    git(work, "checkout", "-q", "-b", "bad")
    commit_a_symlink(work)
    git(work, "push", "-q", str(repos / "core.git"), "bad")
    project, job = import_served(api, owner, queues, repos)
    # THEN the import completes with main and trunk, and the log says why "bad" is not there
    assert job["status"] == "completed", job
    from chalicelib.models.git import GitRef

    refs = {r.ref for r in GitRef.query(project["id"], consistent_read=True)}
    assert refs == {"refs/heads/main", "refs/heads/trunk"}
    said = logs_of(api, owner, project)
    assert "not imported: refs/heads/bad (commit " in said, said
    assert "'link.v': symbolic links are not supported)" in said, said


def test_imports_are_limited_per_user_and_hour(api: Api, queues: Queues, allow_private: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import make_user

    # GIVEN a limit of 2 imports per hour and a new user
    monkeypatch.setenv("A6HUB_IMPORT_MAX_PER_HOUR", "2")
    reload()
    user = make_user(api)
    url = "http://127.0.0.1:65500/r.git"  # never fetched: no runner here
    # WHEN the user starts three
    replies = [start(api, user, url) for _ in range(3)]
    # THEN the third is a 429 with Retry-After, and made no project
    assert [r.status for r in replies] == [202, 202, 429]
    assert int(replies[2].headers["Retry-After"]) > 0 and "per hour" in replies[2].json["detail"]
    assert len(api.get("/api/v1/projects", token=user.token).json) == 2


def test_an_import_is_held_to_the_rules_in_every_commit_not_only_the_tip(
        api: Api, owner: UserCtx, queues: Queues, repos: Path, allow_private: None) -> None:
    from tests.git_server import git

    # GIVEN a repository whose default branch once held a symlink that a later commit removed
    work = repos / "core-work"
    commit_a_symlink(work)
    git(work, "rm", "-q", "link.v")
    git(work, "commit", "-q", "-m", "no symlink")
    git(work, "push", "-q", str(repos / "core.git"), "HEAD")

    # WHEN it is imported
    project, job = import_served(api, owner, queues, repos)

    # THEN the import fails, saying which commit breaks which rule, and nothing is stored
    assert job["status"] == "failed", job
    said = logs_of(api, owner, project)
    assert "'link.v': symbolic links are not supported" in said, said
    from chalicelib.services.git.store import open_repo

    assert list(open_repo(project["id"]).object_store) == []
