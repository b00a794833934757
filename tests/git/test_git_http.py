"""The real `git` client against the running server: clone, pull and push over smart HTTP."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from tests.conftest import Api, UserCtx, add_member, make_file, make_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="the git client is not installed"),
]


class Git:
    """Runs the git CLI with a private HOME (identity, default branch) and no prompts."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Git Tester\n\temail = tester@example.test\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
        self.env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C",
                    "NO_PROXY": "127.0.0.1,localhost"}

    def run(self, *args: str, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["git", *args], cwd=cwd or self.home, env=self.env,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


    def clone(self, url: str, into: str = "work") -> Path:
        """`git clone -q url into` under HOME; returns the working tree."""
        self.run("clone", "-q", url, into)
        return self.home / into

@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "home")


def api_token(api: Api, user: UserCtx) -> str:
    cached = user.extra.get("api_token")
    if cached:
        return str(cached)
    reply = api.post("/api/v1/auth/tokens", token=user.token, json_body={"name": "git"})
    assert reply.status == 201, reply.body
    user.extra["api_token"] = reply.json["token"]
    return str(reply.json["token"])


def remote(live_server: str, project_id: str, token: str | None = None) -> str:
    host = live_server.removeprefix("http://")
    auth = f"x:{token}@" if token else ""
    return f"http://{auth}{host}/api/v1/projects/{project_id}/git"


def files_of(api: Api, user: UserCtx, project_id: str) -> dict[str, str]:
    listed = api.get(f"/api/v1/projects/{project_id}/files?limit=100", token=user.token)
    assert listed.status == 200, listed.body
    out = {}
    for item in listed.json:
        body = api.get(f"/api/v1/projects/{project_id}/files/{item['id']}", token=user.token)
        out[item["filepath"]] = body.json["content"]
    return out


def commit_all(git: Git, work: Path, message: str) -> None:
    git.run("add", "-A", cwd=work)
    git.run("commit", "-q", "-m", message, cwd=work)


def test_clone_an_empty_project_commit_and_push_shows_in_the_files_api(
        api: Api, live_server: str, owner: UserCtx, git: Git) -> None:
    # GIVEN an empty project and its owner's API token
    pid = make_project(api, owner)["id"]

    # WHEN the owner clones it, commits two files and pushes
    work = git.clone(remote(live_server, pid, api_token(api, owner)))
    (work / "rtl").mkdir()
    (work / "rtl" / "top.v").write_text("module top; endmodule\n")
    (work / "README.md").write_text("# demo\n")
    commit_all(git, work, "First commit from git")
    pushed = git.run("push", "origin", "main", cwd=work)

    # THEN the push succeeded and the files API shows both files
    assert "main -> main" in pushed.stderr, pushed.stderr
    assert files_of(api, owner, pid) == {"rtl/top.v": "module top; endmodule\n",
                                         "README.md": "# demo\n"}
    project = api.get(f"/api/v1/projects/{pid}", token=owner.token).json
    assert project["file_count"] == 2
    # AND the history API shows the pushed commit with git's author
    [commit] = api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json
    assert commit["summary"] == "First commit from git"
    assert commit["author_email"] == "tester@example.test"


def test_clone_a_project_edit_through_the_api_and_pull(
        api: Api, live_server: str, owner: UserCtx, git: Git) -> None:
    # GIVEN a project with files written through the files API
    pid = make_project(api, owner)["id"]
    top = make_file(api, owner, pid, "rtl/top.v", "module top; endmodule\n")
    make_file(api, owner, pid, "tb/tb.v", "module tb; endmodule\n")
    url = remote(live_server, pid, api_token(api, owner))

    # WHEN it is cloned
    work = git.clone(url)

    # THEN the working tree holds the files and the log one commit per API change
    assert (work / "rtl" / "top.v").read_text() == "module top; endmodule\n"
    assert (work / "tb" / "tb.v").read_text() == "module tb; endmodule\n"
    log = git.run("log", "--format=%s|%ae", cwd=work).stdout.split("\n")
    # API commits carry the no-reply address, not the login email (issue 10, finding 9)
    address = f"{owner.username.lower()}@users.noreply.a6hub.invalid"
    assert log[:2] == [f"Add tb/tb.v|{address}", f"Add rtl/top.v|{address}"]

    # WHEN the file is changed through the API and the clone pulls
    reply = api.put(f"/api/v1/projects/{pid}/files/{top['id']}", token=owner.token,
                    json_body={"content": "module top(input clk); endmodule\n",
                               "message": "Add a clock"})
    assert reply.status == 200, reply.body
    git.run("pull", "-q", "--ff-only", cwd=work)

    # THEN the pull brought the change and its message
    assert (work / "rtl" / "top.v").read_text() == "module top(input clk); endmodule\n"
    assert git.run("log", "-1", "--format=%s", cwd=work).stdout.strip() == "Add a clock"


