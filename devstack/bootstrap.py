"""Create (or update) the stack from infra/resources.yaml in whatever AWS the environment names."""

from __future__ import annotations

import json
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


def endpoint(service: str) -> str | None:
    """The endpoint boto3 uses for `service`: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL."""
    return os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")


def _template() -> dict[str, Any]:
    from cfnlint.decode.cfn_yaml import load  # dev dependency; devstack is local-only

    return dict(load(str(TEMPLATE)))


def _resolve(value: Any, params: dict[str, str], arns: dict[str, str]) -> Any:
    """The few intrinsic functions the data-plane template uses: Sub, Ref, GetAtt .Arn."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Sub":
            text = str(arg)
            for name, given in params.items():
                text = text.replace("${" + name + "}", given)
            return text
        if fn == "Ref":
            return params[str(arg)]
        if fn == "Fn::GetAtt":
            return arns[arg[0]]
    if isinstance(value, dict):
        return {k: _resolve(v, params, arns) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, params, arns) for v in value]
    return value


def ensure_resources(stage: str) -> list[str]:
    """Create the template's tables, queues and bucket on each service's own endpoint where that
    is not CloudFormation's (AWS_ENDPOINT_URL_DYNAMODB / _SQS / _S3); idempotent.

    The stack deployed by `deploy` puts every resource where CloudFormation runs; a service
    served elsewhere (MinIO for S3, another emulator) gets the same definitions here. Returns
    one line per service handled this way, for the start-up output."""
    template = _template()
    params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    params["Stage"] = stage
    resources: dict[str, Any] = template["Resources"]
    cfn = endpoint("cloudformation")
    done = []
    arns: dict[str, str] = {}
    if endpoint("dynamodb") != cfn:
        tables = [_resolve(r["Properties"], params, arns) for r in resources.values()
                  if r["Type"] == "AWS::DynamoDB::Table"]
        for table in tables:
            _ensure_table(table)
        done.append(f"{len(tables)} tables created on the DynamoDB endpoint {endpoint('dynamodb')}")
    if endpoint("sqs") != cfn:
        queues = {n: r for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
        # Dead-letter queues first: the others name them by ARN.
        for name in sorted(queues, key=lambda n: "RedrivePolicy" in queues[n]["Properties"]):
            arns[name] = _ensure_queue(_resolve(queues[name]["Properties"], params, arns))
        done.append(f"{len(queues)} queues created on the SQS endpoint {endpoint('sqs')}")
    if endpoint("s3") != cfn:
        for r in resources.values():
            if r["Type"] == "AWS::S3::Bucket":
                bucket = _resolve(r["Properties"]["BucketName"], params, arns)
                ensure_bucket(bucket)
                done.append(f"bucket {bucket} ready on the S3 endpoint {endpoint('s3')}")
    return done


def _ensure_table(props: dict[str, Any]) -> None:
    ddb = boto3.client("dynamodb")
    name = props["TableName"]
    try:
        ddb.describe_table(TableName=name)
        return
    except ddb.exceptions.ResourceNotFoundException:
        pass
    wanted = ("TableName", "AttributeDefinitions", "KeySchema", "BillingMode",
              "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
    ddb.create_table(**{k: props[k] for k in wanted if k in props})
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl.get("Enabled", True))})


def _ensure_queue(props: dict[str, Any]) -> str:
    """Create (or find) the queue; returns its ARN."""
    sqs = boto3.client("sqs")
    attributes: dict[str, str] = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod",
                                              "ReceiveMessageWaitTimeSeconds", "DelaySeconds")
                  if k in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


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
