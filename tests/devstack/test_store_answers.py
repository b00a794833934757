"""The store answers DynamoDB's item operations with the same bytes' meaning as moto's own server.

devstack/store.py serialises GetItem, Query, UpdateItem, ... with its own walk of the output
shape (`_plain`) instead of moto's alias-searching serializer. The same sequence of calls goes
to the store and to moto's unchanged server side by side, over real HTTP, and every answer's
JSON body (and status, and error type) must be equal: any attribute type, ReturnValues,
ConsumedCapacity, pagination key, condition failure or transaction answer that the fast walk
got wrong shows up as a difference here. The store's Query shortcuts (a partition, its
sort-key condition, index projections) are compared the same way."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.emulator import Emulator, start_moto

pytestmark = pytest.mark.skipif(os.environ.get("A6HUB_TEST_EMULATOR") == "moto",
                                reason="compares the store with moto's own server")

# Every DynamoDB attribute type, nested, with the edge values (empty containers, unicode, zero).
ITEM: dict[str, Any] = {
    "pk": {"S": "p1"}, "sk": {"N": "1"}, "gsi": {"S": "g"},
    "s": {"S": "héllo ✓"}, "empty_s": {"S": ""}, "n": {"N": "-12.50"}, "zero": {"N": "0"},
    "b": {"B": b"\x00\xffbin"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"\x01\x02"]}, "null": {"NULL": True}, "t": {"BOOL": True},
    "f": {"BOOL": False}, "empty_l": {"L": []}, "empty_m": {"M": {}},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"M": {"deep": {"B": b"d"}}},
                                 {"NULL": True}, {"BOOL": False}]},
                "ss": {"SS": ["z"]}}},
}


def sets_sorted(value: Any) -> Any:
    """`value` with the members of every SS/NS/BS sorted: moto's ProjectionExpression passes
    sets through Python sets, whose order differs from one process to the next."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") and isinstance(v, list)
                else sets_sorted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sets_sorted(v) for v in value]
    return value


class Recorder:
    """A DynamoDB client on `url` that keeps each answer's status and JSON body."""

    def __init__(self, url: str) -> None:
        self.client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                                   config=Config(retries={"mode": "standard", "max_attempts": 1}))
        self.answers: list[tuple[str, int, Any]] = []
        self.client.meta.events.register("after-call.dynamodb.*", self._keep)
        self.client.meta.events.register("after-call-error.dynamodb.*", self._keep_error)

    def _keep(self, http_response: Any, model: Any, **_: Any) -> None:
        body = http_response.content
        self.answers.append((model.name, http_response.status_code,
                             sets_sorted(json.loads(body)) if body else None))

    def _keep_error(self, exception: Exception, **_: Any) -> None:
        self.answers.append(("error", 0, repr(exception)))


@pytest.fixture(scope="module")
def plain_moto() -> Iterator[Emulator]:
    emu = start_moto()
    yield emu
    emu.stop()


