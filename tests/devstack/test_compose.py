"""localstack-compose.yml cannot run here (no Docker engine): check it is valid and consistent."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_compose_file_brings_up_localstack_minio_and_an_init_from_the_templates() -> None:
    # GIVEN the compose file WHEN it is parsed
    compose = yaml.safe_load((ROOT / "localstack-compose.yml").read_text())
    services = compose["services"]
    # THEN LocalStack serves the services the stack and the app use, MinIO serves S3 + console
    enabled = set(services["localstack"]["environment"]["SERVICES"].split(","))
    assert {"dynamodb", "sqs", "cloudformation", "ssm", "secretsmanager"} <= enabled
    assert "127.0.0.1:4566:4566" in services["localstack"]["ports"]
    minio = services["minio"]
    assert "127.0.0.1:9001:9001" in minio["ports"] and "--console-address" in minio["command"]
    # AND the one-shot init deploys infra/ through devstack with S3 on MinIO, credentials MinIO knows
    init = services["init"]
    env = init["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
    assert "python -m devstack up" in init["command"][-1]
    assert set(init["depends_on"]) == {"localstack", "minio"}
    # AND the boto3 it installs is the one the app pins
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.startswith("boto3==")]
    assert pinned and pinned[0] in init["command"][-1]
