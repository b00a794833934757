"""Second security review (issue 10), the git findings: hostile packs, refs and requests."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import requests
from dulwich.objects import Blob

from bench import gitcraft
from tests import fork_support
from tests.conftest import Api, UserCtx, make_file, make_project, make_user

RECEIVE = {"Content-Type": "application/x-git-receive-pack-request",
           "Accept": "application/x-git-receive-pack-result"}
MIB = 1 << 20


def _push(api: Api, user: UserCtx, pid: str, body: bytes) -> list[bytes]:
    reply = api.post(f"/api/v1/projects/{pid}/git/git-receive-pack", raw=body, token=user.token,
                     headers=RECEIVE)
    assert reply.status == 200, reply.body
    return gitcraft.report(reply.body)


def _bombs() -> dict[str, bytes]:
    base = Blob.from_string(bytes(MIB))
    return {
        # one blob whose header declares 256 MiB of zeros (~250 KiB on the wire)
        "declared": gitcraft.pack([gitcraft.declared_blob_entry(256 * MIB)]),
        # a 1 MiB base and a delta copying it 256 times: ~1.3 KiB on the wire
        "delta": gitcraft.pack([gitcraft.plain_entry(base), gitcraft.copying_delta_entry(base, 256)]),
    }


@pytest.mark.parametrize("kind", ["declared", "delta"])
def test_a_pack_bomb_is_refused_by_its_declared_sizes_before_inflating(
        api: Api, owner: UserCtx, kind: str) -> None:
    # GIVEN a project and a tiny pack that declares an object of 256 MiB
    pid = make_project(api, owner)["id"]
    body = gitcraft.receive_pack_request([(gitcraft.ZERO, "1" * 40, "refs/heads/side")],
                                         _bombs()[kind])
    if kind == "delta":
        assert len(body) < 2048

    # WHEN it is pushed, with the worker's Python allocations traced
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        lines = _push(api, owner, pid, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN the unpack is refused by the declared size, having held a few MiB at most
    assert peak < 32 * MIB, f"peak {peak / MIB:.0f} MiB"
    assert lines[0].startswith(b"unpack ") and b"limit" in lines[0], lines
    # AND nothing is stored
    assert api.get(f"/api/v1/projects/{pid}/git/commits", token=owner.token).json == []


def _worker_peaks(port: str) -> dict[int, int]:
    """VmHWM (peak resident bytes) of every API worker serving `port`."""
    peaks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"devstack.server" not in cmd or port.encode() not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(pid)] = int(line.split()[1]) * 1024
        except OSError:
            continue
    return peaks


@pytest.mark.slow
def test_a_delta_bomb_sent_over_http_leaves_the_workers_peak_memory_alone(
        api: Api, owner: UserCtx, live_server: str) -> None:
    # GIVEN the API served by its workers over real HTTP, and a ~1.3 KiB push whose delta
    # declares 256 MiB
    pid = make_project(api, owner)["id"]
    body = gitcraft.receive_pack_request([(gitcraft.ZERO, "1" * 40, "refs/heads/side")],
                                         _bombs()["delta"])
    port = live_server.rsplit(":", 1)[1]
    requests.get(f"{live_server}/health", timeout=30)
    before = _worker_peaks(port)
    assert before, "no API worker found"

    # WHEN it is pushed (twice, so that each of the two workers likely sees one)
    replies = [requests.post(f"{live_server}/api/v1/projects/{pid}/git/git-receive-pack",
                             data=body, headers={**RECEIVE, "Authorization": f"Bearer {owner.token}"},
                             timeout=120) for _ in range(2)]

    # THEN no worker's peak resident memory grew by more than 64 MiB
    after = _worker_peaks(port)
    growth = max(after.get(p, 0) - before.get(p, after.get(p, 0)) for p in after)
    assert growth < 64 * MIB, f"a worker's peak grew by {growth / MIB:.0f} MiB"
    # AND the push is refused by the declared size
    for reply in replies:
        assert reply.status_code == 200, reply.text
        assert b"limit" in gitcraft.report(reply.content)[0], reply.content


def test_the_pack_check_counts_only_what_it_must(api: Api, owner: UserCtx) -> None:
    from chalicelib.services.git import pack as gitpack

    # GIVEN an ordinary pack: a 1 MiB blob and a delta that copies it twice
    base = Blob.from_string(bytes(MIB))
    ordinary = gitcraft.pack([gitcraft.plain_entry(base), gitcraft.copying_delta_entry(base, 2)])

    # WHEN it is checked THEN it passes, declaring what its objects will hold
    summary = gitpack.check_pack(ordinary, max_object_bytes=4 * MIB, max_total_bytes=8 * MIB)
    assert summary.objects == 2
    assert summary.declared_bytes > 3 * MIB

    # AND tighter caps refuse it, per object and in total
    with pytest.raises(gitpack.PackRefused, match="per object"):
        gitpack.check_pack(ordinary, max_object_bytes=MIB + 100, max_total_bytes=8 * MIB)
    with pytest.raises(gitpack.PackRefused, match="inflate to more"):
        gitpack.check_pack(ordinary, max_object_bytes=4 * MIB, max_total_bytes=3 * MIB)
    # AND an entry that inflates past its header is refused (what git's index-pack does)
    lying = gitcraft.pack([gitcraft.entry_header(gitcraft.BLOB, 10) + gitcraft.zeros_compressed(MIB)])
    with pytest.raises(gitpack.PackRefused, match="more than its header"):
        gitpack.check_pack(lying, max_object_bytes=4 * MIB, max_total_bytes=8 * MIB)
    # AND so is a truncated pack
    with pytest.raises(gitpack.PackRefused, match="truncated"):
        gitpack.check_pack(ordinary[:-30], max_object_bytes=4 * MIB, max_total_bytes=8 * MIB)
    assert make_file  # (imported for the tests below)


def test_the_import_path_checks_declared_sizes_too(api: Api, owner: UserCtx) -> None:
    from io import BytesIO

    from chalicelib.services.git.pack import PackRefused
    from chalicelib.services.git.store import open_repo

    # GIVEN the delta bomb as a hostile git server would send it to an import (the runner
    # reads the fetched pack from memory, with the import's larger download cap)
    pid = make_project(api, owner)["id"]
    store = open_repo(pid).object_store

    # WHEN the runner unpacks it as `gitimport.fetch_into` does
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(PackRefused, match="limit"):
            store.add_thin_pack(BytesIO(_bombs()["delta"]).read, None, max_input_size=50 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN it is refused having held a few MiB at most, and nothing is pending
    assert peak < 32 * MIB, f"peak {peak / MIB:.0f} MiB"
    assert store.pending == []


# -- finding 4: nothing is stored that a push did not validate ------------------------------

LINK, GITLINK, FILE, DIR = 0o120000, 0o160000, 0o100644, 0o040000


def _head(api: Api, user: UserCtx, pid: str) -> str:
    return str(api.get(f"/api/v1/projects/{pid}/git/commits", token=user.token).json[0]["id"])


def _stored(pid: str, sha: bytes) -> bool:
    from chalicelib.services.git.store import open_repo

    return open_repo(pid).object_store.contains_loose(sha)


def _junk() -> tuple[list[object], object]:
    """A commit whose folder x/ holds what the push rules refuse: a .git folder, a GIT~1 folder,
    a symlink, a submodule link and a 6 MiB file; returns (all its objects, the commit)."""
    config = Blob.from_string(b"[core]\n\tfsmonitor = touch /tmp/pwned\n")
    big = Blob.from_string(bytes(6 * MIB))
    dotgit = gitcraft.tree_of({b"config": (FILE, config)})
    x = gitcraft.tree_of({b".git": (DIR, dotgit), b"GIT~1": (DIR, dotgit),
                          b"link": (LINK, Blob.from_string(b"/etc/passwd")),
                          b"sub": (GITLINK, b"2" * 40), b"big.bin": (FILE, big)})
    root = gitcraft.tree_of({b"x": (DIR, x)})
    commit = gitcraft.commit_of(root, message="junk")
    link = Blob.from_string(b"/etc/passwd")
    return [config, big, dotgit, link, x, root, commit], commit


def test_a_push_stores_only_what_its_refs_reach(api: Api, owner: UserCtx) -> None:
    # GIVEN a project with a commit on main
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)

    # WHEN a push to a side branch carries, besides its clean commit, an unreferenced commit
    # holding a .git folder, a symlink, a submodule link and an oversized file
    ok = Blob.from_string(b"// ok\n")
    tree = gitcraft.tree_of({b"ok.v": (FILE, ok)})
    side = gitcraft.commit_of(tree, [head.encode()])
    junk_objects, junk = _junk()
    objects = [ok, tree, side, *junk_objects]
    lines = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, side.id.decode(), "refs/heads/side")], gitcraft.pack_of(objects)))

    # THEN the branch is accepted, and none of the unreferenced objects was stored
    assert lines[:2] == [b"unpack ok", b"ok refs/heads/side"], lines
    assert _stored(pid, side.id)
    assert not any(_stored(pid, o.id) for o in junk_objects)  # type: ignore[attr-defined]
    # AND the content route, a job and a restore cannot reach the junk commit
    sha = junk.id.decode()  # type: ignore[attr-defined]
    content = api.get(f"/api/v1/projects/{pid}/git/commits/{sha}/content?path=x/.git/config",
                      token=owner.token)
    assert content.status == 422, content.body  # the files API's path guard refuses '.git'
    content = api.get(f"/api/v1/projects/{pid}/git/commits/{sha}/content?path=top.v",
                      token=owner.token)
    assert content.status == 404, content.body
    job = api.post(f"/api/v1/projects/{pid}/jobs", token=owner.token, json_body={
        "job_type": "lint", "commit": sha, "config": {}})
    assert job.status == 422, job.body
    restore = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                       json_body={"commit": sha, "path": "x"})
    assert restore.status == 422 and restore.json["detail"].startswith("commit: "), restore.body
    assert _head(api, owner, pid) == head


def test_every_new_commit_of_a_push_is_held_to_the_rules_not_only_the_tip(
        api: Api, owner: UserCtx) -> None:
    # GIVEN a project with a commit on main
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)

    # WHEN a branch's history passes through the junk commit and its tip is clean again
    junk_objects, junk = _junk()
    ok = Blob.from_string(b"// ok\n")
    tree = gitcraft.tree_of({b"ok.v": (FILE, ok)})
    tip = gitcraft.commit_of(tree, [junk.id, head.encode()])  # type: ignore[attr-defined]
    lines = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, tip.id.decode(), "refs/heads/side")],
        gitcraft.pack_of([*junk_objects, ok, tree, tip])))  # type: ignore[list-item]

    # THEN the push is refused, naming what is wrong in which commit, and nothing is stored
    assert lines[0] == b"unpack ok", lines
    text = b"\n".join(lines).decode()
    assert lines[1].startswith(b"ng refs/heads/side"), lines
    assert "'.git' folder" in text and "symbolic links" in text, text
    assert not _stored(pid, tip.id) and not _stored(pid, junk.id)  # type: ignore[attr-defined]


def test_a_folder_restore_is_validated_before_main_moves(api: Api, owner: UserCtx) -> None:
    from chalicelib.services.git.store import open_repo

    # GIVEN a project, and in its store (as pushes before this fix could leave) the junk commit
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)
    repo = open_repo(pid)
    junk_objects, junk = _junk()
    for obj in junk_objects:
        repo.object_store.add_object(obj)  # type: ignore[arg-type]
    repo.object_store.flush()
    sha = junk.id.decode()  # type: ignore[attr-defined]

    # WHEN its folder x is restored
    reply = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                     json_body={"commit": sha, "path": "x"})

    # THEN it is a 422 naming the problems, and main did not move
    assert reply.status == 422, reply.body
    assert "submodules" in reply.json["detail"] and "'.git' folder" in reply.json["detail"]
    assert _head(api, owner, pid) == head
    listed = api.get(f"/api/v1/projects/{pid}/files?limit=100", token=owner.token).json
    assert [f["filepath"] for f in listed] == ["top.v"]
    # AND the content route does not serve the symlink or the .git folder of that commit
    # (a path the files API refuses is a 422 before any lookup)
    for path, status in (("x/link", 404), ("x/.git/config", 422), ("x/GIT~1/config", 422)):
        got = api.get(f"/api/v1/projects/{pid}/git/commits/{sha}/content?path={path}",
                      token=owner.token)
        assert got.status == status, (path, got.body)


def test_a_folder_restore_counts_toward_the_file_limit(api: Api, owner: UserCtx) -> None:
    from tests.settings_override import settings_env

    # GIVEN a project whose folder a/ (2 files) was deleted and replaced by b/ (2 files)
    pid = make_project(api, owner)["id"]
    with settings_env(A6HUB_MAX_FILES_PER_PROJECT=3):
        ids = [make_file(api, owner, pid, f"a/{n}.v", "// a\n")["id"] for n in range(2)]
        old = _head(api, owner, pid)
        for file_id in ids:
            assert api.delete(f"/api/v1/projects/{pid}/files/{file_id}", token=owner.token).status == 204
        for n in range(2):
            make_file(api, owner, pid, f"b/{n}.v", "// b\n")
        head = _head(api, owner, pid)

        # WHEN folder a/ is restored, which would make 4 files where 3 are allowed
        reply = api.post(f"/api/v1/projects/{pid}/git/restore", token=owner.token,
                         json_body={"commit": old, "path": "a"})

    # THEN it is refused and main did not move
    assert reply.status == 422, reply.body
    assert "more than the limit of 3" in reply.json["detail"], reply.body
    assert _head(api, owner, pid) == head


# -- finding 11: a push naming a missing object is refused, not a 500 ------------------------

def test_a_push_whose_tree_names_a_missing_object_is_refused(api: Api, owner: UserCtx) -> None:
    # GIVEN a project with a commit on main
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)

    # WHEN a commit's tree names a blob and a folder that neither the pack nor the server has
    tree = gitcraft.tree_of({b"gone.v": (FILE, b"3" * 40), b"gone": (DIR, b"4" * 40)})
    commit = gitcraft.commit_of(tree, [head.encode()])
    reply = api.post(f"/api/v1/projects/{pid}/git/git-receive-pack", token=owner.token,
                     headers=RECEIVE, raw=gitcraft.receive_pack_request(
                         [(head, commit.id.decode(), "refs/heads/main")],
                         gitcraft.pack_of([tree, commit])))

    # THEN the push is refused with the reason (not a 500) and main did not move
    assert reply.status == 200, reply.body
    lines = gitcraft.report(reply.body)
    assert lines[1].startswith(b"ng refs/heads/main") and b"neither in the push" in lines[1], lines
    assert _head(api, owner, pid) == head


# -- finding 10: ref names git refuses -----------------------------------------------------

@pytest.mark.parametrize("ref", [
    "refs/heads/../../x", "refs/heads/x.lock", "refs/tags/v1^{}", "refs/heads/a\x01b",
    "refs/heads/@{u}", "refs/heads/a:b", "refs/heads/.hidden", "refs/heads/a//b",
    "refs/heads/a.", "refs/heads/a*b", "refs/heads/a~1", "refs/heads/a?", "refs/heads/HEAD",
    "refs/heads/" + "x" * 300,
])
def test_ref_names_git_refuses_are_refused(api: Api, owner: UserCtx, ref: str) -> None:
    # GIVEN a project with a commit on main
    pid = _project_with_main(api, owner)

    # WHEN that commit is pushed under a name git check-ref-format refuses
    head = _head(api, owner, pid)
    lines = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, head, ref)], None))

    # THEN it is refused and no such ref exists
    assert lines[-1].startswith(b"ng ") and b"ref name" in lines[-1], lines
    refs = api.get(f"/api/v1/projects/{pid}/git/info/refs?service=git-upload-pack",
                   token=owner.token)
    assert ref.encode() not in refs.body


_MAIN: dict[str, str] = {}


def _project_with_main(api: Api, owner: UserCtx) -> str:
    if "pid" not in _MAIN:
        pid = make_project(api, owner)["id"]
        make_file(api, owner, pid, "top.v", "module top; endmodule\n")
        _MAIN["pid"] = pid
    return _MAIN["pid"]


# -- finding 5: refs per project and per push ----------------------------------------------

def test_refs_are_limited_per_push_and_per_project(api: Api, owner: UserCtx,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.services.git import smart_http as githttp

    # GIVEN a project with a commit on main
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)

    # WHEN one push creates more branches than a push may
    many = [(gitcraft.ZERO, head, f"refs/heads/b{n}")
            for n in range(githttp.MAX_REF_UPDATES_PER_PUSH + 1)]
    lines = _push(api, owner, pid, gitcraft.receive_pack_request(many, None))

    # THEN all are refused
    assert all(line.startswith(b"ng ") for line in lines[1:]) and len(lines) == len(many) + 1
    assert b"at most" in lines[1], lines[1]

    # WHEN the project is at its limit of refs (lowered to 3 here) and a push adds one more
    monkeypatch.setattr(githttp, "MAX_REFS_PER_PROJECT", 3)
    first = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, head, "refs/heads/a"), (gitcraft.ZERO, head, "refs/tags/t")], None))
    assert first[1:] == [b"ok refs/heads/a", b"ok refs/tags/t"], first
    more = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, head, "refs/heads/b")], None))

    # THEN it is refused, and deleting one makes room again
    assert more[1].startswith(b"ng refs/heads/b") and b"limit of 3" in more[1], more
    swap = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(head, gitcraft.ZERO, "refs/heads/a"), (gitcraft.ZERO, head, "refs/heads/b")], None))
    assert swap[1:] == [b"ok refs/heads/a", b"ok refs/heads/b"], swap


# -- finding 5: a diff's work is bounded by lines, not only bytes -----------------------------

def difflib_worst_case(lines: int, seed: int) -> str:
    """Short lines drawn from lines/100 values: each recurs just under difflib's 'popular'
    threshold (1% of the lines), where its matching work grows with old x new lines."""
    import random

    rng = random.Random(seed)
    values = lines // 100 + 1
    return "".join(f"{rng.randrange(values)}\n" for _ in range(lines))


def test_a_diff_of_many_short_lines_is_not_fed_to_difflib(
        api: Api, owner: UserCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.services.git import log as history

    # GIVEN a public project where one commit rewrote a file of 16,000 short lines (~106 KB for
    # the pair, inside the byte caps; about 2.6 s of difflib here, 28 s for the shape the
    # review found)
    pid = make_project(api, owner, visibility="public")["id"]
    created = make_file(api, owner, pid, "t.mem", difflib_worst_case(16_000, 1))
    changed = api.put(f"/api/v1/projects/{pid}/files/{created['id']}", token=owner.token,
                      json_body={"content": difflib_worst_case(16_000, 2)})
    assert changed.status == 200, changed.body
    commits = api.get(f"/api/v1/projects/{pid}/git/commits").json
    fed: list[int] = []
    real = history.difflib.unified_diff

    def counting(a: list[str], b: list[str], *args: object, **kw: object) -> object:
        fed.append(len(a) * len(b))
        return real(a, b, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(history.difflib, "unified_diff", counting)

    # WHEN an anonymous caller asks for the diff
    reply = api.get(f"/api/v1/projects/{pid}/git/diff?base={commits[1]['id']}"
                    f"&head={commits[0]['id']}")

    # THEN the file is listed as truncated, and difflib never saw more line pairs than the cap
    assert reply.status == 200, reply.body
    (entry,) = reply.json["files"]
    assert entry["truncated"] and entry["patch"] is None, entry
    assert all(pairs <= history.MAX_DIFF_LINE_PAIRS for pairs in fed), fed


# -- finding 5: a fetch's negotiation is bounded ---------------------------------------------

def test_an_anonymous_fetch_with_thousands_of_haves_is_bounded(api: Api, owner: UserCtx) -> None:
    import secrets

    from bench.measure import counting_backend_calls
    from chalicelib.services.git import smart_http as githttp

    # GIVEN a public project with a commit
    pid = make_project(api, owner, visibility="public")["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)

    # WHEN an anonymous fetch claims 2,000 random objects it "has"
    body = (gitcraft.pkt(f"want {head} multi_ack_detailed side-band-64k thin-pack ofs-delta\n".encode())
            + b"0000"
            + b"".join(gitcraft.pkt(f"have {secrets.token_hex(20)}\n".encode()) for _ in range(2000))
            + gitcraft.pkt(b"done\n"))
    with counting_backend_calls() as calls:
        reply = api.post(f"/api/v1/projects/{pid}/git/git-upload-pack", raw=body, headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Accept": "application/x-git-upload-pack-result"})

    # THEN it still gets its pack, and the server looked up at most MAX_HAVES of them
    assert reply.status == 200, reply.body
    assert b"PACK" in reply.body
    assert calls["HeadObject"] <= githttp.MAX_HAVES, dict(calls)


# -- finding 5: a fork copies what the refs reach, bounded ------------------------------------

def _object_keys(pid: str) -> set[str]:
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from chalicelib.services.git.store import objects_prefix

    pages = client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=get_settings().bucket, Prefix=objects_prefix(pid))
    return {item["Key"].rsplit("/", 1)[1] for page in pages for item in page.get("Contents", [])}


def test_a_fork_copies_only_what_the_refs_reach_and_is_bounded(
        api: Api, owner: UserCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.services.git import forks
    from chalicelib.services.git.store import open_repo

    # GIVEN a public project whose store also holds 300 objects no ref reaches (as pushes
    # before this fix, or deleted branches, leave behind)
    pid = make_project(api, owner, visibility="public")["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    reachable = _object_keys(pid)
    store = open_repo(pid).object_store
    for n in range(300):
        store.add_object(Blob.from_string(f"orphan {n}\n".encode()))
    store.flush()
    forker = make_user(api)

    # WHEN someone forks it and a runner takes the fork job
    reply = fork_support.fork(api, forker, pid)

    # THEN the fork holds exactly the reachable objects
    assert reply.status == 202, reply.body
    assert _object_keys(str(reply.json["id"])) == reachable

    # AND a history over the limit fails the job with the reason, copying nothing
    monkeypatch.setattr(forks, "MAX_FORK_OBJECTS", 2)
    refused = fork_support.fork(api, forker, pid, {"name": "over the limit"})
    assert refused.status == 202, refused.body
    fid, job_id = refused.json["id"], refused.json["import_job_id"]
    job = api.get(f"/api/v1/projects/{fid}/jobs/{job_id}", token=forker.token).json
    assert job["status"] == "failed" and "more than 2 objects" in job["error_message"], job
    assert api.get(f"/api/v1/projects/{fid}", token=forker.token).json["import_status"] == "failed"
    assert _object_keys(str(fid)) == set()


@pytest.mark.slow
def test_the_abuse_git_bench_runs_on_tiny_sizes(live_server: str) -> None:
    # GIVEN the running server WHEN bench/abuse_git.py runs in quick mode against it
    from bench.abuse_git import run

    rows = run(live_server, quick=True)

    # THEN it reports each kind of request with its cap, and the bomb is refused
    assert [r.measure.split(" ")[0] for r in rows] == ["push", "anonymous", "diff", "diff", "ref",
                                                      "fork"]
    assert "refused" in rows[0].value and "NOT" not in rows[0].value
    assert all("cap:" in r.reference for r in rows)


def test_a_ref_stored_before_names_were_checked_can_still_be_deleted(
        api: Api, owner: UserCtx) -> None:
    from chalicelib.services.git.store import ZERO_SHA, open_repo

    # GIVEN a project with a branch whose name git refuses (as pushes before this fix stored)
    pid = make_project(api, owner)["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)
    assert open_repo(pid).refs.set_if_equals(b"refs/heads/x.lock", ZERO_SHA, head.encode())

    # WHEN it is deleted by a push THEN that is accepted
    lines = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(head, gitcraft.ZERO, "refs/heads/x.lock")], None))
    assert lines[-1] == b"ok refs/heads/x.lock", lines


def test_a_ref_advertisement_reads_only_the_names_and_targets_of_the_refs(
        api: Api, owner: UserCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.client import BaseClient

    # GIVEN a public project with 20 branches
    pid = make_project(api, owner, visibility="public")["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)
    _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, head, f"refs/heads/b{n}") for n in range(20)], None))
    returned: list[set[str]] = []
    original = BaseClient._make_api_call

    def recording(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        answer = original(self, operation, params)
        if operation == "Query" and str(params.get("TableName", "")).endswith("gitrefs"):
            returned.extend(set(item) for item in answer.get("Items", []))
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)

    # WHEN an anonymous client asks for the refs
    reply = api.get(f"/api/v1/projects/{pid}/git/info/refs?service=git-upload-pack",
                    headers={"Accept": "application/x-git-upload-pack-advertisement"})

    # THEN all 21 are listed from one read that carried only each ref's name and target (the
    # emulator's cost, and DynamoDB's read units, grow with what each item returns)
    assert reply.status == 200, reply.body
    assert reply.body.count(head.encode()) >= 21
    assert len(returned) == 21 and all(keys == {"ref", "target"} for keys in returned), returned


def test_a_ref_advertisement_looks_each_object_up_once(api: Api, owner: UserCtx) -> None:
    from bench.measure import counting_backend_calls
    from chalicelib.services.git import store as gitstore

    # GIVEN a public project with 30 branches at its head, and a worker with nothing cached
    pid = make_project(api, owner, visibility="public")["id"]
    make_file(api, owner, pid, "top.v", "module top; endmodule\n")
    head = _head(api, owner, pid)
    lines = _push(api, owner, pid, gitcraft.receive_pack_request(
        [(gitcraft.ZERO, head, f"refs/heads/b{n}") for n in range(30)], None))
    assert all(line.startswith(b"ok ") for line in lines[1:]), lines
    gitstore._cache = gitstore._ObjectCache(gitstore._CACHE_BYTES)

    # WHEN an anonymous client asks for the refs
    with counting_backend_calls() as calls:
        reply = api.get(f"/api/v1/projects/{pid}/git/info/refs?service=git-upload-pack",
                        headers={"Accept": "application/x-git-upload-pack-advertisement"})

    # THEN all 31 are listed, and their one object was looked up once (it was once per ref)
    assert reply.status == 200, reply.body
    assert reply.body.count(head.encode()) >= 31
    assert calls["HeadObject"] <= 1, dict(calls)