def calls(ddb: Any, table: str) -> None:
    """The item operations a6hub makes, with their options and their failures."""
    key = {"pk": {"S": "p1"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item=ITEM)
    ddb.put_item(TableName=table, Item={**ITEM, "s": {"S": "second"}}, ReturnValues="ALL_OLD",
                 ReturnConsumedCapacity="TOTAL")
    for n in range(2, 6):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p1"}, "sk": {"N": str(n)},
                                            "gsi": {"S": "g"}, "v": {"N": f"{n * 10}.50"},
                                            "big": {"S": "x" * 2000}})
    ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    ddb.get_item(TableName=table, Key=key, ReturnConsumedCapacity="INDEXES")
    ddb.get_item(TableName=table, Key={"pk": {"S": "none"}, "sk": {"N": "1"}})
    ddb.get_item(TableName=table, Key=key, ProjectionExpression="#m.inner[2], b, ss",
                 ExpressionAttributeNames={"#m": "m"})
    for values in ("ALL_NEW", "UPDATED_OLD", "UPDATED_NEW", "ALL_OLD", "NONE"):
        ddb.update_item(TableName=table, Key=key, ReturnValues=values,
                        UpdateExpression="SET n = n + :one, added = :b REMOVE t",
                        ConditionExpression="attribute_exists(pk) AND s <> :x",
                        ExpressionAttributeValues={":one": {"N": "1"}, ":x": {"S": "x"},
                                                   ":b": {"B": b"new"}})
    try:
        ddb.update_item(TableName=table, Key=key, UpdateExpression="SET s = :x",
                        ConditionExpression="s = :x", ExpressionAttributeValues={":x": {"S": "x"}},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError:
        pass
    page = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                     ExpressionAttributeValues={":p": {"S": "p1"}, ":a": {"N": "1"},
                                                ":b": {"N": "4"}}, Limit=2,
                     ReturnConsumedCapacity="TOTAL")
    ddb.query(TableName=table, KeyConditionExpression="pk = :p",
              ExpressionAttributeValues={":p": {"S": "p1"}}, ScanIndexForward=False,
              ExclusiveStartKey=page["LastEvaluatedKey"], Select="COUNT")
    ddb.query(TableName=table, IndexName="by_gsi", KeyConditionExpression="gsi = :g",
              FilterExpression="v > :v", ExpressionAttributeValues={":g": {"S": "g"},
                                                                    ":v": {"N": "20"}})
    for index in ("by_gsi_keys", "by_gsi_include"):
        ddb.query(TableName=table, IndexName=index, KeyConditionExpression="gsi = :g AND sk > :s",
                  ExpressionAttributeValues={":g": {"S": "g"}, ":s": {"N": "1"}},
                  ScanIndexForward=False, Limit=3)
        ddb.query(TableName=table, IndexName=index, KeyConditionExpression="gsi = :g",
                  ExpressionAttributeValues={":g": {"S": "g"}})
    for condition, values in (("sk = :a", {":a": {"N": "3"}}), ("sk < :a", {":a": {"N": "3"}}),
                              ("sk >= :a", {":a": {"N": "4"}}),
                              ("sk BETWEEN :a AND :b", {":a": {"N": "2"}, ":b": {"N": "9"}})):
        for forward in (True, False):
            first = ddb.query(TableName=table, KeyConditionExpression=f"pk = :p AND {condition}",
                              ExpressionAttributeValues={":p": {"S": "p1"}, **values},
                              ScanIndexForward=forward, Limit=2)
            if "LastEvaluatedKey" in first:
                ddb.query(TableName=table, KeyConditionExpression=f"pk = :p AND {condition}",
                          ExpressionAttributeValues={":p": {"S": "p1"}, **values},
                          ScanIndexForward=forward, ExclusiveStartKey=first["LastEvaluatedKey"])
    ddb.query(TableName=table, KeyConditionExpression="pk = :p AND sk > :a",
              ExpressionAttributeValues={":p": {"S": "p1"}, ":a": {"N": "1"}, ":v": {"N": "30"}},
              FilterExpression="v >= :v", ProjectionExpression="sk, v")
    ddb.scan(TableName=table, FilterExpression="attribute_exists(m)")
    ddb.batch_get_item(RequestItems={table: {"Keys": [key, {"pk": {"S": "p1"}, "sk": {"N": "3"}},
                                                      {"pk": {"S": "no"}, "sk": {"N": "9"}}]}},
                       ReturnConsumedCapacity="TOTAL")
    ddb.batch_write_item(RequestItems={table: [
        {"PutRequest": {"Item": {"pk": {"S": "p2"}, "sk": {"N": "1"}, "l": {"L": [{"S": "a"}]}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "p1"}, "sk": {"N": "5"}}}}]})
    ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key}},
                                          {"Get": {"TableName": table,
                                                   "Key": {"pk": {"S": "p2"}, "sk": {"N": "1"}}}}])
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {"pk": {"S": "p3"}, "sk": {"N": "1"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET zero = :z",
                    "ExpressionAttributeValues": {":z": {"N": "7"}}}}],
        ReturnConsumedCapacity="TOTAL")
    try:
        ddb.transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": table, "Key": key,
                                "ConditionExpression": "attribute_not_exists(pk)",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}])
    except ClientError:
        pass
    ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
    ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")


def on_each(recorders: list[Recorder], step: Callable[[Any, str], None], table: str) -> None:
    for recorder in recorders:
        step(recorder.client, table)


