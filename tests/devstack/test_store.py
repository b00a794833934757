"""The embedded store under concurrent writers, over real HTTP: every acknowledged write stays.

On moto's own server (`A6HUB_TEST_EMULATOR=moto`) these fail: a transaction that fails its
condition restores a copy of whole tables and wipes what other writers committed meanwhile
(issue 11); on the store (devstack/store.py) they pass."""

from __future__ import annotations

import http.client
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import Api, UserCtx, add_member, make_file, make_project, make_user

pytestmark = pytest.mark.slow

WRITERS = 20
ROUNDS = 25


def bearer(user: UserCtx, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}", **headers}


def in_parallel(work: Callable[[int], Any], count: int) -> list[Any]:
    """Run work(0..count-1) on `count` threads started together; returns their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    return results


def commit_count(base: str, user: UserCtx, pid: str) -> int:
    """How many commits `main` has, following the Link header page by page."""
    url = f"{base}/api/v1/projects/{pid}/git/commits?limit=100"
    count = 0
    while url:
        reply = requests.get(url, headers=bearer(user), timeout=60)
        assert reply.status_code == 200, reply.text
        count += len(reply.json())
        link = reply.headers.get("Link")
        url = link[1:link.index(">")] if link else ""
        if url.startswith("/"):
            url = base + url
    return count


@pytest.fixture()
def scratch_table(emulator: Any) -> Iterator[str]:
    ddb = boto3.client("dynamodb")
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    yield name
    ddb.delete_table(TableName=name)


def test_failed_transactions_do_not_undo_other_writers(scratch_table: str) -> None:
    # GIVEN one counter per writer and a guard item whose condition half the transactions fail
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=scratch_table, Item={"k": {"S": "guard"}, "open": {"BOOL": False}})

    def writer(i: int) -> int:
        client = boto3.client("dynamodb")
        acknowledged = 0
        for k in range(ROUNDS):
            bump = {"Update": {"TableName": scratch_table, "Key": {"k": {"S": f"w{i}"}},
                               "UpdateExpression": "ADD n :one",
                               "ExpressionAttributeValues": {":one": {"N": "1"}}}}
            check = {"ConditionCheck": {"TableName": scratch_table, "Key": {"k": {"S": "guard"}},
                                        "ConditionExpression": "#o = :t",
                                        "ExpressionAttributeNames": {"#o": "open"},
                                        "ExpressionAttributeValues": {":t": {"BOOL": True}}}}
            # Every other transaction also checks the closed guard: it must fail as a whole.
            items = [bump, check] if k % 2 else [bump]
            try:
                client.transact_write_items(TransactItems=items)
                acknowledged += 1
            except ClientError as e:
                assert e.response["Error"]["Code"] == "TransactionCanceledException", e
                assert k % 2, "a transaction without a failing condition was cancelled"
        return acknowledged

    # WHEN 20 writers run 25 transactions each at once
    acks = in_parallel(writer, WRITERS)

    # THEN every counter equals its writer's acknowledged transactions: none lost, none extra
    for i, count in enumerate(acks):
        item = ddb.get_item(TableName=scratch_table, Key={"k": {"S": f"w{i}"}})["Item"]
        assert int(item["n"]["N"]) == count == (ROUNDS + 1) // 2


def test_twenty_writers_with_if_match_lose_no_acknowledged_put(live_server: str, api: Api,
                                                               owner: UserCtx) -> None:
    # GIVEN one file, and 20 writers that each read its ETag and PUT with If-Match, 25 times
    pid = make_project(api, owner)["id"]
    fid = make_file(api, owner, pid, "rtl/hot.v", "// 0\n")["id"]
    url = f"{live_server}/api/v1/projects/{pid}/files/{fid}"
    commits_before = commit_count(live_server, owner, pid)

    def writer(i: int) -> list[tuple[str, str]]:
        session = requests.Session()
        acknowledged = []
        for k in range(ROUNDS):
            etag = session.get(url, headers=bearer(owner), timeout=60).headers["ETag"]
            body = f"// writer {i} round {k}\n"
            reply = session.put(url, json={"content": body}, timeout=60,
                                headers=bearer(owner, **{"If-Match": etag}))
            assert reply.status_code in (200, 412), reply.text
            if reply.status_code == 200:
                acknowledged.append((reply.headers["ETag"], body))
        return acknowledged

    # WHEN they all run at once
    acks = [a for result in in_parallel(writer, WRITERS) for a in result]

    # THEN each acknowledged PUT made its own version, the version rose by exactly that many,
    # the content is the one acknowledged with the newest version, and history has each of them
    assert acks, "no PUT succeeded"
    versions = [int(etag.strip('"')) for etag, _ in acks]
    assert len(set(versions)) == len(versions), "a version was returned to two writers"
    now = requests.get(url, headers=bearer(owner), timeout=60)
    assert now.json()["version"] == 1 + len(acks) == max(versions)
    assert now.json()["content"] == dict(acks)[f'"{max(versions)}"']
    assert commit_count(live_server, owner, pid) - commits_before == len(acks)


def test_concurrent_project_and_member_updates_all_stay(live_server: str, api: Api,
                                                        owner: UserCtx) -> None:
    # GIVEN 20 projects with a member each, a file edited with a stale If-Match, and a file
    # all writers edit at once (the losers' transactions fail on the files and projects tables)
    projects = [make_project(api, owner)["id"] for _ in range(WRITERS)]
    members = [make_user(api) for _ in range(WRITERS)]
    for pid, member in zip(projects, members, strict=True):
        add_member(api, owner, pid, member, "viewer")
    shared = make_project(api, owner)["id"]
    stale = make_file(api, owner, shared, "rtl/shared.v", "// v1\n")["id"]
    stale_url = f"{live_server}/api/v1/projects/{shared}/files/{stale}"
    requests.put(stale_url, json={"content": "// v2\n"}, headers=bearer(owner), timeout=60)

    hot = make_file(api, owner, shared, "rtl/hot.v", "// 0\n")["id"]
    hot_url = f"{live_server}/api/v1/projects/{shared}/files/{hot}"

    def writer(i: int) -> tuple[str, str]:
        session = requests.Session()
        pid, member = projects[i], members[i]
        last_description = last_role = ""
        for k in range(ROUNDS):
            description, role = f"writer {i} round {k}", ("editor", "viewer")[k % 2]
            reply = session.put(f"{live_server}/api/v1/projects/{pid}", timeout=60,
                                json={"description": description}, headers=bearer(owner))
            assert reply.status_code == 200, reply.text
            last_description = description
            reply = session.put(f"{live_server}/api/v1/projects/{pid}/members/{member.id}",
                                json={"role": role}, headers=bearer(owner), timeout=60)
            assert reply.status_code == 200, reply.text
            last_role = role
            reply = session.put(stale_url, json={"content": f"// {i} {k}\n"}, timeout=60,
                                headers=bearer(owner, **{"If-Match": '"1"'}))
            assert reply.status_code == 412, reply.text
            # Writers racing on one file: the losers' transactions fail their condition.
            etag = session.get(hot_url, headers=bearer(owner), timeout=60).headers["ETag"]
            reply = session.put(hot_url, json={"content": f"// {i} {k}\n"}, timeout=60,
                                headers=bearer(owner, **{"If-Match": etag}))
            assert reply.status_code in (200, 412), reply.text
        return last_description, last_role

    # WHEN each writer updates its project and its member while the failed PUTs run
    last = in_parallel(writer, WRITERS)

    # THEN every project and every member holds what was acknowledged last for it
    for pid, member, (description, role) in zip(projects, members, last, strict=True):
        got = requests.get(f"{live_server}/api/v1/projects/{pid}", headers=bearer(owner),
                           timeout=60).json()
        assert got["description"] == description
        listed = requests.get(f"{live_server}/api/v1/projects/{pid}/members",
                              headers=bearer(owner), timeout=60).json()
        assert {m["user_id"]: m["role"] for m in listed}[member.id] == role


@pytest.mark.skipif(os.environ.get("A6HUB_TEST_EMULATOR") == "moto",
                    reason="moto's own server closes every connection (the store keeps them)")
def test_one_connection_carries_several_requests_bodies_and_all(emulator: Any) -> None:
    # GIVEN one HTTP connection to the store
    port = int(emulator.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-amz-json-1.0",
               "X-Amz-Target": "DynamoDB_20120810.ListTables",
               "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/"
                                "dynamodb/aws4_request, SignedHeaders=host, Signature=x"}
    sockets = []
    try:
        # WHEN three requests with a body go over it, back to back
        for _ in range(3):
            connection.request("POST", "/", body=b"{}", headers=headers)
            reply = connection.getresponse()
            body = reply.read()
            sockets.append(connection.sock)
            # THEN each is answered, and the store does not close the connection
            assert reply.status == 200, body
            assert "TableNames" in json.loads(body)
            assert (reply.getheader("Connection") or "").lower() != "close"
    finally:
        connection.close()
    # AND all three used the same socket (http.client reconnects silently otherwise)
    assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
