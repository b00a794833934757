"""Presigned large uploads: URL -> straight to S3 -> ObjectCreated notification -> the app's
handler registers the file, or removes the object and records why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from devstack import events
from devstack.emulator import Emulator
from tests.conftest import Api, UserCtx, add_member, make_file, make_project
from tests.settings_override import settings_env

HDL = b"module big(input clk);\n  reg [7:0] r;\n  always @(posedge clk) r <= r + 1;\nendmodule\n"


@pytest.fixture(scope="module")
def delivery(emulator: Emulator, chalice_app: Any) -> Iterator[str]:
    """The emulator's bucket notifies the upload-events queue, as infra/resources.yaml says."""
    assert events.apply_notifications("test") is True
    url = events.events_queue_url("test")
    boto3.client("sqs").purge_queue(QueueUrl=url)  # drop s3:TestEvent
    yield url


def deliver(queue_url: str) -> int:
    """What `python -m devstack events` does in make run, until the queue is empty."""
    handler = events.app_handler()
    total = 0
    while (count := events.deliver_once(queue_url, handler)) > 0:
        total += count
    return total


def _s3() -> Any:
    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}))


def _objects(prefix: str) -> list[str]:
    import os

    listing = _s3().list_objects_v2(Bucket=os.environ["A6HUB_BUCKET"], Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def _upload_url(api: Api, user: UserCtx, project_id: str, path: str, **extra: Any) -> Any:
    return api.post(f"/api/v1/projects/{project_id}/files/upload-url", token=user.token,
                    json_body={"filename": path.rsplit("/", 1)[-1], "filepath": path, **extra})


def _post(grant: dict[str, Any], body: bytes) -> int:
    reply = requests.post(grant["url"], data=grant["fields"], files={"file": ("f", body)}, timeout=30)
    return reply.status_code


def _status(api: Api, user: UserCtx, project_id: str, upload_id: str) -> dict[str, Any]:
    reply = api.get(f"/api/v1/projects/{project_id}/files/uploads/{upload_id}", token=user.token)
    assert reply.status == 200, reply.body
    return dict(reply.json)


def test_presigned_upload_becomes_a_file(api: Api, owner: UserCtx, delivery: str) -> None:
    # GIVEN an upload URL for a path of the owner's project
    project = make_project(api, owner)
    grant = _upload_url(api, owner, project["id"], "rtl/big.v", size_bytes=len(HDL))
    assert grant.status == 201, grant.body
    upload = grant.json
    assert upload["method"] == "POST" and upload["fields"]["key"].startswith(f"uploads/{project['id']}/")
    # WHEN the client posts the body straight to S3
    assert _post(upload, HDL) in (200, 201, 204)
    assert _status(api, owner, project["id"], upload["upload_id"])["status"] == "pending"
    # AND S3's notification reaches the handler
    assert deliver(delivery) == 1
    # THEN the file is in the files API with its content, and the upload object is gone
    state = _status(api, owner, project["id"], upload["upload_id"])
    assert state["status"] == "registered" and state["file_id"]
    got = api.get(f"/api/v1/projects/{project['id']}/files/{state['file_id']}", token=owner.token)
    assert got.status == 200 and got.json["content"] == HDL.decode()
    assert got.json["filepath"] == "rtl/big.v" and got.json["size_bytes"] == len(HDL)
    assert api.get(f"/api/v1/projects/{project['id']}", token=owner.token).json["file_count"] == 1
    assert _objects(f"uploads/{project['id']}/") == []


def test_replayed_event_and_a_second_body_do_not_register_twice(
        api: Api, owner: UserCtx, delivery: str) -> None:
    # GIVEN an upload whose notification we hold on to
    project = make_project(api, owner)
    upload = _upload_url(api, owner, project["id"], "rtl/once.v").json
    assert _post(upload, HDL) in (200, 201, 204)
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=delivery, MaxNumberOfMessages=10)["Messages"]
    event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                          "body": m["Body"], "attributes": {}, "messageAttributes": {},
                          "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                          "eventSourceARN": delivery, "awsRegion": "us-east-1"} for m in messages]}
    handler = events.app_handler()
    # WHEN the same event is delivered twice (SQS is at least once)
    handler(event, None)
    handler(event, None)
    for m in messages:
        sqs.delete_message(QueueUrl=delivery, ReceiptHandle=m["ReceiptHandle"])
    # AND the client posts another body with the same, still valid, URL
    assert _post(upload, b"module other; endmodule\n") in (200, 201, 204)
    deliver(delivery)
    # THEN there is one file with the first body, and no stray upload object
    listed = api.get(f"/api/v1/projects/{project['id']}/files", token=owner.token).json
    assert [f["filepath"] for f in listed] == ["rtl/once.v"]
    state = _status(api, owner, project["id"], upload["upload_id"])
    assert (state["status"], state["file_id"]) == ("registered", listed[0]["id"])
    assert api.get(f"/api/v1/projects/{project['id']}", token=owner.token).json["file_count"] == 1
    got = api.get(f"/api/v1/projects/{project['id']}/files/{listed[0]['id']}", token=owner.token)
    assert got.json["content"] == HDL.decode()
    assert _objects(f"uploads/{project['id']}/") == []


