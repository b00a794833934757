"""The embedded AWS emulator: a moto server process on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[bytes] | None  # None: an emulator we did not start (LocalStack)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310 - http only
                return
        except urllib.error.HTTPError:
            return  # something answers HTTP: not moto, but up (LocalStack)
        except OSError as e:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the AWS emulator at {url} did not come up in {timeout:.0f}s") from e
            time.sleep(0.1)


def start_moto(port: int | None = None, log_path: str | None = None) -> Emulator:
    """Start `moto_server` on 127.0.0.1 and wait until it answers."""
    chosen = port or free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(chosen)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )
    url = f"http://127.0.0.1:{chosen}"
    try:
        wait_until_up(url)
    except RuntimeError:
        process.kill()
        raise
    return Emulator(url=url, process=process)
