"""Dependency reachability for /health, cached briefly so probes stay cheap."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import jobqueue, storage
from chalicelib.config import get_settings
from chalicelib.models.accounts import User

CACHE_SECONDS = 5.0
_lock = threading.Lock()
_cached: tuple[float, dict[str, Any]] | None = None


def _dynamodb() -> None:
    User.count(hash_key=0, limit=1)  # 0 is never an id: a Query that finds nothing


def _s3() -> None:
    storage.check_bucket()


def _sqs() -> None:
    url = get_settings().jobs_queue_url
    if url:
        jobqueue.check(url)


_CHECKS: dict[str, Callable[[], None]] = {"dynamodb": _dynamodb, "s3": _s3, "sqs": _sqs}


def _probe() -> dict[str, Any]:
    checks = {}
    for name, check in _CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except (BotoCoreError, ClientError, OSError, Exception):  # noqa: BLE001 - reported, not raised
            # The reason stays in our logs; the response names no endpoint or resource.
            checks[name] = "unreachable"
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return {"status": status, "checks": checks}


def report(now: float) -> dict[str, Any]:
    global _cached
    cached = _cached
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    with _lock:
        if _cached is None or now - _cached[0] >= CACHE_SECONDS:
            _cached = (now, _probe())
        return _cached[1]
