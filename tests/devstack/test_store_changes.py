"""The store's wait for a DynamoDB write (devstack/store.py `/_a6hub/store/changes`, client in
devstack/changes.py), over real HTTP: a wait ends at a write of its item, table or any item of
a transaction or batch, and not for other items or for writes before it began; the long poll
(services/job_wait.py) pauses on it when it is installed.

Where a wait is expected to end with nothing written its timeout is short and the assertion is
on the answer (`written` false), never on how long anything took."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from devstack.changes import StoreChanges, store_changes

pytestmark = pytest.mark.skipif(os.environ.get("A6HUB_TEST_EMULATOR") == "moto",
                                reason="moto's own server has no changes endpoint")


def key(n: int) -> dict[str, Any]:
    return {"k": {"N": str(n)}}


@pytest.fixture()
def numbers_table(emulator: Any) -> Iterator[str]:
    ddb = boto3.client("dynamodb")
    name = f"changes-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "N"}],
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture()
def changes(emulator: Any) -> StoreChanges:
    found = store_changes()
    assert found is not None, "the test emulator is the store: its changes endpoint answers"
    return found


def test_a_wait_ends_at_the_write_of_its_item(numbers_table: str, changes: StoreChanges) -> None:
    # GIVEN a reader waiting (up to 60 s) for item 7, from now on
    ddb = boto3.client("dynamodb")
    since = time.monotonic()
    answer: list[bool] = []
    reader = threading.Thread(target=lambda: answer.append(
        changes.wait([numbers_table], since, 60, key(7))))
    reader.start()
    # WHEN another item is written, then item 7 is updated (its number spelled differently)
    ddb.put_item(TableName=numbers_table, Item={**key(8), "v": {"S": "x"}})
    ddb.update_item(TableName=numbers_table, Key={"k": {"N": "7.0"}},
                    UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "y"}})
    reader.join(timeout=90)
    # THEN the wait ended with "written"
    assert answer == [True]


def test_writes_before_a_wait_began_and_to_other_items_do_not_end_it(
        numbers_table: str, changes: StoreChanges) -> None:
    # GIVEN item 7 written, then a point in time after it
    ddb = boto3.client("dynamodb")
    before = time.monotonic()
    ddb.put_item(TableName=numbers_table, Item={**key(7), "v": {"S": "x"}})
    after = time.monotonic()
    ddb.put_item(TableName=numbers_table, Item={**key(8), "v": {"S": "x"}})
    # WHEN item 7 is waited for from each point
    # THEN from before the write it is written at once; from after it, nothing comes
    assert changes.wait([numbers_table], before, 0, key(7)) is True
    assert changes.wait([numbers_table], after, 0.2, key(7)) is False
    # AND the table as a whole was written after that point (item 8)
    assert changes.wait([numbers_table], after, 0) is True


def test_transactions_batches_and_deletes_mark_each_item_they_write(
        numbers_table: str, changes: StoreChanges) -> None:
    # GIVEN items 4 and 5 stored, and a point in time after that
    ddb = boto3.client("dynamodb")
    for n in (4, 5):
        ddb.put_item(TableName=numbers_table, Item={**key(n), "v": {"S": "x"}})
    since = time.monotonic()
    # WHEN a transaction puts 1 and updates 2, a batch puts 3 and deletes 4, and 5 is deleted
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": numbers_table, "Item": {**key(1), "v": {"S": "x"}}}},
        {"Update": {"TableName": numbers_table, "Key": key(2), "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "y"}}}}])
    ddb.batch_write_item(RequestItems={numbers_table: [
        {"PutRequest": {"Item": {**key(3), "v": {"S": "x"}}}},
        {"DeleteRequest": {"Key": key(4)}}]})
    ddb.delete_item(TableName=numbers_table, Key=key(5))
    # THEN each of 1-5 reads as written since then, and 6 (untouched) does not
    assert [changes.wait([numbers_table], since, 0, key(n)) for n in range(1, 7)] == \
        [True] * 5 + [False]


def test_a_bad_changes_query_is_a_400_with_a_detail(emulator: Any) -> None:
    # WHEN the endpoint is asked without `since`, with a key for two tables, or with a key
    # nested past the JSON decoder's recursion limit
    for query in ("table=a", "table=a&table=b&since=0&key=%7B%7D",
                  "table=a&since=0&key=" + "%5B" * 5000):
        reply = requests.get(f"{emulator.url}/_a6hub/store/changes?{query}", timeout=30)
        # THEN it is refused with the reason
        assert reply.status_code == 400
        assert "detail" in reply.json()
