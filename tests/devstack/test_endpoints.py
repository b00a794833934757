"""Nothing assumes one AWS endpoint: the app with S3 on its own emulator process (as MinIO is
beside LocalStack) keeps file bodies there and records in DynamoDB on the other."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from devstack import bootstrap
from devstack.emulator import Emulator, start_store
from tests.conftest import serving_api


@pytest.fixture(scope="module")
def s3_emulator(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A second moto server, standing in for MinIO: S3 only is used there."""
    emu = start_store(log_path=str(tmp_path_factory.mktemp("s3emu") / "moto.log"))
    yield emu
    emu.stop()


def _s3(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, config=Config(s3={"addressing_style": "path"}))


@pytest.mark.slow
def test_files_live_on_the_s3_endpoint_and_records_on_the_main_one(
        emulator: Emulator, s3_emulator: Emulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = os.environ["A6HUB_BUCKET"]
    # GIVEN S3 on its own endpoint, with the bucket created there the way `make run` does it
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_emulator.url)
    assert bootstrap.ensure_bucket(bucket) is True
    with serving_api(tmp_path / "server.log", {"AWS_ENDPOINT_URL_S3": s3_emulator.url},
                     workers=1) as url:
        # WHEN a user creates a file and reads it back through the API
        name = f"ep{uuid.uuid4().hex[:10]}"
        user = requests.post(f"{url}/api/v1/auth/register", timeout=30, json={
            "email": f"{name}@example.test", "username": name, "password": "two endpoints here"})
        assert user.status_code == 201, user.text
        token = requests.post(f"{url}/api/v1/auth/login", timeout=30, json={
            "email": f"{name}@example.test", "password": "two endpoints here"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        project = requests.post(f"{url}/api/v1/projects", headers=auth, timeout=30,
                                json={"name": name, "visibility": "private"}).json()
        created = requests.post(f"{url}/api/v1/projects/{project['id']}/files", headers=auth,
                                timeout=30, json={"filename": "top.v", "filepath": "rtl/top.v",
                                                  "content": "module top; endmodule\n"})
        assert created.status_code == 201, created.text
        got = requests.get(f"{url}/api/v1/projects/{project['id']}/files/{created.json()['id']}",
                           headers=auth, timeout=30)
        health = requests.get(f"{url}/health", timeout=30).json()
    # THEN the content round-trips and the dependencies are all reachable
    assert got.status_code == 200 and got.json()["content"] == "module top; endmodule\n"
    assert health["checks"]["s3"] == "ok" and health["checks"]["dynamodb"] == "ok"
    # AND the body exists only on the S3 endpoint, the records only on the main one
    prefix = f"projects/{project['id']}/files/{created.json()['id']}/"
    assert _s3(s3_emulator.url).list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 1
    assert _s3(emulator.url).list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 0
    item = boto3.client("dynamodb", endpoint_url=emulator.url).get_item(
        TableName=f"{os.environ['A6HUB_TABLE_PREFIX']}users", Key={"id": {"N": str(user.json()["id"])}})
    assert item["Item"]["username"]["S"] == name
    s3_tables = boto3.client("dynamodb", endpoint_url=s3_emulator.url).list_tables()["TableNames"]
    assert s3_tables == []