def test_a_push_that_breaks_a_rule_is_refused_whole_with_a_readable_message(
        api: Api, live_server: str, owner: UserCtx, git: Git) -> None:
    # GIVEN a clone of a project with one file
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "rtl/top.v", "module top; endmodule\n")
    git.run("clone", "-q", remote(live_server, pid, api_token(api, owner)), "work")
    work = git.home / "work"

    # WHEN a commit adds a good file and one larger than the per-file limit (5 MiB)
    (work / "ok.v").write_text("module ok; endmodule\n")
    (work / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 1))
    commit_all(git, work, "too big")
    pushed = git.run("push", "origin", "main", cwd=work, check=False)

    # THEN git reports the refusal and the reason, and nothing of it reached the project
    assert pushed.returncode != 0, pushed.stderr
    assert "big.bin" in pushed.stderr and "larger than the limit" in pushed.stderr, pushed.stderr
    assert "[remote rejected]" in pushed.stderr, pushed.stderr
    assert set(files_of(api, owner, pid)) == {"rtl/top.v"}

    # WHEN a commit instead adds a symlink and a name the files API refuses (a backslash)
    git.run("reset", "-q", "--hard", "HEAD~1", cwd=work)
    os.symlink("/etc/passwd", work / "link")
    (work / "bad\\name.v").write_text("// bad\n")
    commit_all(git, work, "a symlink and a bad name")
    pushed = git.run("push", "origin", "main", cwd=work, check=False)

    # THEN it is refused with the reason
    assert pushed.returncode != 0, pushed.stderr
    assert "symbolic links are not supported" in pushed.stderr, pushed.stderr
    assert "must use '/' as the folder separator" in pushed.stderr, pushed.stderr
    assert set(files_of(api, owner, pid)) == {"rtl/top.v"}


def test_access_rules_for_clone_and_push(api: Api, live_server: str, owner: UserCtx,
                                         viewer: UserCtx, stranger: UserCtx, git: Git) -> None:
    # GIVEN a private and a public project, each with a file, and a viewer of the private one
    private = make_project(api, owner)["id"]
    public = make_project(api, owner, visibility="public")["id"]
    for pid in (private, public):
        make_file(api, owner, pid)
    add_member(api, owner, private, viewer, "viewer")

    # THEN anonymous and a stranger cannot clone the private project
    anonymous = git.run("clone", "-q", remote(live_server, private), "anon", check=False)
    assert anonymous.returncode != 0, anonymous.stderr
    assert "could not read Username" in anonymous.stderr, anonymous.stderr
    strange = git.run("clone", "-q", remote(live_server, private, api_token(api, stranger)),
                      "strange", check=False)
    assert strange.returncode != 0 and "not found" in strange.stderr, strange.stderr
    assert "remote: " in strange.stderr, strange.stderr
    # AND a wrong token is refused
    wrong = git.run("clone", "-q", remote(live_server, private, "a6p_not-a-token"), "wrong",
                    check=False)
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr, wrong.stderr

    # AND anyone can clone the public project, but a stranger cannot push to it
    git.run("clone", "-q", remote(live_server, public), "pub")
    work = git.home / "pub"
    assert (work / "rtl" / "top.v").exists()
    (work / "x.v").write_text("// x\n")
    commit_all(git, work, "stranger's change")
    anon_push = git.run("push", "origin", "main", cwd=work, check=False)
    assert anon_push.returncode != 0, anon_push.stderr
    git.run("remote", "set-url", "origin", remote(live_server, public, api_token(api, stranger)),
            cwd=work)
    stranger_push = git.run("push", "origin", "main", cwd=work, check=False)
    assert stranger_push.returncode != 0 and "403" in stranger_push.stderr, stranger_push.stderr

    # AND the viewer can clone the private project but not push to it
    git.run("clone", "-q", remote(live_server, private, api_token(api, viewer)), "viewer")
    work = git.home / "viewer"
    (work / "y.v").write_text("// y\n")
    commit_all(git, work, "viewer's change")
    viewer_push = git.run("push", "origin", "main", cwd=work, check=False)
    assert viewer_push.returncode != 0 and "403" in viewer_push.stderr, viewer_push.stderr
    # AND git shows the reason, not only the status (a text/plain body is printed as remote:)
    assert "remote: You do not have permission to change this project" in viewer_push.stderr, \
        viewer_push.stderr
    for pid in (private, public):
        assert set(files_of(api, owner, pid)) == {"rtl/top.v"}


