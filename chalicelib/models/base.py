"""Shared model plumbing: the models' base class, table naming, timestamps, the transaction
connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.constants import NUMBER
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model as PynamoModel
from pynamodb.transactions import TransactWrite

from chalicelib.aws import client, share_session
from chalicelib.config import table_prefix


class Model(PynamoModel):
    """The base of every a6hub table model: a PynamoDB Model whose connection's botocore client
    is made from the process's shared botocore session (chalicelib.aws.share_session).

    PynamoDB gives each model class a connection of its own whose client comes from a botocore
    session of its own, so each class's first request parsed DynamoDB's service model again
    (~78 ms of CPU per class, measured; a cold API process touches a dozen classes). Here the
    model is parsed once per process. Everything else is PynamoDB's Model unchanged.
    """

    @classmethod
    def _get_connection(cls) -> TableConnection:
        connection = super()._get_connection()
        share_session(connection.connection)
        return connection


class IdAttribute(Attribute[int]):
    """An integer id (chalicelib.ids.new_number_id) stored as a DynamoDB number (N).

    PynamoDB's NumberAttribute reads back whatever JSON number it finds and is typed `float`;
    ids are exact integers below 2**53, so this one writes and reads `int` only (a bool, a float
    or anything else is refused on the way in rather than stored as a different key).
    """

    attr_type = NUMBER

    def serialize(self, value: int) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"an id is an int, not {type(value).__name__}")
        return str(value)

    def deserialize(self, value: str) -> int:
        return int(value)


def id_taken(e: Exception) -> bool:
    """A conditional put of a new item failed on its key: the drawn id exists.

    The `is_collision` predicate of chalicelib.ids.with_new_id for single-item creates
    (`save(condition=<key>.does_not_exist())`); transactions read their cancellation reasons.
    """
    from pynamodb.exceptions import PutError

    return isinstance(e, PutError) and condition_failed(e)


def condition_failed(e: Exception) -> bool:
    """A single-item write (put, update, delete) was refused by its condition expression."""
    return getattr(e, "cause_response_code", None) == "ConditionalCheckFailedException"


def cancelled_by_condition(e: Exception) -> list[bool]:
    """For a cancelled TransactWriteItems: per item, in the order the request sent them, whether
    that item's condition failed. PynamoDB sends a transaction's condition checks, then its
    deletes, then its puts, then its updates, whatever the order of the calls."""
    reasons = getattr(e, "cancellation_reasons", None) or []
    return [r is not None and r.code == "ConditionalCheckFailed" for r in reasons]


def lost_transaction_race(e: Exception) -> bool:
    """A cancelled TransactWriteItems lost a race with another transaction on one of its items
    (TransactionConflict: DynamoDB cancels rather than waits; DynamoDB API reference,
    TransactWriteItems, "TransactionCanceledException")."""
    reasons = getattr(e, "cancellation_reasons", None) or []
    return any(r is not None and r.code == "TransactionConflict" for r in reasons)


def first_condition_failed(e: Exception) -> bool:
    """A TransactWriteItems whose first item's condition failed: with_new_id's predicate for a
    create whose new item comes first (PynamoDB's order: see cancelled_by_condition)."""
    return isinstance(e, TransactWriteError) and cancelled_by_condition(e)[:1] == [True]


def transact(write: Callable[[TransactWrite], None], attempts: int = 5,
             backoff_seconds: float = 0.01) -> None:
    """Run `write`'s items as one TransactWriteItems on the shared transaction connection, again
    (after attempt x `backoff_seconds`) while it only lost a race (`lost_transaction_race`, no
    condition failed), at most `attempts` times. Raises TransactWriteError otherwise: the caller
    reads `cancelled_by_condition` to tell which condition refused it."""
    for attempt in range(attempts):
        try:
            with TransactWrite(connection=transaction_connection()) as tx:
                write(tx)
            return
        except TransactWriteError as e:
            if (not lost_transaction_race(e) or any(cancelled_by_condition(e))
                    or attempt == attempts - 1):
                raise
            time.sleep(backoff_seconds * (attempt + 1))


def table_name(short: str) -> str:
    return f"{table_prefix()}{short}"


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=1)
def transaction_connection() -> Connection:
    """One low-level connection for TransactWrite/TransactGet, created on first use (its client
    from the shared botocore session, as the models' are)."""
    connection: Connection = share_session(Connection())
    return connection


def fetch_many(*keys: PynamoModel, consistent: bool = False) -> list[Any]:
    """GetItem for several items of any tables in one BatchGetItem; None where an item is absent.

    Each argument is a model instance holding just its key attributes; the result is in the same
    order, each a full instance of that model (or None). `consistent`: strongly consistent reads
    for every table of the batch (BatchGetItem's per-table ConsistentRead; twice the read units).
    """
    by_table: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, key in enumerate(keys):
        raw = key.serialize(null_check=False)
        names = [name for name in (key._hash_keyname, key._range_keyname) if name]
        by_table.setdefault(key.Meta.table_name, []).append(
            (index, {name: raw[name] for name in names}))
    results: list[Any] = [None] * len(keys)
    pending = {table: {"Keys": [k for _, k in entries], "ConsistentRead": consistent}
               for table, entries in by_table.items()}
    while pending:
        response = client("dynamodb").batch_get_item(RequestItems=pending)
        for table, items in response.get("Responses", {}).items():
            for item in items:
                for index, key_values in by_table[table]:
                    if all(item.get(name) == value for name, value in key_values.items()):
                        results[index] = type(keys[index]).from_raw_data(item)
        pending = response.get("UnprocessedKeys") or {}
    return results
