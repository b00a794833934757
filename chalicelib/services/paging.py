"""Cursor paging over one DynamoDB Query per page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chalicelib.config import signing_key
from chalicelib.errors import BadRequest

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _mac(payload: bytes) -> bytes:
    # A cursor is our own DynamoDB key, signed: a forged one would otherwise reach DynamoDB as an
    # ExclusiveStartKey with missing, extra or mistyped attributes and come back as a 500.
    key = hashlib.sha256(b"a6hub-cursor:" + signing_key().encode()).digest()
    return hmac.new(key, payload, hashlib.sha256).digest()[:16]


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(raw)}.{_b64(_mac(raw))}"


def decode_cursor(cursor: str | None, expected: dict[str, str | int]) -> dict[str, Any] | None:
    """Decode a cursor and check it continues the same list (same partition key values).

    `expected` maps attribute names to the values the cursor must carry (an int is an id, a
    DynamoDB number; a str a string); a cursor from another
    list (another user's, another project's) is refused instead of reaching DynamoDB, and so is
    one we did not sign.
    """
    if not cursor:
        return None
    try:
        body, _, tag = cursor.partition(".")
        raw = _unb64(body)
        if not hmac.compare_digest(_unb64(tag), _mac(raw)):
            raise BadRequest("invalid cursor")
        key = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("invalid cursor") from e
    if not isinstance(key, dict):
        raise BadRequest("invalid cursor")
    for name, value in expected.items():
        typed = {"N": str(value)} if isinstance(value, int) else {"S": value}
        if key.get(name) != typed:
            raise BadRequest("invalid cursor")
    return key


def page_of(result_iterator: Any, items: Iterable[T]) -> Page[T]:
    """Wrap what one Query page produced, taking the continuation key from its iterator."""
    collected = list(items)
    return Page(items=collected, next_cursor=encode_cursor(result_iterator.last_evaluated_key))
