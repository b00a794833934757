"""Fixed-window counters of failed logins, per account and per client address."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib.models.accounts import RateCounter


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    seconds: int

    def bucket(self, now: float) -> tuple[str, int]:
        start = int(now) // self.seconds * self.seconds
        return f"{self.key}#{start}", start + self.seconds


def seconds_blocked(windows: list[Window], now: float | None = None) -> int:
    """How long the caller must wait (0: not blocked). One BatchGet for all windows."""
    at = time.time() if now is None else now
    keys = {w.bucket(at)[0]: w for w in windows}
    wait = 0
    for counter in RateCounter.batch_get(list(keys)):
        window = keys[counter.key]
        if counter.hits >= window.limit:
            wait = max(wait, int(counter.expires_at - at) + 1)
    return wait


def record_failure(windows: list[Window], now: float | None = None) -> None:
    at = time.time() if now is None else now
    for window in windows:
        key, ends = window.bucket(at)
        RateCounter(key).update(
            actions=[RateCounter.hits.add(1), RateCounter.expires_at.set(ends)]
        )


def clear(window: Window, now: float | None = None) -> None:
    at = time.time() if now is None else now
    key, _ = window.bucket(at)
    try:
        RateCounter(key, hits=0, expires_at=0).delete()
    except DoesNotExist:
        pass