def test_non_fast_forward_needs_the_owner(api: Api, live_server: str, owner: UserCtx,
                                          editor: UserCtx, git: Git) -> None:
    # GIVEN a project with two commits, cloned by an editor and by the owner
    pid = make_project(api, owner)["id"]
    add_member(api, owner, pid, editor, "editor")
    make_file(api, owner, pid, "a.v", "// a\n")
    make_file(api, owner, pid, "b.v", "// b\n")
    git.run("clone", "-q", remote(live_server, pid, api_token(api, editor)), "ed")
    git.run("clone", "-q", remote(live_server, pid, api_token(api, owner)), "own")

    # WHEN the editor rewrites the last commit and force-pushes
    ed = git.home / "ed"
    git.run("reset", "-q", "--hard", "HEAD~1", cwd=ed)
    (ed / "c.v").write_text("// c\n")
    commit_all(git, ed, "rewritten")
    forced = git.run("push", "--force", "origin", "main", cwd=ed, check=False)

    # THEN it is refused: only the owner may force-push
    assert forced.returncode != 0, forced.stderr
    assert "only the project owner may force-push" in forced.stderr, forced.stderr

    # WHEN the owner does the same
    own = git.home / "own"
    git.run("reset", "-q", "--hard", "HEAD~1", cwd=own)
    (own / "c.v").write_text("// c\n")
    commit_all(git, own, "rewritten by the owner")
    git.run("push", "--force", "origin", "main", cwd=own)

    # THEN the files API follows the rewritten history
    assert files_of(api, owner, pid) == {"a.v": "// a\n", "c.v": "// c\n"}


