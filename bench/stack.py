"""The bench's own local stack: emulator with infra/ deployed, the API server, the uvicorn baseline."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.report import Row, format_table
from devstack import bootstrap
from devstack.emulator import free_port, start_store

ROOT = Path(__file__).resolve().parent.parent
STAGE = "test"  # a development stage; the emulator is the bench's own, so names cannot clash

ENV = {
    "A6HUB_STAGE": STAGE,
    "A6HUB_JWT_SECRET": secrets.token_urlsafe(48),
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "NO_PROXY": "127.0.0.1,localhost",
    # The jobs suite keeps many jobs queued at once from one user; the quotas are not measured
    # there (the abuse-api suite measures the caps in-process with their defaults).
    "A6HUB_JOBS_MAX_ACTIVE_PER_USER": "100000",
    "A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT": "100000",
    "A6HUB_JOBS_MAX_SUBMITS_PER_MINUTE": "100000",
}
_DROP = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
         "AWS_ENDPOINT_URL", "A6HUB_TABLE_PREFIX", "A6HUB_BUCKET", "A6HUB_JOBS_QUEUE_URL")


def prepare_environment() -> None:
    """Point this process (and the servers it starts) at the bench's stack, before chalicelib loads."""
    for name in _DROP:
        os.environ.pop(name, None)
    os.environ.update(ENV)


@dataclass
class Stack:
    emulator_url: str
    api_url: str
    baseline_url: str
    workers: int
    log_dir: Path


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - loopback http only
                return
        except urllib.error.HTTPError:
            return  # answering (503 while a dependency warms up is fine)
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up; log {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


@contextmanager
def _process(argv: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ}, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        _wait_http(ready_url, process, log)
        yield process
    finally:
        stop(process, timeout=15)


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM `process` and wait up to `timeout` seconds for it, then SIGKILL it."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stack_bench(argv: list[str] | None, prog: str, description: str | None,
                run: Callable[[Stack, bool], list[Row]], title: str, log_prefix: str, *,
                timed: bool = True, quick_help: str = "tiny sizes (smoke run)") -> int:
    """A bench's command line: parse --quick and --workers from `argv`, run `run(stack, quick)`
    on a running stack (logs in a new temporary dir named `log_prefix`...) and print its rows
    under `title` (when `timed`, followed by the mode, core count, load, wall time and logs dir)."""
    parser = bench_parser(prog, description, quick_help)
    return run_bench(parser, argv, lambda stack, args: run(stack, args.quick), title, log_prefix,
                     timed=timed)


def bench_parser(prog: str, description: str | None,
                 quick_help: str = "tiny sizes (smoke run)") -> argparse.ArgumentParser:
    """The options every stack bench takes: --quick and --workers (API workers, default 2); a
    bench adds its own before handing the parser to `run_bench`."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--workers", type=int, default=2)
    return parser


def run_bench(parser: argparse.ArgumentParser, argv: list[str] | None,
              run: Callable[[Stack, argparse.Namespace], list[Row]], title: str, log_prefix: str,
              *, timed: bool = True) -> int:
    """Parse `argv`, run `run(stack, args)` on a running stack (logs in a new temporary dir named
    `log_prefix`...) and print its rows under `title`, followed when `timed` by the mode, the
    cores this process may use, the 1-minute load average, the wall time in s and the logs dir.
    Returns the exit status (0)."""
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix=log_prefix))
    started = time.monotonic()
    with running_stack(args.workers, logs) as stack:
        rows = run(stack, args)
    if timed:
        title += (f" ({'quick' if args.quick else 'full'}; {len(os.sched_getaffinity(0))} cores; "
                  f"load {os.getloadavg()[0]:.1f}; {time.monotonic() - started:.0f} s; "
                  f"logs in {logs})")
    print(format_table(rows, title), flush=True)
    return 0


# The baseline runs as one uvicorn process, its usual form. `uvicorn --workers N` is no fairer: its
# workers serve a socket inherited from the parent, on which asyncio does not set TCP_NODELAY
# (the socket's proto reads 0), so every keep-alive response waits ~40 ms for a delayed ACK
# (measured: ~90 req/s with 4 workers against ~5,000 with one).
@contextmanager
def running_stack(workers: int, log_dir: Path) -> Iterator[Stack]:
    """Emulator + resources + `python -m devstack serve` + uvicorn baseline; all stopped on exit."""
    prepare_environment()
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        emulator = start_store(log_path=str(log_dir / "store.log"))
        stack.callback(emulator.stop)
        os.environ["AWS_ENDPOINT_URL"] = emulator.url
        outputs = bootstrap.deploy(STAGE)
        os.environ["A6HUB_TABLE_PREFIX"] = outputs["TablePrefix"]
        os.environ["A6HUB_BUCKET"] = outputs["BucketName"]
        os.environ["A6HUB_JOBS_QUEUE_URL"] = bootstrap.queue_url(f"a6hub-{STAGE}-jobs")

        api_port, baseline_port = free_port(), free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        baseline_url = f"http://127.0.0.1:{baseline_port}"
        stack.enter_context(_process(
            [sys.executable, "-m", "devstack", "serve", "--port", str(api_port),
             "--workers", str(workers)],
            log_dir / "api.log", f"{api_url}/health"))
        stack.enter_context(_process(
            [sys.executable, "-m", "uvicorn", "bench.baseline:app", "--host", "127.0.0.1",
             "--port", str(baseline_port), "--http", "httptools",
             "--no-access-log", "--log-level", "warning"],
            log_dir / "uvicorn.log", f"{baseline_url}/health"))
        yield Stack(emulator_url=emulator.url, api_url=api_url, baseline_url=baseline_url,
                    workers=workers, log_dir=log_dir)
