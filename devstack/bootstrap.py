"""Create (or update) the stack from infra/resources.yaml in whatever AWS the environment names."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "resources.yaml"
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
_FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED",
           "DELETE_COMPLETE"}


def stack_name(stage: str) -> str:
    return f"a6hub-{stage}-resources"


def deploy(stage: str, timeout: float = 120.0) -> dict[str, str]:
    """Deploy the data-plane template; returns its outputs. Idempotent."""
    return deploy_template(stack_name(stage), TEMPLATE, {"Stage": stage}, timeout)


def deploy_template(name: str, template: Path, parameters: dict[str, str],
                    timeout: float = 120.0) -> dict[str, str]:
    """Create or update stack `name` from `template`; returns its outputs. Idempotent."""
    cf = boto3.client("cloudformation")
    body = template.read_text()
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    try:
        cf.describe_stacks(StackName=name)
        exists = True
    except ClientError:
        exists = False
    if exists:
        try:
            cf.update_stack(StackName=name, TemplateBody=body, Parameters=params,
                            Capabilities=_CAPABILITIES)
        except ClientError as e:
            if "No updates" not in str(e):
                raise
    else:
        cf.create_stack(StackName=name, TemplateBody=body, Parameters=params,
                        Capabilities=_CAPABILITIES)
    stack = _wait(cf, name, timeout)
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _wait(cf: Any, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status in _DONE:
            return dict(stack)
        if status in _FAILED:
            raise RuntimeError(f"stack {name} ended {status}: {stack.get('StackStatusReason')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(0.5)


def ensure_bucket(name: str) -> bool:
    """Create the bucket on a separate S3 endpoint (MinIO) if AWS_ENDPOINT_URL_S3 names one.

    The stack's bucket lands wherever CloudFormation runs (LocalStack's own S3); the app reads
    and writes the one its S3 endpoint serves. Returns whether a separate endpoint was used."""
    s3_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3")
    if not s3_endpoint or s3_endpoint == os.environ.get("AWS_ENDPOINT_URL"):
        return False
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        s3.create_bucket(Bucket=name)
    return True


def queue_url(name: str) -> str:
    """The queue's URL as this endpoint spells it (emulators rewrite the host)."""
    url: str = boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    return url
