"""Fixed-window counters of failed logins, per account and per client address."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.models.accounts import RateCounter
from chalicelib.models.base import condition_failed


def client_key(address: str) -> str:
    """The unit a per-client limit counts: the address itself, or for IPv6 its /64 (one
    subscriber usually holds a whole /64 and could rotate through it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    seconds: int

    def bucket(self, now: float) -> tuple[str, int]:
        start = int(now) // self.seconds * self.seconds
        return f"{self.key}#{start}", start + self.seconds


def acquire(windows: list[Window], now: float | None = None) -> int:
    """Take one attempt from every window before the password is checked; how long the caller
    must wait instead (0: taken). Counting first, in one conditional write per window, keeps
    concurrent guesses inside the limit: a check-then-count lets every request that arrives
    during the first bcrypt through."""
    at = time.time() if now is None else now
    taken: list[Window] = []
    for window in windows:
        key, ends = window.bucket(at)
        try:
            RateCounter(key).update(
                actions=[RateCounter.hits.add(1), RateCounter.expires_at.set(ends)],
                condition=RateCounter.hits.does_not_exist() | (RateCounter.hits < window.limit),
            )
        except UpdateError as e:
            if not condition_failed(e):
                raise
            release(taken, at)
            return max(1, ends - int(at))
        taken.append(window)
    return 0


def count_in(tx: TransactWrite, window: Window, at: float) -> int:
    """Add `acquire`'s conditional count of one attempt in `window` to the transaction `tx`, so
    the attempt is counted only with the write it allows (both or neither). Returns how long the
    caller must wait when the transaction is cancelled on this count (the window is full)."""
    key, ends = window.bucket(at)
    tx.update(RateCounter(key),
              actions=[RateCounter.hits.add(1), RateCounter.expires_at.set(ends)],
              condition=RateCounter.hits.does_not_exist() | (RateCounter.hits < window.limit))
    return max(1, ends - int(at))


def release(windows: list[Window], now: float | None = None) -> None:
    """Give back attempts taken by `acquire` that did not fail (a successful login)."""
    at = time.time() if now is None else now
    for window in windows:
        key, _ = window.bucket(at)
        try:
            RateCounter(key).update(actions=[RateCounter.hits.add(-1)],
                                    condition=RateCounter.hits > 0)
        except UpdateError as e:
            if not condition_failed(e):
                raise


def clear(window: Window, now: float | None = None) -> None:
    at = time.time() if now is None else now
    key, _ = window.bucket(at)
    try:
        RateCounter(key, hits=0, expires_at=0).delete()
    except DoesNotExist:
        pass