def test_oversized_upload_is_rejected_removed_and_explained(
        api: Api, owner: UserCtx, delivery: str) -> None:
    # GIVEN an upload URL issued under a 64-byte upload limit
    project = make_project(api, owner)
    with settings_env(A6HUB_MAX_UPLOAD_BYTES=64):
        assert _upload_url(api, owner, project["id"], "rtl/huge.v", size_bytes=65).status == 413
        upload = _upload_url(api, owner, project["id"], "rtl/huge.v").json
        assert upload["max_bytes"] == 64
    # WHEN a bigger body gets into S3 anyway (AWS refuses it by the POST policy; the emulator
    # does not check the policy) and is reported
    assert _post(upload, HDL) in (200, 201, 204)
    deliver(delivery)
    # THEN it is not a file, the object is removed, and the upload says why
    state = _status(api, owner, project["id"], upload["upload_id"])
    assert state["status"] == "rejected" and "over the limit of 64 bytes" in state["reason"]
    assert api.get(f"/api/v1/projects/{project['id']}/files", token=owner.token).json == []
    assert _objects(f"uploads/{project['id']}/") == []


def test_objects_no_upload_explains_are_removed(api: Api, owner: UserCtx, delivery: str) -> None:
    import os

    from chalicelib.ids import new_number_id

    # GIVEN objects under uploads/ that no upload URL was issued for: an unknown id, a bad key,
    # and a real upload id under another project's prefix
    project = make_project(api, owner)
    other = make_project(api, owner)
    real = _upload_url(api, owner, project["id"], "rtl/real.v").json
    bucket = os.environ["A6HUB_BUCKET"]
    strays = [f"uploads/{project['id']}/{new_number_id()}", "uploads/not-a-project-key",
              f"uploads/{other['id']}/{real['upload_id']}"]
    for key in strays:
        _s3().put_object(Bucket=bucket, Key=key, Body=HDL)
    # WHEN their notifications are handled
    assert deliver(delivery) == len(strays)
    # THEN every one is removed, nothing is registered, and the real upload still waits
    for key in strays:
        assert _objects(key) == []
    for pid in (project["id"], other["id"]):
        assert api.get(f"/api/v1/projects/{pid}/files", token=owner.token).json == []
    assert _status(api, owner, project["id"], real["upload_id"])["status"] == "pending"


