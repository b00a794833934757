"""The worst git request of each kind the second security review found (issue 10, finding 5,
and the pack bomb of finding 1), timed over HTTP against the cap that now bounds it.

`python -m bench --only abuse-git` (or `python -m bench.abuse_git [--quick]` on its own stack);
`run(api_url)` returns the table rows.
"""

from __future__ import annotations

import random
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from dulwich.objects import Blob

from bench import gitcraft
from bench.report import Row
from bench.stack import Stack, stack_bench

RECEIVE = "application/x-git-receive-pack-request"
UPLOAD = "application/x-git-upload-pack-request"
MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    haves: int
    diff_lines: int  # per side of the diff at the line-pair cap
    refs: int
    fork_files: int


# Full: what the review sent (2,000 haves) and the caps themselves (refs per project, the
# line-pair cap); quick: a smoke run of every step.
FULL = Sizes(haves=2000, diff_lines=3000, refs=200, fork_files=300)
QUICK = Sizes(haves=300, diff_lines=400, refs=10, fork_files=10)


class _Client:
    def __init__(self, api_url: str) -> None:
        self.url = api_url
        self.http = requests.Session()
        name = f"abuse{uuid.uuid4().hex[:8]}"
        email, password = f"{name}@example.test", "correct horse battery"
        self.call("POST", "/api/v1/auth/register", 201, json={
            "email": email, "username": name, "password": password})
        login = self.call("POST", "/api/v1/auth/login", 200,
                          json={"email": email, "password": password})
        self.http.headers["Authorization"] = f"Bearer {login['access_token']}"

    def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        reply = self.http.request(method, self.url + path, timeout=120, **kw)
        assert reply.status_code == status, (path, reply.status_code, reply.text[:300])
        if reply.headers.get("Content-Type", "").startswith("application/json"):
            return reply.json()
        return reply.content

    def project(self, files: dict[str, str]) -> tuple[str, list[str]]:
        """A public project with `files`, one commit each; (id, file ids)."""
        pid = str(self.call("POST", "/api/v1/projects", 201, json={
            "name": f"abuse {uuid.uuid4().hex[:6]}", "visibility": "public"})["id"])
        ids = [str(self.call("POST", f"/api/v1/projects/{pid}/files", 201, json={
            "filename": path.rsplit("/", 1)[-1], "filepath": path, "content": body})["id"])
            for path, body in files.items()]
        return pid, ids

    def head(self, pid: str) -> str:
        return str(self.call("GET", f"/api/v1/projects/{pid}/git/commits", 200)[0]["id"])


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def bench_pack_bomb(c: _Client, pid: str) -> Row:
    from chalicelib.services.git.store import max_object_bytes

    base = Blob.from_string(bytes(MIB))
    pack = gitcraft.pack([gitcraft.plain_entry(base), gitcraft.copying_delta_entry(base, 256)])
    body = gitcraft.receive_pack_request([(gitcraft.ZERO, "1" * 40, "refs/heads/bomb")], pack)
    def push() -> Any:
        return c.call("POST", f"/api/v1/projects/{pid}/git/git-receive-pack", 200, data=body,
                      headers={"Content-Type": RECEIVE})

    samples = [_timed(push) for _ in range(5)]  # the first ones may land on cold workers
    took, answer = sorted(samples, key=lambda s: s[0])[len(samples) // 2]
    refused = gitcraft.report(answer)[0]
    return Row(f"push of a {len(body):,}-byte pack whose delta declares 256 MiB (median of 5)",
               f"{took * 1000:.0f} ms, {'refused' if b'limit' in refused else 'NOT refused'}",
               f"cap: {max_object_bytes() // MIB} MiB per object, checked before inflating",
               "refused, < 1 s", b"limit" in refused and took < 1.0)


def bench_haves(c: _Client, pid: str, haves: int) -> Row:
    from chalicelib.services.git.smart_http import MAX_HAVES

    head = c.head(pid)
    body = (gitcraft.pkt(f"want {head} multi_ack_detailed side-band-64k thin-pack ofs-delta\n"
                         .encode()) + b"0000"
            + b"".join(gitcraft.pkt(f"have {secrets.token_hex(20)}\n".encode())
                       for _ in range(haves)) + gitcraft.pkt(b"done\n"))
    anonymous = requests.Session()
    took, _ = _timed(lambda: anonymous.post(
        f"{c.url}/api/v1/projects/{pid}/git/git-upload-pack", data=body, timeout=120,
        headers={"Content-Type": UPLOAD}).raise_for_status())
    return Row(f"anonymous fetch with {haves:,} random haves", f"{took * 1000:.0f} ms",
               f"cap: {MAX_HAVES} haves looked up, side by side (review: 9.3 s)", "< 2 s",
               took < 2.0)


def _difflib_worst_case(lines: int, seed: int) -> str:
    rng = random.Random(seed)
    values = lines // 100 + 1
    return "".join(f"{rng.randrange(values)}\n" for _ in range(lines))


def bench_diff(c: _Client, lines: int) -> list[Row]:
    from chalicelib.services.git.log import MAX_DIFF_LINE_PAIRS

    rows = []
    for n, label in ((lines, "at the line-pair cap"), (16_000, "over it (listed truncated)")):
        pid, (file_id,) = c.project({"t.mem": _difflib_worst_case(n, 1)})
        c.call("PUT", f"/api/v1/projects/{pid}/files/{file_id}", 200,
               json={"content": _difflib_worst_case(n, 2)})
        commits = c.call("GET", f"/api/v1/projects/{pid}/git/commits", 200)
        path = f"/api/v1/projects/{pid}/git/diff?base={commits[1]['id']}&head={commits[0]['id']}"
        started = time.perf_counter()
        diff = c.call("GET", path, 200)
        took = time.perf_counter() - started
        truncated = diff["files"][0]["truncated"]
        rows.append(Row(f"diff of {n:,} short lines a side, {label}",
                        f"{took * 1000:.0f} ms{' (truncated)' if truncated else ''}",
                        f"cap: {MAX_DIFF_LINE_PAIRS:,} old x new lines a file "
                        "(review: 28 s for 117 KB)", "< 1 s", took < 1.0))
    return rows


def bench_refs(c: _Client, pid: str, refs: int) -> Row:
    from chalicelib.services.git.smart_http import MAX_REF_UPDATES_PER_PUSH, MAX_REFS_PER_PROJECT

    head = c.head(pid)
    names = [f"refs/heads/b{n}" for n in range(refs - 2)]  # + main + the bomb's nothing
    for start in range(0, len(names), MAX_REF_UPDATES_PER_PUSH):
        chunk = names[start:start + MAX_REF_UPDATES_PER_PUSH]
        answer = c.call("POST", f"/api/v1/projects/{pid}/git/git-receive-pack", 200,
                        data=gitcraft.receive_pack_request(
                            [(gitcraft.ZERO, head, name) for name in chunk], None),
                        headers={"Content-Type": RECEIVE})
        assert all(line.startswith(b"ok ") for line in gitcraft.report(answer)[1:]), answer
    def advertise() -> Any:
        return c.call("GET", f"/api/v1/projects/{pid}/git/info/refs?service=git-upload-pack", 200)

    samples = [_timed(advertise)[0] for _ in range(5)]
    took = sorted(samples)[len(samples) // 2]
    return Row(f"ref advertisement of a project with {refs - 1} refs (median of 5)",
               f"{took * 1000:.0f} ms",
               f"cap: {MAX_REFS_PER_PROJECT} refs a project, {MAX_REF_UPDATES_PER_PUSH} a push "
               "(review: 1.4 s at 2,000)", "< 0.5 s", took < 0.5)


def bench_fork(c: _Client, files: int, runner: bool) -> list[Row]:
    """The fork's answer (202: the copy is a runner job), and, with a runner, the copy itself."""
    from chalicelib.services.git.forks import MAX_FORK_OBJECTS

    # Each files-API write adds a blob, a root and an rtl/ tree and a commit: 4 objects
    # (the previous trees stay reachable through the previous commits).
    pid, _ = c.project({f"rtl/m{n}.v": f"module m{n}; endmodule\n" for n in range(files)})
    took, fork = _timed(lambda: c.call("POST", f"/api/v1/projects/{pid}/fork", 202,
                                       json={"name": f"fork {uuid.uuid4().hex[:6]}"}))
    rows = [Row(f"fork of a {files}-commit, {files}-file project (~{4 * files:,} objects): "
                "the answer", f"{took * 1000:.0f} ms (202, copied by a runner job)",
                f"cap: {MAX_FORK_OBJECTS:,} objects a fork (was 38 s synchronous for ~1,200; "
                "review: 11.5 s for 3,000 unreferenced)", "< 1 s, any size", took < 1.0)]
    if not runner:
        return rows
    job_path = f"/api/v1/projects/{fork['id']}/jobs/{fork['import_job_id']}"
    deadline = time.monotonic() + 900
    job = c.call("GET", job_path, 200)
    while job["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(1)
        job = c.call("GET", job_path, 200)
    summary = (job.get("summary") or {}).get("fork") or {}
    if job["status"] != "completed" or not summary:
        rows.append(Row("  its copy by the runner", f"job {job['status']}", "", "completes",
                        False))
        return rows
    objects, seconds = int(summary["objects"]), float(summary["walk_s"]) + float(summary["copy_s"])
    per_object = seconds / max(1, objects)
    rows.append(Row("  its copy by the runner (walk + server-side copies)",
                    f"{seconds:.1f} s for {objects:,} objects ({per_object * 1000:.1f} ms each)",
                    f"~{per_object * MAX_FORK_OBJECTS:.0f} s at the cap, in a runner job "
                    "(no request limit)", "completes", True))
    return rows


def run(api_url: str, quick: bool = False, runner: bool = False) -> list[Row]:
    """Rows for the bench table, measured against the API server at `api_url`; `runner`: a
    runner serves its queue (the fork row then waits for the copy job too)."""
    sizes = QUICK if quick else FULL
    c = _Client(api_url)
    pid, _ = c.project({"top.v": "module top; endmodule\n"})
    rows = [bench_pack_bomb(c, pid), bench_haves(c, pid, sizes.haves)]
    rows += bench_diff(c, sizes.diff_lines)
    rows.append(bench_refs(c, pid, sizes.refs))
    rows.extend(bench_fork(c, sizes.fork_files, runner))
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench.jobs import runner_process

    def with_runner(stack: Stack, quick: bool) -> list[Row]:
        with runner_process(stack):  # the fork row waits for the runner's copy job
            return run(stack.api_url, quick=quick, runner=True)

    return stack_bench(argv, "python -m bench.abuse_git", __doc__, with_runner,
                       "a6hub: the worst git requests against their caps", "a6hub-abuse-git-logs-",
                       timed=False)


if __name__ == "__main__":
    sys.exit(main())
