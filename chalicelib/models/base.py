"""Shared model plumbing: table naming, timestamps, the transaction connection."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from pynamodb.connection import Connection

from chalicelib.config import table_prefix


def table_name(short: str) -> str:
    return f"{table_prefix()}{short}"


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=1)
def transaction_connection() -> Connection:
    """One low-level connection for TransactWrite/TransactGet, created on first use."""
    return Connection()
