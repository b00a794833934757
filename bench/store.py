"""The embedded store (devstack/store.py) next to moto's own server, in the same run.

`python -m bench.store [--quick]` starts both itself and prints one table:

- correctness: 20 threads x 25 TransactWriteItems, every other one failing a ConditionCheck;
  acknowledged increments lost (or extra) and HTTP 500s;
- p50 GetItem / Query / TransactWriteItems at 10 and 10,000 items in the table;
- RSS growth per 1,000 transactions (the store: 10,000 transactions; moto: 1,000, because it
  grows by gigabytes and the machine is shared);
- snapshot time and size, and start-up time (restore) with a state the size of 1,000 projects
  and 10,000 files (11,000 records, 20,000 objects: bodies and git blobs), next to an empty
  moto's start-up (moto keeps nothing).

moto's side holds a few GB by the end (each of its transactions at 10,000 items keeps a copy
of the table); the full run takes 20-40 minutes on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bench.report import Row, format_table, ms
from devstack.emulator import Emulator, start_moto, start_store

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@dataclass(frozen=True)
class Sizes:
    writers: int
    rounds: int
    small: int
    large: int
    samples: int
    store_transactions: int
    moto_transactions: int
    projects: int
    files: int


FULL = Sizes(writers=20, rounds=25, small=10, large=10_000, samples=100,
             store_transactions=10_000, moto_transactions=1_000, projects=1_000, files=10_000)
QUICK = Sizes(writers=4, rounds=5, small=10, large=200, samples=20,
              store_transactions=200, moto_transactions=100, projects=20, files=100)
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, max_pool_connections=50)


def _ddb(url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=url, config=_CONFIG)


def _table(url: str, items: int = 0) -> str:
    ddb = _ddb(url)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    _fill(ddb, name, items)
    return name


def _fill(ddb: Any, name: str, items: int, partitions: int = 100) -> None:
    pad = "x" * 200
    rows = [{"PutRequest": {"Item": {"pk": {"S": f"p{i % partitions}"}, "sk": {"S": f"s{i:06d}"},
                                     "pad": {"S": pad}}}} for i in range(items)]
    for start in range(0, len(rows), 25):
        ddb.batch_write_item(RequestItems={name: rows[start:start + 25]})


def lost_updates(url: str, sizes: Sizes) -> tuple[int, int]:
    """(acknowledged increments lost or extra, HTTP 500s) for writers x rounds transactions."""
    name = _table(url)
    ddb = _ddb(url)
    ddb.put_item(TableName=name, Item={"pk": {"S": "guard"}, "sk": {"S": "-"},
                                       "open": {"BOOL": False}})
    acks = [0] * sizes.writers
    errors = [0]
    barrier = threading.Barrier(sizes.writers)

    def writer(i: int) -> None:
        client = _ddb(url)
        barrier.wait()
        for k in range(sizes.rounds):
            items: list[dict[str, Any]] = [{"Update": {
                "TableName": name, "Key": {"pk": {"S": "w"}, "sk": {"S": str(i)}},
                "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}}]
            if k % 2:
                items.append({"ConditionCheck": {
                    "TableName": name, "Key": {"pk": {"S": "guard"}, "sk": {"S": "-"}},
                    "ConditionExpression": "#o = :t", "ExpressionAttributeNames": {"#o": "open"},
                    "ExpressionAttributeValues": {":t": {"BOOL": True}}}})
            try:
                client.transact_write_items(TransactItems=items)
                acks[i] += 1
            except ClientError as e:
                if e.response["ResponseMetadata"]["HTTPStatusCode"] >= 500:
                    errors[0] += 1

    with ThreadPoolExecutor(sizes.writers) as pool:
        list(pool.map(writer, range(sizes.writers)))
    wrong = 0
    for i in range(sizes.writers):
        item = ddb.get_item(TableName=name, Key={"pk": {"S": "w"}, "sk": {"S": str(i)}}).get("Item")
        wrong += abs((int(item["n"]["N"]) if item else 0) - acks[i])
    return wrong, errors[0]


def _p50(call: Callable[[], object], samples: int) -> float:
    for _ in range(3):
        call()
    seconds = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def latencies(url: str, items: int, samples: int) -> tuple[float, float, float]:
    """p50 seconds of GetItem, a one-page Query and a two-item TransactWriteItems."""
    name = _table(url, items)
    ddb = _ddb(url)
    key = {"pk": {"S": "p1"}, "sk": {"S": "s000001"}}
    counter = iter(range(10**9))

    def transact() -> None:
        n = next(counter)
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "t"}, "sk": {"S": str(n)}}}},
            {"Update": {"TableName": name, "Key": key, "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}])

    get = _p50(lambda: ddb.get_item(TableName=name, Key=key), samples)
    query = _p50(lambda: ddb.query(TableName=name, KeyConditionExpression="pk = :p", Limit=20,
                                   ExpressionAttributeValues={":p": {"S": "p1"}}), samples)
    return get, query, _p50(transact, samples)


def rss_mb(emulator: Emulator) -> float:
    assert emulator.process is not None
    for line in Path(f"/proc/{emulator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def memory_per_1k(emulator: Emulator, transactions: int, items: int = 100) -> float:
    """RSS growth in MB per 1,000 TransactWriteItems on a table of `items` items."""
    name = _table(emulator.url, items)
    ddb = _ddb(emulator.url)
    before = rss_mb(emulator)

    def some(start: int) -> None:
        client = _ddb(emulator.url)
        for n in range(start, transactions, 4):
            client.transact_write_items(TransactItems=[{"Update": {
                "TableName": name, "Key": {"pk": {"S": f"p{n % 100}"}, "sk": {"S": f"s{n % items:06d}"}},
                "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": str(n)}}}}])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(some, range(4)))
    del ddb
    return (rss_mb(emulator) - before) / transactions * 1000


def large_state(url: str, projects: int, files: int) -> None:
    """Records and objects the size of `projects` projects with `files` files (1 KB each)."""
    ddb = _ddb(url)
    s3 = boto3.client("s3", endpoint_url=url, config=Config(s3={"addressing_style": "path"}))
    table = _table(url)
    _fill(ddb, table, projects + files)
    s3.create_bucket(Bucket="bench-state")
    body = b"module m; endmodule\n" * 50

    def put(n: int) -> None:
        s3.put_object(Bucket="bench-state", Key=f"projects/p{n % projects}/files/{n}", Body=body)
        s3.put_object(Bucket="bench-state", Key=f"git/p{n % projects}/objects/{n:040d}", Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(files)))


def startup_with_state(sizes: Sizes, work: Path) -> dict[str, float]:
    """Fill a durable store, save, stop; then time a start that restores it."""
    state = work / "state"
    first = start_store(log_path=str(work / "store-fill.log"), state_dir=state, save_every=3600)
    try:
        large_state(first.url, sizes.projects, sizes.files)
        import requests

        saved = requests.post(f"{first.url}/_a6hub/store/save", timeout=600).json()["last_save"]
    finally:
        first.stop()
    started = time.monotonic()
    again = start_store(log_path=str(work / "store-restore.log"), state_dir=state)
    up = time.monotonic() - started
    again.stop()
    started = time.monotonic()
    empty = start_store(log_path=str(work / "store-empty.log"))
    up_empty = time.monotonic() - started
    empty.stop()
    started = time.monotonic()
    moto = start_moto(log_path=str(work / "moto-empty.log"))
    up_moto = time.monotonic() - started
    moto.stop()
    return {"save_locked_s": saved["locked_s"], "save_total_s": saved["total_s"],
            "bytes": saved["bytes"], "startup_s": up, "startup_empty_s": up_empty,
            "startup_moto_s": up_moto}


def run(sizes: Sizes, work: Path) -> list[Row]:
    rows: list[Row] = []
    store = start_store(log_path=str(work / "store.log"))
    moto = start_moto(log_path=str(work / "moto.log"))
    try:
        wrong_s, errors_s = lost_updates(store.url, sizes)
        wrong_m, errors_m = lost_updates(moto.url, sizes)
        label = f"{sizes.writers} writers x {sizes.rounds} transactions: updates lost, HTTP 500s"
        rows.append(Row(label, f"{wrong_s}, {errors_s}", f"moto: {wrong_m}, {errors_m}", "0, 0",
                        wrong_s == 0 and errors_s == 0))
        for items in (sizes.small, sizes.large):
            s = latencies(store.url, items, sizes.samples)
            m = latencies(moto.url, items, sizes.samples)
            rows.append(Row(f"p50 Get / Query / Transact ms at {items:,} items",
                            " / ".join(ms(v) for v in s), "moto: " + " / ".join(ms(v) for v in m)))
        grow_s = memory_per_1k(store, sizes.store_transactions)
        grow_m = memory_per_1k(moto, sizes.moto_transactions)
        rows.append(Row(f"RSS growth MB per 1k transactions (store: {sizes.store_transactions:,},"
                        f" moto: {sizes.moto_transactions:,}; 100 items)",
                        f"{grow_s:.1f}", f"moto: {grow_m:.1f}"))
    finally:
        store.stop()
        moto.stop()
    big = startup_with_state(sizes, work)
    rows.append(Row(f"snapshot of {sizes.projects:,} projects / {sizes.files:,} files: "
                    "locked s, total s, MB",
                    f"{big['save_locked_s']:.2f}, {big['save_total_s']:.2f}, "
                    f"{big['bytes'] / 1e6:.1f}", "moto: keeps nothing"))
    rows.append(Row("start-up s with that state (restore) / empty",
                    f"{big['startup_s']:.1f} / {big['startup_empty_s']:.1f}",
                    f"moto empty: {big['startup_moto_s']:.1f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the test suite)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="a6hub-bench-store-") as tmp:
        rows = run(sizes, Path(tmp))
    print(format_table(rows, "embedded store (devstack/store.py) next to moto server, same run"))
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
