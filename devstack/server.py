"""Serve the Chalice app over HTTP/1.1 keep-alive with gunicorn (gthread workers)."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from app import app
        from devstack.gateway import GatewayApp

        return GatewayApp(app)


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int | None = None) -> None:
    """Run until SIGINT/SIGTERM. One request at a time per worker, as in Lambda: the Chalice app
    keeps the current request on the app object, so threads within a process must not share it."""
    count = workers or int(os.environ.get("A6HUB_API_WORKERS", 0)) or max(2, (os.cpu_count() or 1) * 2)
    _Server({
        "bind": f"{host}:{port}",
        "workers": count,
        "worker_class": "gthread",
        "threads": 1,
        "keepalive": 75,
        "timeout": 120,
        "graceful_timeout": 5,
        "loglevel": "warning",
        "accesslog": None,
        "proc_name": "a6hub-api",
    }).run()
