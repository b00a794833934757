"""What one AWS call costs the emulator: server CPU per operation, the embedded store
(devstack/store.py) next to moto's own server, unchanged, in the same run.

`python -m bench.store_ops [--quick] [--calls N] [--rounds R]` starts both servers, gives each
the same tables (a jobs-like table of 200 items with a KEYS_ONLY index), queues (one holding 120
messages) and bucket, then times each operation in batches of N calls, alternating the two
servers round by round so that both see the same machine load. A server's CPU is read from
/proc/<pid>/stat (user + system) around each batch; the client's own CPU is not counted. The
table prints the median ms per call over the rounds for each operation, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.report import Row, format_table
from devstack.emulator import Emulator, start_moto, start_store

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

TICKS = os.sysconf("SC_CLK_TCK")
_CONFIG = Config(retries={"mode": "standard"})
_S3_CONFIG = Config(retries={"mode": "standard"}, s3={"addressing_style": "path"})
ITEMS = 200
QUEUE_DEPTH = 120

Call = Callable[[], object]


def server_cpu_s(emulator: Emulator) -> float:
    """User + system CPU seconds the emulator's process has used so far (proc(5): fields 14, 15)."""
    assert emulator.process is not None
    fields = Path(f"/proc/{emulator.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _job(i: int) -> dict[str, Any]:
    return {"project_id": {"N": "1"}, "job_id": {"N": str(i)}, "status": {"S": "pending"},
            "created_at": {"S": f"2026-11-30T08:00:{i % 60:02d}.000Z"},
            "config": {"S": json.dumps({"testbench": "counter_tb.v", "top": "tb"})},
            "attempts": {"N": "0"}, "commit": {"S": "a" * 40},
            "summary": {"M": {"runner": {"M": {"aws_calls": {"N": "6"}}}}},
            "files": {"L": [{"S": f"src/f{k}.v"} for k in range(5)]}}


def operations(url: str) -> dict[str, Call]:
    """The calls a job makes, set up on the server at `url`: operation name -> one call."""
    session = boto3.session.Session()
    ddb = session.client("dynamodb", endpoint_url=url, config=_CONFIG)
    sqs = session.client("sqs", endpoint_url=url, config=_CONFIG)
    s3 = session.client("s3", endpoint_url=url, config=_S3_CONFIG)
    table, other = f"jobs-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    keys = [{"AttributeName": "project_id", "KeyType": "HASH"},
            {"AttributeName": "job_id", "KeyType": "RANGE"}]
    numbers = [{"AttributeName": "project_id", "AttributeType": "N"},
               {"AttributeName": "job_id", "AttributeType": "N"}]
    ddb.create_table(TableName=other, BillingMode="PAY_PER_REQUEST", KeySchema=keys,
                     AttributeDefinitions=numbers)
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", KeySchema=keys,
        AttributeDefinitions=[*numbers, {"AttributeName": "status", "AttributeType": "S"},
                              {"AttributeName": "created_at", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "active", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                                               {"AttributeName": "created_at", "KeyType": "RANGE"}]}])
    for i in range(ITEMS):
        ddb.put_item(TableName=table, Item=_job(i))
    deep = sqs.create_queue(QueueName=f"deep-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    shallow = sqs.create_queue(QueueName=f"shallow-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    body = json.dumps({"v": 1, "project_id": 1, "job_id": 1})
    for _ in range(QUEUE_DEPTH):
        sqs.send_message(QueueUrl=deep, MessageBody=body)
    bucket = f"bench-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="log", Body=b"x" * 4000)
    key5 = {"project_id": {"N": "1"}, "job_id": {"N": "5"}}
    serial = [10**6]

    def put() -> object:
        serial[0] += 1
        return ddb.put_item(TableName=table, Item=_job(serial[0]))

    def transact() -> object:
        serial[0] += 1
        return ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": other, "Item": _job(serial[0]),
                     "ConditionExpression": "attribute_not_exists(job_id)"}},
            {"Update": {"TableName": table, "Key": key5,
                        "UpdateExpression": "SET attempts = attempts + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}])

    def delete_batch() -> object:  # a message sent and received, then deleted in a batch
        sqs.send_message(QueueUrl=shallow, MessageBody=body)
        [message] = sqs.receive_message(QueueUrl=shallow, VisibilityTimeout=600)["Messages"]
        return sqs.delete_message_batch(QueueUrl=shallow, Entries=[
            {"Id": "a", "ReceiptHandle": message["ReceiptHandle"]}])

    return {
        "GetItem": lambda: ddb.get_item(TableName=table, Key=key5, ConsistentRead=True),
        "PutItem": put,
        "UpdateItem (conditional, ALL_NEW)": lambda: ddb.update_item(
            TableName=table, Key=key5, UpdateExpression="SET #s = :s, attempts = attempts + :one",
            ConditionExpression="attribute_exists(job_id) AND #s <> :bad",
            ExpressionAttributeNames={"#s": "status"}, ReturnValues="ALL_NEW",
            ExpressionAttributeValues={":s": {"S": "pending"}, ":one": {"N": "1"},
                                       ":bad": {"S": "x"}}),
        f"Query, BETWEEN in a {ITEMS}-item partition": lambda: ddb.query(
            TableName=table, KeyConditionExpression="project_id = :p AND job_id BETWEEN :a AND :b",
            ExpressionAttributeValues={":p": {"N": "1"}, ":a": {"N": "10"}, ":b": {"N": "14"}}),
        "Query on a KEYS_ONLY index, Limit 10": lambda: ddb.query(
            TableName=table, IndexName="active", KeyConditionExpression="#s = :s", Limit=10,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "pending"}}),
        "BatchGetItem, 10 keys": lambda: ddb.batch_get_item(RequestItems={table: {"Keys": [
            {"project_id": {"N": "1"}, "job_id": {"N": str(k)}} for k in range(10)]}}),
        "TransactWriteItems (Put + Update)": transact,
        "SendMessage": lambda: sqs.send_message(QueueUrl=shallow, MessageBody=body),
        f"SendMessage, {QUEUE_DEPTH}+ queued": lambda: sqs.send_message(QueueUrl=deep,
                                                                        MessageBody=body),
        f"ReceiveMessage, {QUEUE_DEPTH}+ queued": lambda: sqs.receive_message(
            QueueUrl=deep, VisibilityTimeout=0, WaitTimeSeconds=0),
        "SendMessage + ReceiveMessage + DeleteMessageBatch": delete_batch,
        "PutObject, 4 KB": lambda: s3.put_object(Bucket=bucket, Key="logs/x", Body=b"y" * 4000),
        "GetObject, 4 KB": lambda: s3.get_object(Bucket=bucket, Key="log")["Body"].read(),
    }