def test_upload_urls_need_write_access_and_a_free_valid_path(
        api: Api, owner: UserCtx, editor: UserCtx, viewer: UserCtx, stranger: UserCtx,
        delivery: str) -> None:
    # GIVEN a project with an editor, a viewer and a file at rtl/top.v
    project = make_project(api, owner)
    add_member(api, owner, project["id"], editor, "editor")
    add_member(api, owner, project["id"], viewer, "viewer")
    make_file(api, owner, project["id"], "rtl/top.v")
    # THEN an editor gets a URL; a viewer, a stranger and an anonymous caller do not
    assert _upload_url(api, editor, project["id"], "rtl/e.v").status == 201
    assert _upload_url(api, viewer, project["id"], "rtl/v.v").status in (403, 404)
    assert _upload_url(api, stranger, project["id"], "rtl/s.v").status == 404
    anonymous = api.post(f"/api/v1/projects/{project['id']}/files/upload-url",
                         json_body={"filename": "a.v", "filepath": "rtl/a.v"})
    assert anonymous.status == 401
    # AND a taken path, a path that climbs out and unknown fields are refused
    assert _upload_url(api, owner, project["id"], "rtl/top.v").status == 409
    assert _upload_url(api, owner, project["id"], "../etc/passwd").status in (400, 422)
    assert _upload_url(api, owner, project["id"], "rtl/x.v", acl="public-read").status == 422
    # AND a stranger cannot read an upload's state
    upload = _upload_url(api, owner, project["id"], "rtl/o.v").json
    assert api.get(f"/api/v1/projects/{project['id']}/files/uploads/{upload['upload_id']}",
                   token=stranger.token).status == 404


def test_an_uploader_who_lost_access_before_the_event_is_refused(
        api: Api, owner: UserCtx, editor: UserCtx, delivery: str) -> None:
    # GIVEN an editor holding an upload URL
    project = make_project(api, owner)
    add_member(api, owner, project["id"], editor, "editor")
    upload = _upload_url(api, editor, project["id"], "rtl/late.v").json
    # WHEN the owner removes them, and then the body arrives
    removed = api.delete(f"/api/v1/projects/{project['id']}/members/{editor.id}", token=owner.token)
    assert removed.status == 204, removed.body
    assert _post(upload, HDL) in (200, 201, 204)
    deliver(delivery)
    # THEN nothing is registered and the object is removed
    state = _status(api, owner, project["id"], upload["upload_id"])
    assert state["status"] == "rejected" and state["reason"]
    assert api.get(f"/api/v1/projects/{project['id']}/files", token=owner.token).json == []
    assert _objects(f"uploads/{project['id']}/") == []


def test_the_handler_reads_only_object_created_records_of_our_bucket(delivery: str) -> None:
    from chalicelib.services import uploads

    # GIVEN notifications that are not ours to act on
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    other_bucket = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "someone-else"}, "object": {"key": "uploads/x/y"}}}]})
    removal = json.dumps({"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {
        "bucket": {"name": "a6hub-test-data"}, "object": {"key": "uploads/x/y"}}}]})
    # THEN the handler does nothing with them
    for body in (test_event, other_bucket, removal, "not json"):
        assert uploads.handle_notification(body) == []


@pytest.mark.integration
@pytest.mark.slow
def test_make_runs_event_dispatcher_process_registers_uploads(
        api: Api, owner: UserCtx, delivery: str, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    # GIVEN the dispatcher `make run` starts, as its own process
    log = tmp_path / "events.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "devstack", "events", "--stage", "test"],
                                   cwd=ROOT, env={**os.environ}, stdout=out, stderr=subprocess.STDOUT)
    try:
        # WHEN a presigned upload arrives
        project = make_project(api, owner)
        upload = _upload_url(api, owner, project["id"], "rtl/dispatched.v").json
        assert _post(upload, HDL) in (200, 201, 204)
        # THEN the process hands it to the app's handler and the file appears
        deadline = time.monotonic() + 60
        while _status(api, owner, project["id"], upload["upload_id"])["status"] in ("pending",
                                                                               "registering"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert _status(api, owner, project["id"], upload["upload_id"])["status"] == "registered"
    finally:
        process.terminate()
        process.wait(timeout=15)
