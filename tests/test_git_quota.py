"""Issue 10: a project's git storage quota (bytes of stored objects, history included) and the
per-commit totals every new commit of a push or import is held to."""

from __future__ import annotations

import os

from dulwich.objects import Blob

from bench import gitcraft
from tests import fork_support
from tests.conftest import Api, UserCtx, make_file, make_project, make_user
from tests.settings_override import settings_env

RECEIVE = {"Content-Type": "application/x-git-receive-pack-request",
           "Accept": "application/x-git-receive-pack-result"}
FILE = 0o100644


def _git_bytes(pid: int) -> int:
    from chalicelib.models.projects import Project

    return int(Project.get(pid, consistent_read=True).git_bytes or 0)


def _head(api: Api, user: UserCtx, pid: int) -> str:
    return str(api.get(f"/api/v1/projects/{pid}/git/commits", token=user.token).json[0]["id"])


def _stored(pid: int, sha: bytes) -> bool:
    from chalicelib.services.git.store import open_repo

    return open_repo(pid).object_store.contains_loose(sha)


def test_pushes_and_file_writes_past_the_git_storage_quota_are_refused(
        api: Api, owner: UserCtx) -> None:
    # GIVEN a project with one commit, whose stored objects are counted
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    used = _git_bytes(pid)
    assert used > 0
    head = _head(api, owner, pid)
    with settings_env(A6HUB_MAX_GIT_BYTES_PER_PROJECT=used + 2000):
        # WHEN a push brings 8 KB that does not compress
        blob = Blob.from_string(os.urandom(4096).hex().encode())
        tree = gitcraft.tree_of({b"big.v": (FILE, blob)})
        side = gitcraft.commit_of(tree, [head.encode()])
        reply = api.post(f"/api/v1/projects/{pid}/git/git-receive-pack", token=owner.token,
                         headers=RECEIVE, raw=gitcraft.receive_pack_request(
                             [(gitcraft.ZERO, side.id.decode(), "refs/heads/side")],
                             gitcraft.pack_of([blob, tree, side])))
        # THEN the ref is refused naming the quota, and nothing was stored or counted
        lines = gitcraft.report(reply.body)
        assert lines[0] == b"unpack ok", lines
        assert lines[1].startswith(b"ng refs/heads/side") and b"quota" in lines[1], lines
        assert not _stored(pid, side.id) and not _stored(pid, blob.id)
        assert _git_bytes(pid) == used

        # AND a file write past it is a 413 that says so, and stores nothing
        big = api.post(f"/api/v1/projects/{pid}/files", token=owner.token, json_body={
            "filename": "big.v", "filepath": "big.v", "content": os.urandom(4096).hex()})
        assert big.status == 413 and "quota" in big.json["detail"], big.body
        assert [f["filepath"] for f in api.get(f"/api/v1/projects/{pid}/files",
                                               token=owner.token).json] == ["top.v"]
        assert _git_bytes(pid) == used and _head(api, owner, pid) == head

        # AND a small change within it is still taken
        make_file(api, owner, pid, "small.v", "// s\n")
        assert used < _git_bytes(pid) <= used + 2000


def test_a_fork_past_the_git_storage_quota_fails_with_the_reason(api: Api, owner: UserCtx) -> None:
    # GIVEN a public project with some history
    pid = make_project(api, owner, visibility="public")["id"]
    make_file(api, owner, pid, "top.v", os.urandom(2048).hex())
    forker = make_user(api)
    # WHEN it is forked where the quota is smaller than what it stores
    with settings_env(A6HUB_MAX_GIT_BYTES_PER_PROJECT=_git_bytes(pid) - 1):
        reply = fork_support.fork(api, forker, pid)
    # THEN the fork job fails naming the quota, and nothing was copied
    assert reply.status == 202, reply.body
    fid, job_id = reply.json["id"], reply.json["import_job_id"]
    job = api.get(f"/api/v1/projects/{fid}/jobs/{job_id}", token=forker.token).json
    assert job["status"] == "failed" and "quota" in job["error_message"], job
    assert api.get(f"/api/v1/projects/{fid}/git/commits", token=forker.token).json == []
