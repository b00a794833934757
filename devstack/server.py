"""Serve the Chalice app over HTTP/1.1 keep-alive: N uvicorn (httptools) worker processes on one port.

Why not gunicorn: its gthread worker spent more CPU per request than the whole Chalice request
path (bench/: ~4,500 req/s for a trivial WSGI app on 2 cores); uvicorn's C parser and event loop
leave the CPU to the app. Why not `uvicorn --workers`: it hands workers a socket whose protocol
reads 0, so asyncio never sets TCP_NODELAY and each keep-alive response waits ~40 ms for a delayed
ACK; and one shared listening socket lets the first event loop to wake accept a whole burst of
connections. Here each worker listens on its own SO_REUSEPORT socket (the kernel spreads the
connections), created as TCP so asyncio sets TCP_NODELAY; the parent holds the port bound.

SO_REUSEPORT lets any socket of the same user (any root socket) share the port, so the parent
first claims it (`claim_port`): a bind without SO_REUSEPORT fails if anything holds the port, and
an abstract Unix socket named after the port keeps a second a6hub server starting at the same
moment out.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent

KEEP_ALIVE_SECONDS = 75  # above the browsers' and axios' idle times, as API Gateway's is
RESTART_PAUSE_SECONDS = 1.0


def worker_count(workers: int | None = None) -> int:
    return workers or int(os.environ.get("A6HUB_API_WORKERS", 0)) or max(2, (os.cpu_count() or 1) * 2)


class PortInUse(RuntimeError):
    """The API's port is held by another program or another a6hub server."""


@dataclass
class Claim:
    """The port, held until `close`: `sock` bound with SO_REUSEPORT (never listening) and the lock."""
    sock: socket.socket
    lock: socket.socket

    def close(self) -> None:
        self.sock.close()
        self.lock.close()


def claim_port(host: str, port: int) -> Claim:
    """Hold host:port for this server's workers, or raise PortInUse at once.

    Linux shares a SO_REUSEPORT port among the sockets of one effective user (socket(7)), so a
    second server of the same user (or root) would bind and take half the connections. A plain
    bind first fails with EADDRINUSE if any socket holds the port; the lock, an abstract Unix
    socket (released by the kernel when this process dies), covers two servers starting together
    in the moment between that probe and the SO_REUSEPORT bind."""
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0a6hub-api-{host}:{port}")
    except OSError as e:
        lock.close()
        raise PortInUse(f"port {port} on {host} is in use by another a6hub API server "
                        "(starting or serving)") from e
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as e:
        lock.close()
        raise PortInUse(f"port {port} on {host} is in use by another program ({e.strerror}); "
                        "choose another with --port (make run PORT=...)") from e
    finally:
        probe.close()
    try:
        return Claim(_bind(host, port), lock)
    except OSError:
        lock.close()
        raise


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket on host:port that other sockets of this user may share (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _spawn(host: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "devstack.server", "--host", host,
                             "--port", str(port)], cwd=ROOT)


def _stop(workers: list[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    for process in workers:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in workers:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int | None = None,
          claim: Claim | None = None) -> None:
    """Run until SIGINT/SIGTERM, replacing a worker that dies. One request at a time per worker,
    as in Lambda: the Chalice app keeps the current request on the app object.

    `claim`: the port already claimed by the caller (`claim_port`); else claimed here, raising
    PortInUse if another program or a6hub server holds it."""
    held = claim or claim_port(host, port)
    # Both stop the server, even where the shell started us with SIGINT ignored (`cmd &`).
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [_spawn(host, port) for _ in range(worker_count(workers))]
    try:
        while True:
            time.sleep(RESTART_PAUSE_SECONDS)
            for n, process in enumerate(running):
                if process.poll() is not None:
                    print(f"[a6hub] API worker {process.pid} exited ({process.returncode}); "
                          "starting another", file=sys.stderr, flush=True)
                    running[n] = _spawn(host, port)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(running)
        held.close()


def run_worker(host: str, port: int) -> None:
    """One worker: the app behind uvicorn on its own listening socket for the shared port."""
    import uvicorn

    # The pusher and $default post to sockets through this server's Management API stand-in.
    os.environ.setdefault("A6HUB_WS_ENDPOINT", f"http://{host}:{port}")
    from app import app
    from chalicelib.services.live import job_id_from_path
    from devstack.gateway import GatewayAsgi
    from devstack.sockets import Sockets, worker_socket_path

    sock = _bind(host, port)
    sock.listen(1024)
    # Posts for sockets this worker holds arrive here from the other workers (devstack/sockets.py).
    private = worker_socket_path(port)
    private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private.unlink(missing_ok=True)
    forwarded = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    forwarded.bind(str(private))
    forwarded.listen(256)
    config = uvicorn.Config(GatewayAsgi(app, Sockets(app, port, job_id_from_path)),
                            http="httptools", ws="websockets-sansio", lifespan="off",
                            access_log=False, log_level="warning",
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock, forwarded])
    finally:
        private.unlink(missing_ok=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m devstack.server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    run_worker(options.host, options.port)
