"""A git server on 127.0.0.1 for import tests: the real `git http-backend` behind a tiny CGI bridge.

`git daemon` serves the same repositories over git://. Both bind a free loopback port and
stop with the context manager.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.emulator import free_port


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
           "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def make_repo(root: Path, name: str, commits: list[dict[str, str]],
              branch: str = "trunk") -> Path:
    """A bare repository `root/name.git` whose `branch` holds one commit per dict (path -> text).

    The branch is not called main, so an import must follow the remote HEAD to find it.
    """
    work = root / f"{name}-work"
    work.mkdir()
    git(work, "init", "-q", "-b", branch)
    for number, files in enumerate(commits, 1):
        for path, text in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", f"commit {number}")
    bare = root / f"{name}.git"
    git(root, "clone", "-q", "--bare", str(work), str(bare))
    return bare


@dataclass
class Served:
    url: str  # http://127.0.0.1:<port>
    requests: list[str] = field(default_factory=list)


class _CGIBridge(BaseHTTPRequestHandler):
    root: Path
    served: Served
    redirect_to: str | None = None
    delay: float = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _run(self) -> None:
        self.served.requests.append(f"{self.command} {self.path}")
        time.sleep(self.delay)
        if self.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
               "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}
        if self.headers.get("Git-Protocol"):
            env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                             check=False, timeout=60).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _run
    do_POST = _run


@contextmanager
def http_git_server(root: Path, redirect_to: str | None = None,
                    delay: float = 0.0) -> Iterator[Served]:
    """`git http-backend` for the bare repositories under `root`, on 127.0.0.1.

    `delay` stalls every answer that long (a slow server); `redirect_to` answers 302 there.
    """
    served = Served(url="")
    handler = type("Bridge", (_CGIBridge,), {"root": root, "served": served,
                                             "redirect_to": redirect_to, "delay": delay})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        served.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield served


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """`server` answering on a daemon thread until the block ends, then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def git_daemon(root: Path) -> Iterator[str]:
    """`git daemon` for the bare repositories under `root`; yields git://127.0.0.1:<port>."""
    port = free_port()
    process = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={root}",
         "--listen=127.0.0.1", f"--port={port}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
