"""Races over real HTTP (the local server, 2 worker processes): exactly one of two conflicting requests
wins, and what is stored is the winner's."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import Api, UserCtx, make_file, make_project, unique

pytestmark = pytest.mark.slow


def race(*calls: Callable[[], requests.Response]) -> list[requests.Response]:
    """Run the calls at the same instant, one thread each; return their responses in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(isinstance(r, requests.Response) for r in results), results
    return results


def bearer(user: UserCtx, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}", **headers}


@pytest.mark.parametrize("round_", range(3))
def test_two_registrations_with_one_email(live_server: str, round_: int) -> None:
    # GIVEN two people registering the same email (in different capitals) at the same instant
    email = f"{unique('race')}@example.test"

    def register(username: str, address: str, password: str) -> Callable[[], requests.Response]:
        return lambda: requests.post(f"{live_server}/api/v1/auth/register", timeout=30, json={
            "email": address, "username": username, "password": password})

    first, second = unique("ra"), unique("rb")
    replies = race(register(first, email, "password one"),
                   register(second, email.upper(), "password two"))
    # THEN both are answered alike (a taken email is not confirmed: issue 10, finding 9) and
    # exactly one account exists: one password logs in, the other does not
    assert [r.status_code for r in replies] == [201, 201], [r.text for r in replies]
    logins = [requests.post(f"{live_server}/api/v1/auth/login", timeout=30,
                            json={"email": email, "password": p}).status_code
              for p in ("password one", "password two")]
    assert sorted(logins) == [200, 401], logins
    winner = logins.index(200)
    password = ["password one", "password two"][winner]
    # AND only the winner's password logs in; the loser's username stayed free
    login = requests.post(f"{live_server}/api/v1/auth/login", timeout=30,
                          json={"email": email, "password": password})
    assert login.status_code == 200
    loser_name = [first, second][1 - winner]
    again = requests.post(f"{live_server}/api/v1/auth/register", timeout=30, json={
        "email": f"{loser_name}@example.test", "username": loser_name, "password": "password x"})
    assert again.status_code == 201


def test_two_registrations_with_one_username(live_server: str) -> None:
    name = unique("same")
    replies = race(*[
        (lambda e=e: requests.post(f"{live_server}/api/v1/auth/register", timeout=30, json={
            "email": e, "username": name, "password": "a passphrase"}))
        for e in (f"{unique('x')}@example.test", f"{unique('y')}@example.test")])
    assert sorted(r.status_code for r in replies) == [201, 400], [r.text for r in replies]


@pytest.fixture(scope="module")
def s3(emulator: Any) -> Any:
    return boto3.client("s3", endpoint_url=emulator.url)


def body_objects(s3: Any, pid: str, fid: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=os.environ["A6HUB_BUCKET"],
                                Prefix=f"projects/{pid}/files/{fid}/")
    return [o["Key"] for o in listed.get("Contents", [])]


@pytest.mark.parametrize("round_", range(3))
def test_two_puts_with_one_if_match(live_server: str, api: Api, s3: Any, owner: UserCtx,
                                    editor: UserCtx, round_: int) -> None:
    # GIVEN a file at version 1, and two people editing it from that version
    project = make_project(api, owner)
    pid = project["id"]
    api.post(f"/api/v1/projects/{pid}/members", token=owner.token,
             json_body={"username": editor.username, "role": "editor"})
    fid = make_file(api, owner, pid, "rtl/shared.v", "original\n")["id"]
    url = f"{live_server}/api/v1/projects/{pid}/files/{fid}"
    contents = ["owner's edit\n", "editor's edit\n"]
    # WHEN both save at the same instant with If-Match: "1"
    replies = race(
        lambda: requests.put(url, timeout=30, json={"content": contents[0]},
                             headers=bearer(owner, **{"If-Match": '"1"'})),
        lambda: requests.put(url, timeout=30, json={"content": contents[1]},
                             headers=bearer(editor, **{"If-Match": '"1"'})),
    )
    # THEN exactly one wins, the other gets 412, and the file holds the winner's content
    assert sorted(r.status_code for r in replies) == [200, 412], [r.text for r in replies]
    winner = next(i for i, r in enumerate(replies) if r.status_code == 200)
    assert replies[winner].headers["ETag"] == '"2"'
    got = requests.get(url, timeout=30, headers=bearer(owner))
    assert got.json()["content"] == contents[winner]
    assert got.json()["version"] == 2 and got.headers["ETag"] == '"2"'
    assert got.json()["size_bytes"] == len(contents[winner])
    project_now = requests.get(f"{live_server}/api/v1/projects/{pid}", timeout=30,
                               headers=bearer(owner)).json()
    assert project_now["total_bytes"] == len(contents[winner])
    # AND the loser's body did not stay behind in S3
    assert len(body_objects(s3, pid, fid)) == 1


def test_two_renames_with_one_if_match(live_server: str, api: Api, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    fid = make_file(api, owner, pid, "rtl/a.v")["id"]
    url = f"{live_server}/api/v1/projects/{pid}/files/{fid}"
    targets = ["rtl/left.v", "rtl/right.v"]
    replies = race(*[
        (lambda t=t: requests.put(url, timeout=30, json={"filepath": t},
                                  headers=bearer(owner, **{"If-Match": '"1"'})))
        for t in targets])
    assert sorted(r.status_code for r in replies) == [200, 412], [r.text for r in replies]
    winner = next(i for i, r in enumerate(replies) if r.status_code == 200)
    listed = requests.get(f"{live_server}/api/v1/projects/{pid}/files", timeout=30,
                          headers=bearer(owner)).json()
    assert [f["filepath"] for f in listed] == [targets[winner]]
    # The loser's path was never taken: a new file can be created there.
    make_file(api, owner, pid, targets[1 - winner])


def test_two_creates_at_one_path(live_server: str, api: Api, s3: Any, owner: UserCtx) -> None:
    pid = make_project(api, owner)["id"]
    url = f"{live_server}/api/v1/projects/{pid}/files"
    replies = race(*[
        (lambda c=c: requests.post(url, timeout=30, headers=bearer(owner), json={
            "filename": "top.v", "filepath": "rtl/top.v", "content": c}))
        for c in ("first\n", "second!\n")])
    assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
    project = requests.get(f"{live_server}/api/v1/projects/{pid}", timeout=30,
                           headers=bearer(owner)).json()
    winner = next(r for r in replies if r.status_code == 201).json()
    assert project["file_count"] == 1 and project["total_bytes"] == winner["size_bytes"]
    listed = s3.list_objects_v2(Bucket=os.environ["A6HUB_BUCKET"], Prefix=f"projects/{pid}/")
    assert listed["KeyCount"] == 1