def test_item_operations_answer_as_moto_does(emulator: Emulator, plain_moto: Emulator) -> None:
    # GIVEN the same table (with ALL, KEYS_ONLY and INCLUDE indexes) on the store and on moto's
    table = f"answers-{uuid.uuid4().hex[:8]}"
    recorders = [Recorder(emulator.url), Recorder(plain_moto.url)]
    for recorder in recorders:
        recorder.client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "N"},
                                  {"AttributeName": "gsi", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {"IndexName": name, "Projection": projection,
                 "KeySchema": [{"AttributeName": "gsi", "KeyType": "HASH"},
                               {"AttributeName": "sk", "KeyType": "RANGE"}]}
                for name, projection in (
                    ("by_gsi", {"ProjectionType": "ALL"}),
                    ("by_gsi_keys", {"ProjectionType": "KEYS_ONLY"}),
                    ("by_gsi_include", {"ProjectionType": "INCLUDE",
                                        "NonKeyAttributes": ["v", "ss", "b"]}))])
        recorder.answers.clear()
    try:
        # WHEN the same item operations run on both
        on_each(recorders, calls, table)
        # THEN every answer is the same: status, and the JSON body key for key
        store, moto = (r.answers for r in recorders)
        for n, (mine, theirs) in enumerate(zip(store, moto, strict=False)):
            assert mine == theirs, f"answer {n} ({mine[0]})"
        assert len(store) == len(moto) > 40
        # AND the answers carried the edge values (the comparison saw them)
        got = next(body for op, _, body in store if op == "GetItem" and body and "Item" in body)
        assert got["Item"]["b"] == {"B": "AP9iaW4="}
        assert got["Item"]["m"]["M"]["inner"]["L"][2] == {"M": {"deep": {"B": "ZA=="}}}
    finally:
        for recorder in recorders:
            recorder.client.delete_table(TableName=table)


def sqs_story(sqs: Any, tag: str) -> list[Any]:
    """Sends, receives, visibility and receipt handles on a standard and a FIFO queue (with
    content-based deduplication); what a client can compare across servers (no ids)."""
    seen: list[Any] = []
    counts = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"]
    plain = sqs.create_queue(QueueName=f"plain-{tag}")["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"fifo-{tag}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=plain, MessageBody=f"job {n}")
    sqs.send_message(QueueUrl=plain, MessageBody="later", DelaySeconds=60)
    sqs.send_message_batch(QueueUrl=plain, Entries=[{"Id": str(n), "MessageBody": f"b {n}"}
                                                    for n in range(2)])
    got = sqs.receive_message(QueueUrl=plain, MaxNumberOfMessages=2, VisibilityTimeout=60)
    handles = [m["ReceiptHandle"] for m in got["Messages"]]
    seen.append(sorted(m["Body"] for m in got["Messages"]))
    seen.append(sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=counts)["Attributes"])
    sqs.delete_message(QueueUrl=plain, ReceiptHandle=handles[0])
    sqs.change_message_visibility(QueueUrl=plain, ReceiptHandle=handles[1], VisibilityTimeout=0)
    seen.append(sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=counts)["Attributes"])
    rest = sqs.receive_message(QueueUrl=plain, MaxNumberOfMessages=10, VisibilityTimeout=60)
    seen.append(sorted(m["Body"] for m in rest["Messages"]))
    for body in ("same", "same", "other"):  # the second "same" is a duplicate: dropped
        sqs.send_message(QueueUrl=fifo, MessageBody=body, MessageGroupId="g")
    seen.append(sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
                ["ApproximateNumberOfMessages"])
    first = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)
    seen.append([m["Body"] for m in first["Messages"]])
    return seen


def test_sqs_sends_count_receive_and_deduplicate_as_moto_does(emulator: Emulator,
                                                              plain_moto: Emulator) -> None:
    # GIVEN an SQS client on the store and one on moto's server
    clients = [boto3.client("sqs", endpoint_url=e.url, region_name="us-east-1")
               for e in (emulator, plain_moto)]
    tag = uuid.uuid4().hex[:8]
    # WHEN the same story runs on both
    store, moto = (sqs_story(sqs, tag) for sqs in clients)
    # THEN the store's counts, visibility and FIFO deduplication are moto's
    assert store == moto
    assert store[1] == {"ApproximateNumberOfMessages": "3",
                        "ApproximateNumberOfMessagesNotVisible": "2",
                        "ApproximateNumberOfMessagesDelayed": "1"}
    assert store[4] == "2"


