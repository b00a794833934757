"""Cursor paging over one DynamoDB Query per page."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chalicelib.errors import BadRequest

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected: dict[str, str]) -> dict[str, Any] | None:
    """Decode a cursor and check it continues the same list (same partition key values).

    `expected` maps attribute names to the values the cursor must carry; a cursor from another
    list (another user's, another project's) is refused instead of reaching DynamoDB.
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("invalid cursor") from e
    if not isinstance(key, dict) or not all(isinstance(v, dict) and len(v) == 1 for v in key.values()):
        raise BadRequest("invalid cursor")
    for name, value in expected.items():
        if key.get(name) != {"S": value}:
            raise BadRequest("invalid cursor")
    return key


def page_of(result_iterator: Any, items: Iterable[T]) -> Page[T]:
    """Wrap what one Query page produced, taking the continuation key from its iterator."""
    collected = list(items)
    return Page(items=collected, next_cursor=encode_cursor(result_iterator.last_evaluated_key))