def test_two_concurrent_pushes_one_wins_and_no_commit_is_lost(
        api: Api, live_server: str, owner: UserCtx, git: Git) -> None:
    # GIVEN two clones of the same project
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "base.v", "// base\n")
    url = remote(live_server, pid, api_token(api, owner))
    clones = []
    for name in ("one", "two"):
        git.run("clone", "-q", url, name)
        work = git.home / name
        (work / f"{name}.v").write_text(f"// {name}\n")
        commit_all(git, work, f"commit {name}")
        clones.append(work)

    # WHEN both push at the same moment
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    start = threading.Barrier(2)

    def push(work: Path) -> None:
        start.wait()
        results[work.name] = git.run("push", "origin", "main", cwd=work, check=False)

    threads = [threading.Thread(target=push, args=(work,)) for work in clones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN exactly one wins, the other is told to fetch first
    codes = sorted(r.returncode for r in results.values())
    assert codes[0] == 0 and codes[1] != 0, {k: v.stderr for k, v in results.items()}
    [loser] = [clones[i] for i, name in enumerate(("one", "two")) if results[name].returncode]
    assert "fetch first" in results[loser.name].stderr, results[loser.name].stderr

    # WHEN the loser pulls (merging) and pushes again
    git.run("pull", "-q", "--no-rebase", "--no-edit", cwd=loser)
    git.run("push", "origin", "main", cwd=loser)

    # THEN both commits are in the history and both files in the files API
    log = api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json
    summaries = {c["summary"] for c in log}
    assert {"commit one", "commit two"} <= summaries
    assert files_of(api, owner, pid) == {"base.v": "// base\n", "one.v": "// one\n",
                                         "two.v": "// two\n"}


def test_info_refs_answers_401_with_a_basic_challenge(api: Api, live_server: str,
                                                      owner: UserCtx) -> None:
    # GIVEN a private project WHEN it is asked for anonymously over HTTP
    pid = make_project(api, owner)["id"]
    reply = requests.get(f"{live_server}/api/v1/projects/{pid}/git/info/refs",
                         params={"service": "git-upload-pack"}, timeout=30)
    # THEN the answer asks for Basic credentials
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="a6hub"'
    # AND with a token it is the smart ref advertisement
    ok = requests.get(f"{live_server}/api/v1/projects/{pid}/git/info/refs",
                      params={"service": "git-upload-pack"}, auth=("x", api_token(api, owner)),
                      headers={"Accept": "*/*"}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert ok.content.startswith(b"001e# service=git-upload-pack\n0000")



def test_the_git_bench_runs_on_tiny_sizes(live_server: str) -> None:
    # GIVEN the running server WHEN bench/git.py runs in quick mode against it
    from bench.git import run

    rows = run(live_server, quick=True)
    # THEN it reports clone and push times next to their file:// references
    assert [r.measure.split(",")[0] for r in rows[:2]] == ["git clone", "git push"]
    assert all(r.value.endswith(" ms") for r in rows)


def _pkt(line: str) -> bytes:
    return f"{len(line) + 4:04x}{line}".encode()


def test_upload_pack_accepts_a_gzipped_request(api: Api, owner: UserCtx) -> None:
    # GIVEN a project with one commit
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid)
    head = api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json[0]["id"]

    # WHEN a fetch request arrives gzip-compressed, as git sends larger negotiations
    request = _pkt(f"want {head} side-band-64k thin-pack ofs-delta\n") + b"0000" + _pkt("done\n")
    reply = api.post(f"/api/v1/projects/{pid}/git/git-upload-pack", raw=gzip.compress(request),
                     token=owner.token, headers={
                         "Content-Type": "application/x-git-upload-pack-request",
                         "Content-Encoding": "gzip",
                         "Accept": "application/x-git-upload-pack-result"})

    # THEN the answer is a NAK and a pack
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type") == "application/x-git-upload-pack-result"
    assert reply.body.startswith(b"0008NAK\n") and b"PACK" in reply.body

    # AND a request that breaks the protocol is a 400, as is a body that is not gzip
    bad = api.post(f"/api/v1/projects/{pid}/git/git-upload-pack", raw=gzip.compress(_pkt("want not-a-sha\n")),
                   token=owner.token, headers={
                       "Content-Type": "application/x-git-upload-pack-request",
                       "Content-Encoding": "gzip",
                       "Accept": "application/x-git-upload-pack-result"})
    assert bad.status == 400, bad.body
    broken = api.post(f"/api/v1/projects/{pid}/git/git-upload-pack", raw=b"not gzip",
                      token=owner.token, headers={
                          "Content-Type": "application/x-git-upload-pack-request",
                          "Content-Encoding": "gzip",
                          "Accept": "application/x-git-upload-pack-result"})
    assert broken.status == 400


def test_concurrent_api_edits_each_become_a_commit(api: Api, live_server: str,
                                                   owner: UserCtx) -> None:
    # GIVEN a project
    pid = make_project(api, owner)["id"]
    paths = [f"rtl/f{i}.v" for i in range(8)]

    # WHEN eight files are created at the same moment through the HTTP API
    start = threading.Barrier(len(paths))
    statuses: list[int] = []

    def create(path: str) -> None:
        start.wait()
        reply = requests.post(f"{live_server}/api/v1/projects/{pid}/files", timeout=60,
                              headers={"Authorization": f"Bearer {owner.token}"},
                              json={"filename": path.rsplit("/", 1)[-1], "filepath": path,
                                    "content": f"// {path}\n"})
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=create, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN every edit is one commit, and the newest tree holds every file
    assert statuses == [201] * len(paths)
    log = api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json
    assert sorted(c["summary"] for c in log) == sorted(f"Add {p}" for p in paths)
    for path in paths:
        at_head = api.get(f"/api/v1/projects/{pid}/git/commits/HEAD/content?path={path}",
                          token=owner.token)
        assert at_head.status == 200, (path, at_head.body)


def test_branches_other_than_main_do_not_touch_the_files(
        api: Api, live_server: str, owner: UserCtx, git: Git) -> None:
    # GIVEN an empty project cloned by a client whose default branch is "master"
    pid = make_project(api, owner)["id"]
    work = git.clone(remote(live_server, pid, api_token(api, owner)))
    git.run("checkout", "-q", "-b", "master", cwd=work)
    (work / "a.v").write_text("// a\n")
    commit_all(git, work, "first")

    # WHEN it pushes master first THEN it is told to push main
    refused = git.run("push", "origin", "master", cwd=work, check=False)
    assert refused.returncode != 0, refused.stderr
    assert "push main first" in refused.stderr, refused.stderr

    # WHEN it pushes main, then a feature branch
    git.run("push", "origin", "master:main", cwd=work)
    git.run("checkout", "-q", "-b", "feature", cwd=work)
    (work / "b.v").write_text("// b\n")
    commit_all(git, work, "feature work")
    git.run("push", "origin", "feature", cwd=work)

    # THEN the files API shows main only, and the branch is on the server
    assert files_of(api, owner, pid) == {"a.v": "// a\n"}
    heads = git.run("ls-remote", "--heads", "origin", cwd=work).stdout
    assert "refs/heads/feature" in heads and "refs/heads/main" in heads

    # AND main cannot be deleted
    deleted = git.run("push", "origin", "--delete", "main", cwd=work, check=False)
    assert deleted.returncode != 0 and "cannot be deleted" in deleted.stderr, deleted.stderr