def measure(servers: dict[str, Emulator], calls: int, rounds: int) -> dict[tuple[str, str], float]:
    """(server name, operation) -> median server CPU ms per call over `rounds` batches of
    `calls` calls, the servers' order alternating each round."""
    ops = {name: operations(server.url) for name, server in servers.items()}
    names = list(servers)
    samples: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for op in ops[names[0]]:
            for name in names if r % 2 == 0 else names[::-1]:
                call = ops[name][op]
                for _ in range(3):  # warm: connections, caches
                    call()
                before = server_cpu_s(servers[name])
                for _ in range(calls):
                    call()
                used = server_cpu_s(servers[name]) - before
                samples.setdefault((name, op), []).append(used / calls * 1000)
    return {key: statistics.median(values) for key, values in samples.items()}


def run(calls: int, rounds: int, work: Path) -> list[Row]:
    load = os.getloadavg()[0]
    store = start_store(log_path=str(work / "store.log"))
    moto = start_moto(log_path=str(work / "moto.log"))
    try:
        medians = measure({"store": store, "moto": moto}, calls, rounds)
    finally:
        store.stop()
        moto.stop()
    ops = [op for name, op in medians if name == "store"]
    rows = [Row(f"{op}: server CPU ms per call (median of {rounds} x {calls})",
                f"{medians[('store', op)]:.2f}",
                f"moto: {medians[('moto', op)]:.2f} "
                f"({medians[('store', op)] / max(medians[('moto', op)], 1e-9):.2f}x)")
            for op in ops]
    rows.append(Row("load average at the start (1 min)", f"{load:.2f}", ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_ops", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 calls x 1 round (the test suite)")
    parser.add_argument("--calls", type=int, default=150, help="calls per batch (default 150)")
    parser.add_argument("--rounds", type=int, default=3, help="batches per server (default 3)")
    args = parser.parse_args(argv)
    calls, rounds = (20, 1) if args.quick else (args.calls, args.rounds)
    with tempfile.TemporaryDirectory(prefix="a6hub-bench-store-ops-") as tmp:
        rows = run(calls, rounds, Path(tmp))
    print(format_table(rows, "AWS calls: server CPU per call, the store next to moto's own server"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
