"""The embedded AWS emulator: our store (moto, fixed and durable: devstack/store.py) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[bytes] | None  # None: an emulator we did not start (LocalStack)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (the store saves its last snapshot, then exits); SIGKILL after `timeout` s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def status(self) -> dict[str, Any]:
        """The store's snapshot counters (`changes`, `saved_changes`, `last_save`)."""
        with urllib.request.urlopen(f"{self.url}/_a6hub/store", timeout=10) as r:  # noqa: S310
            return dict(json.load(r))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, timeout: float = 120.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `url` answers HTTP (a large snapshot takes a while to restore)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the AWS emulator for {url} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - http only
                return
        except urllib.error.HTTPError:
            return  # something answers HTTP: not moto, but up (LocalStack)
        except OSError as e:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the AWS emulator at {url} did not come up in {timeout:.0f}s") from e
            time.sleep(0.1)


def start_store(port: int | None = None, log_path: str | None = None,
                state_dir: str | Path | None = None, save_every: float = 2.0) -> Emulator:
    """Start the embedded store (`python -m devstack.store`) on 127.0.0.1; wait until it answers.

    With `state_dir` it restores `state_dir/store.pickle` first and snapshots there every
    `save_every` seconds; without, the state is thrown away when it stops (tests)."""
    command = [sys.executable, "-m", "devstack.store", "--port", "{port}"]
    if state_dir is not None:
        command += ["--state-dir", str(state_dir), "--save-every", str(save_every)]
    return _start(command, port, log_path)


def start_moto(port: int | None = None, log_path: str | None = None) -> Emulator:
    """Start moto's own server, unchanged (the benchmarks compare the store with it)."""
    return _start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
                  port, log_path)


def _start(command: list[str], port: int | None, log_path: str | None) -> Emulator:
    chosen = port or free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [part.replace("{port}", str(chosen)) for part in command],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{chosen}"
    try:
        wait_until_up(url, process=process)
    except RuntimeError as e:
        process.kill()
        process.wait()
        if log_path:
            raise RuntimeError(f"{e}; the end of its log {log_path}:\n{log_tail(log_path)}") from e
        raise
    return Emulator(url=url, process=process)


def log_tail(path: str | Path, lines: int = 15, max_bytes: int = 8192) -> str:
    """The last `lines` lines of a log file (read from its last `max_bytes`), indented."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"  (unreadable: {e.strerror})"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])
