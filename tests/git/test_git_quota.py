"""Issue 10: a project's git storage quota (bytes of stored objects, history included) and the
per-commit totals every new commit of a push or import is held to."""

from __future__ import annotations

import os

import pytest
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


@pytest.mark.runner  # the fork is copied by an in-process runner
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


def _push(api: Api, user: UserCtx, pid: int, tip: bytes, objects: list[object]) -> list[bytes]:
    reply = api.post(f"/api/v1/projects/{pid}/git/git-receive-pack", token=user.token,
                     headers=RECEIVE, raw=gitcraft.receive_pack_request(
                         [(gitcraft.ZERO, tip.decode(), "refs/heads/side")],
                         gitcraft.pack_of(objects)))  # type: ignore[arg-type]
    assert reply.status == 200, reply.body
    return gitcraft.report(reply.body)


def test_a_commit_in_the_middle_of_a_push_is_held_to_the_file_and_byte_totals(
        api: Api, owner: UserCtx) -> None:
    # GIVEN a project with one file, where 3 files and 3,000 bytes are allowed
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "// top\n")
    head = _head(api, owner, pid).encode()
    with settings_env(A6HUB_MAX_FILES_PER_PROJECT=3, A6HUB_MAX_PROJECT_BYTES=3000):
        # WHEN a push's middle commit has 5 files and its tip only 1 again
        blobs = [Blob.from_string(f"// {n}\n".encode()) for n in range(5)]
        wide = gitcraft.tree_of({f"f{n}.v".encode(): (FILE, b) for n, b in enumerate(blobs)})
        middle = gitcraft.commit_of(wide, [head], message="five files")
        narrow = gitcraft.tree_of({b"f0.v": (FILE, blobs[0])})
        tip = gitcraft.commit_of(narrow, [middle.id])
        lines = _push(api, owner, pid, tip.id, [*blobs, wide, middle, narrow, tip])
        # THEN it is refused naming the middle commit and the limit, and nothing is stored
        assert lines[1].startswith(b"ng refs/heads/side"), lines
        assert middle.id[:12] in lines[1] and b"5 files" in lines[1], lines
        assert not _stored(pid, middle.id)

        # AND the same for a middle commit whose files are each allowed but together too large
        big = [Blob.from_string(bytes([65 + n]) * 1200) for n in range(3)]
        heavy = gitcraft.tree_of({f"b{n}.v".encode(): (FILE, b) for n, b in enumerate(big)})
        middle = gitcraft.commit_of(heavy, [head], message="3,600 bytes")
        tip = gitcraft.commit_of(narrow, [middle.id])
        lines = _push(api, owner, pid, tip.id, [*big, blobs[0], heavy, middle, narrow, tip])
        assert lines[1].startswith(b"ng refs/heads/side"), lines
        assert middle.id[:12] in lines[1] and b"3600 bytes" in lines[1], lines

        # AND a history within the totals is taken
        ok = gitcraft.commit_of(narrow, [head])
        assert _push(api, owner, pid, ok.id, [blobs[0], narrow, ok])[1] == b"ok refs/heads/side"