# Values at DynamoDB's edges: 38 significant digits, the largest and smallest magnitudes, unicode
# and blank attribute names inside maps, empty binaries, sets of extreme numbers. (Not an empty
# map key: moto's own serializer answers {"M": {"": {"S": "x"}}} as {"M": {"S": "x"}}.)
ODD: dict[str, Any] = {
    "digits": {"N": "12345678901234567890123456789012345678"},
    "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
    "tiny": {"N": "-1E-130"}, "ns": {"NS": ["1E+125", "-1E-130", "0.000"]},
    "ünï ✓": {"S": "ключ"}, "empty_b": {"B": b""},
    "m": {"M": {" ": {"S": "blank name"}, "日本": {"N": "1e2"}, "l": {"L": [{"B": b""}]}}},
}


def odd_calls(ddb: Any, table: str) -> None:
    """Sort keys sharing prefixes (unicode among them), walked one page at a time in both
    directions, with start keys inside and outside the condition's span."""
    names = ["a", "ab", "abc", "abd", "ab✓", "b", "ä", "日本"]
    for n, sk in enumerate(names):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": sk}, "g": {"N": str(n % 2)},
                                            **ODD})
    ddb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "ab✓"}})
    ddb.update_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "a"}}, ReturnValues="ALL_NEW",
                    UpdateExpression="SET #u = :u, m.#e = :e ADD ns :n",
                    ExpressionAttributeNames={"#u": "ünï ✓", "#e": "a b"},
                    ExpressionAttributeValues={":u": {"S": ""}, ":e": {"NULL": True},
                                               ":n": {"NS": ["-" + ODD["huge"]["N"]]}})
    for condition, values in (("begins_with(sk, :a)", {":a": {"S": "ab"}}),
                              ("sk BETWEEN :a AND :b", {":a": {"S": "ab"}, ":b": {"S": "b"}}),
                              ("sk > :a", {":a": {"S": "ä"}}), ("sk <= :a", {":a": {"S": "a"}})):
        for forward in (True, False):
            start: dict[str, Any] | None = None
            for _ in range(10):  # one item a page, until the last page
                page = ddb.query(TableName=table, KeyConditionExpression=f"pk = :p AND {condition}",
                                 ExpressionAttributeValues={":p": {"S": "p"}, **values}, Limit=1,
                                 ScanIndexForward=forward,
                                 **({"ExclusiveStartKey": start} if start else {}))
                start = page.get("LastEvaluatedKey")
                if start is None:
                    break
    for outside in ("0", "zz"):  # a start key no item of the span has
        ddb.query(TableName=table, KeyConditionExpression="pk = :p AND begins_with(sk, :a)",
                  ExpressionAttributeValues={":p": {"S": "p"}, ":a": {"S": "ab"}}, Limit=2,
                  ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"S": outside}})
    ddb.query(TableName=table, IndexName="by_g", KeyConditionExpression="g = :g",
              ExpressionAttributeValues={":g": {"N": "1"}}, Limit=2)


def test_odd_values_and_paged_spans_answer_as_moto_does(emulator: Emulator,
                                                        plain_moto: Emulator) -> None:
    # GIVEN a table with a string sort key and a KEYS_ONLY index, on the store and on moto's server
    table = f"odd-{uuid.uuid4().hex[:8]}"
    recorders = [Recorder(emulator.url), Recorder(plain_moto.url)]
    for recorder in recorders:
        recorder.client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "g", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "by_g", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                     "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}])
        recorder.answers.clear()
    try:
        # WHEN the same calls run on both
        on_each(recorders, odd_calls, table)
        # THEN every answer is the same
        store, moto = (r.answers for r in recorders)
        for n, (mine, theirs) in enumerate(zip(store, moto, strict=False)):
            assert mine == theirs, f"answer {n} ({mine[0]})"
        assert len(store) == len(moto) > 30
        # AND the edge values went through the store's own serializer and came back whole
        got = next(body for op, _, body in store if op == "GetItem")
        assert got["Item"]["digits"] == ODD["digits"] and got["Item"]["m"]["M"][" "] == {"S": "blank name"}
    finally:
        for recorder in recorders:
            recorder.client.delete_table(TableName=table)
