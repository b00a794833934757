"""Identifiers.

`new_number_id()` — every id the API names (the web client types every id as a JavaScript
`number` and reads path ids with `parseInt`). A positive integer below 2**53
(JavaScript's `Number.MAX_SAFE_INTEGER` + 1, so a client reads it exactly):

    bits 52..12  milliseconds since 2026-01-01T00:00:00Z (41 bits: until the year 2095)
    bits 11..0   random (12 bits)

Ids are time-ordered to the millisecond, so "newest first" stays a descending Query on the key.
They are not guaranteed unique by construction: two ids drawn in the same millisecond collide
with probability 1/4096. Every item keyed by such an id is therefore created with a conditional
write (`attribute_not_exists` on its key) and, on the rare conflict, retried with a fresh id
(`with_new_id`). There is no counter item, so there is no hot key: creating ids costs nothing
beyond the item's own write, whatever the write rate.

`new_id()` — a ULID-layout string (48-bit milliseconds + 80 random bits, Crockford base32, 26
characters), only where a value never reaches a client (S3 object versions of a file body).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TypeVar

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: 2026-01-01T00:00:00Z in Unix milliseconds: the epoch of integer ids.
ID_EPOCH_MS = 1_767_225_600_000
_RANDOM_BITS = 12
_TIME_BITS = 41
#: The largest id: 2**53 - 1 (JavaScript's Number.MAX_SAFE_INTEGER).
MAX_ID = (1 << (_TIME_BITS + _RANDOM_BITS)) - 1
#: How many times `with_new_id` draws a fresh id after a key collision before giving up.
ID_ATTEMPTS = 5

T = TypeVar("T")


def new_number_id(now_ms: int | None = None) -> int:
    """A fresh integer id in [1, 2**53 - 1], time-ordered to the millisecond.

    `now_ms` is Unix time in milliseconds (default: now). Raises ValueError for a time before
    the id epoch (2026-01-01) or past its end (2095).
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    offset = ms - ID_EPOCH_MS
    if not 0 <= offset < (1 << _TIME_BITS):
        raise ValueError(f"time {ms} ms is outside the id range")
    value = (offset << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)
    return value or 1


def is_number_id(value: object) -> bool:
    """True for an int (not a bool) in [1, 2**53 - 1]."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def parse_number_id(text: str) -> int | None:
    """The id a path segment names ("1234"), or None when it is not a canonical id.

    Canonical means plain ASCII decimal digits without sign, spaces or leading zeros, so one id
    has exactly one spelling in a URL.
    """
    if not text or len(text) > 16 or not text.isascii() or not text.isdigit() or text[0] == "0":
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def with_new_id(create: Callable[[int], T], is_collision: Callable[[Exception], bool],
                attempts: int = ID_ATTEMPTS) -> T:
    """Run `create(id)` with fresh ids until it does not collide.

    `create` must write conditionally on the id not existing and raise; `is_collision(exc)`
    tells a key collision from any other failure (which is re-raised at once). Raises the last
    collision after `attempts` tries (at our write rates the chance of even one retry is small:
    two ids drawn in the same millisecond collide with probability 1/4096).
    """
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return create(new_number_id())
        except Exception as exc:  # noqa: BLE001 - classified by the caller's predicate
            if not is_collision(exc):
                raise
            last = exc
    assert last is not None
    raise last


def distinct_number_id(drawn: set[int]) -> int:
    """A fresh id not yet in `drawn`, which it joins.

    For several items created in one transaction: DynamoDB refuses a transaction that names one
    key twice, and ids drawn in the same millisecond collide with probability 1/4096 per pair.
    A collision with an item that already exists is still the conditional write's to catch.
    """
    while True:
        value = new_number_id()
        if value not in drawn:
            drawn.add(value)
            return value


def new_id(now_ms: int | None = None) -> str:
    """A ULID-layout string id (26 characters); for ids that never reach a client."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))

