"""Second security review (issue 10), the git findings: hostile packs, refs and requests."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
import requests
from dulwich.objects import Blob

from tests import gitcraft
from tests.conftest import Api, UserCtx, make_file, make_project

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
    from chalicelib.services import gitpack

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

    from chalicelib.services.gitpack import PackRefused
    from chalicelib.services.gitstore import open_repo

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
