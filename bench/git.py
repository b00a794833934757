"""Git over the service: clone of a 200-file project and push of a 50-file change, each next to
the same operation against a local bare repository over file:// (the floor: no HTTP, no S3).

`python -m bench.git [--quick]` runs it on its own stack; `run(api_url)` returns the table rows.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.measure import KeepAlive
from bench.report import Row
from bench.stack import stack_bench

FILES = 200
CHANGED = 50
RUNS = 5


def _git_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.test\n"
                                     "[init]\n\tdefaultBranch = main\n")
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "NO_PROXY": "127.0.0.1"}


def _git(env: dict[str, str], *args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=300)


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _module(n: int, rng: random.Random) -> str:
    """A plausible ~2 KB Verilog file, different in every file (so nothing deduplicates)."""
    lines = [f"// generated block {n}", f"module block{n} (input clk, input [31:0] a, output reg [31:0] y);"]
    for i in range(40):
        lines.append(f"  wire [31:0] w{i} = a ^ 32'h{rng.getrandbits(32):08x};")
    lines += ["  always @(posedge clk) y <= w0 + w39;", "endmodule", ""]
    return "\n".join(lines)


def _project(api_url: str) -> tuple[str, str]:
    """A fresh user, an API token and an empty project; returns (project id, token)."""
    http = KeepAlive(api_url)
    try:
        name = f"gitbench{uuid.uuid4().hex[:8]}"
        password = "correct horse battery"
        status, _ = http.request("POST", "/api/v1/auth/register", {
            "email": f"{name}@example.test", "username": name, "password": password})
        assert status == 201
        status, login = http.request("POST", "/api/v1/auth/login",
                                     {"email": f"{name}@example.test", "password": password})
        assert status == 200, login
        status, token = http.request("POST", "/api/v1/auth/tokens", {"name": "bench"},
                                     login["access_token"])
        assert status == 201, token
        status, project = http.request("POST", "/api/v1/projects", {"name": name},
                                       login["access_token"])
        assert status == 201, project
    finally:
        http.close()
    return str(project["id"]), str(token["token"])


def _change(work: Path, rng: random.Random, count: int) -> None:
    for n in range(count):
        (work / "rtl" / f"block{n}.v").write_text(_module(n, rng))


def run(api_url: str, quick: bool = False) -> list[Row]:
    """Rows for the bench table, measured against the API server at `api_url`."""
    files, changed, runs = (20, 5, 2) if quick else (FILES, CHANGED, RUNS)
    rng = random.Random(42)
    project_id, token = _project(api_url)
    host = api_url.removeprefix("http://")
    url = f"http://x:{token}@{host}/api/v1/projects/{project_id}/git"
    root = Path(tempfile.mkdtemp(prefix="a6hub-gitbench-"))
    env = _git_env(root / "home")
    try:
        seed = root / "seed"
        _git(env, "clone", "-q", url, str(seed), cwd=root)
        (seed / "rtl").mkdir()
        _change(seed, rng, files)
        _git(env, "add", "-A", cwd=seed)
        _git(env, "commit", "-q", "-m", f"{files} files", cwd=seed)
        first_push = _timed(lambda: _git(env, "push", "-q", "origin", "main", cwd=seed))
        bare = root / "local.git"
        _git(env, "clone", "-q", "--bare", str(seed), str(bare), cwd=root)

        def clone(source: str, n: int) -> float:
            target = root / f"clone-{uuid.uuid4().hex[:6]}"
            spent = _timed(lambda: _git(env, "clone", "-q", source, str(target), cwd=root))
            shutil.rmtree(target)
            return spent

        service = [clone(url, n) for n in range(runs)]
        local = [clone(f"file://{bare}", n) for n in range(runs)]

        pushes: list[float] = []
        local_pushes: list[float] = []
        _git(env, "remote", "add", "local", f"file://{bare}", cwd=seed)
        for _ in range(runs):
            _change(seed, rng, changed)
            _git(env, "commit", "-q", "-am", f"change {changed} files", cwd=seed)
            pushes.append(_timed(lambda: _git(env, "push", "-q", "origin", "main", cwd=seed)))
            local_pushes.append(_timed(lambda: _git(env, "push", "-q", "local", "main", cwd=seed)))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1000:.0f} ms"

    return [
        Row(f"git clone, {files}-file project (median of {runs}; first {service[0] * 1000:.0f} ms)",
            med(service), f"git clone file:// of the same repo: {med(local)}"),
        Row(f"git push, {changed}-file change (median of {runs})", med(pushes),
            f"git push to a local bare repo over file://: {med(local_pushes)}"),
        Row(f"  first push of the {files} files (validates, writes {files} file rows)",
            f"{first_push * 1000:.0f} ms"),
    ]


def main(argv: list[str] | None = None) -> int:
    return stack_bench(argv, "python -m bench.git", __doc__,
                       lambda stack, quick: run(stack.api_url, quick),
                       "a6hub git over smart HTTP", "a6hub-gitbench-logs-", timed=False)


if __name__ == "__main__":
    sys.exit(main())
