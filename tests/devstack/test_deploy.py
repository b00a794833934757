"""Deployment: stage config and IAM policies, the JWT key from Secrets Manager, the chalice package
output wired to the resources stack, and every template deployed into the emulator's
CloudFormation with a smoke flow run against the resources it created."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode.cfn_yaml import load as load_template

from devstack import bootstrap
from devstack.emulator import Emulator
from tests.conftest import ROOT

INFRA = ROOT / "infra"
CHALICE = ROOT / ".chalice"
DEPLOYED_STAGES = ("dev", "prod")
SMOKE = "smoke"  # its own stage, so nothing collides with the session's "test" stack


def _config() -> dict[str, Any]:
    return dict(json.loads((CHALICE / "config.json").read_text()))


def _policy(stage: str) -> dict[str, Any]:
    return dict(json.loads((CHALICE / f"policy-{stage}.json").read_text()))


def _table_names(stage: str) -> list[str]:
    resources = load_template(str(INFRA / "resources.yaml"))["Resources"]
    return [r["Properties"]["TableName"]["Fn::Sub"].replace("${Stage}", stage)
            for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]


def _allows(policy: dict[str, Any], action: str, arn: str) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
            statement["Resource"]]
        if statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in actions) \
                and any(fnmatch.fnmatchcase(arn, r) for r in resources):
            return True
    return False


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_deployed_stages_name_their_resources_and_never_carry_a_key(stage: str) -> None:
    # GIVEN the chalice config WHEN a deployed stage is read
    config = _config()
    env = {**config["environment_variables"], **config["stages"][stage]["environment_variables"]}
    # THEN it names its stage's resources and the signing key's secret, never the key itself
    assert env["A6HUB_STAGE"] == stage
    assert env["A6HUB_TABLE_PREFIX"] == f"a6hub-{stage}-"
    assert env["A6HUB_BUCKET"] == f"a6hub-{stage}-data"
    assert env["A6HUB_JWT_SECRET_ID"] == f"a6hub/{stage}/jwt-signing-key"
    assert "A6HUB_JWT_SECRET" not in env
    assert config["autogen_policy"] is False
    assert config["stages"][stage]["iam_policy_file"] == f"policy-{stage}.json"


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_api_policy_is_least_privilege(stage: str) -> None:
    # GIVEN the API Lambda's policy for a stage
    policy = _policy(stage)
    region_account = "us-east-1:123456789012"
    tables = f"arn:aws:dynamodb:{region_account}:table"
    # THEN it reaches every table of its own stage
    for table in _table_names(stage):
        for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "ConditionCheckItem"):
            assert _allows(policy, f"dynamodb:{action}", f"arn:aws:dynamodb:{region_account}:table/{table}")
        assert _allows(policy, "dynamodb:Query",
                       f"arn:aws:dynamodb:{region_account}:table/{table}/index/by_user")
    # AND never scans, never another stage's tables, never the runner's side of the queue
    assert not _allows(policy, "dynamodb:Scan", f"{tables}/a6hub-{stage}-users")
    other = "prod" if stage == "dev" else "dev"
    assert not _allows(policy, "dynamodb:GetItem", f"{tables}/a6hub-{other}-users")
    queue = f"arn:aws:sqs:{region_account}:a6hub-{stage}-jobs"
    assert _allows(policy, "sqs:SendMessage", queue)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert not _allows(policy, action, queue)
    assert not _allows(policy, "sqs:SendMessage", f"arn:aws:sqs:{region_account}:a6hub-{stage}-jobs-dlq")
    # AND its bucket's objects only, and only its own signing key
    assert _allows(policy, "s3:GetObject", f"arn:aws:s3:::a6hub-{stage}-data/projects/x")
    assert not _allows(policy, "s3:GetObject", f"arn:aws:s3:::a6hub-{other}-data/projects/x")
    assert not _allows(policy, "s3:DeleteBucket", f"arn:aws:s3:::a6hub-{stage}-data")
    assert _allows(policy, "secretsmanager:GetSecretValue",
                   f"arn:aws:secretsmanager:{region_account}:secret:a6hub/{stage}/jwt-signing-key-AbCdEf")
    assert not _allows(policy, "secretsmanager:GetSecretValue",
                       f"arn:aws:secretsmanager:{region_account}:secret:a6hub/{other}/jwt-signing-key-AbCdEf")
    assert all(s["Resource"] != "*" and s["Action"] != "*" for s in policy["Statement"])
    # AND the upload-events function drains its own queue, and only that one
    events = _policy(f"{stage}-upload-events")
    upload_events = f"arn:aws:sqs:{region_account}:a6hub-{stage}-upload-events"
    assert _allows(events, "sqs:ReceiveMessage", upload_events)
    assert _allows(events, "sqs:DeleteMessage", upload_events)
    assert not _allows(policy, "sqs:ReceiveMessage", upload_events)
    # (an upload becomes a commit on main, which queues the jobs of its pipeline: send only)
    assert _allows(events, "sqs:SendMessage", queue)
    assert not _allows(events, "sqs:ReceiveMessage", queue)
    assert not _allows(events, "dynamodb:Scan", f"{tables}/a6hub-{stage}-users")
    # AND the live-updates functions (sockets, stream pusher) read the two streams, post to
    # sockets, read job logs, and nothing else: no queue, no writes to the bucket, no Scan
    live = _policy(f"{stage}-live")
    for table in ("jobs", "wsconnections"):
        stream = f"{tables}/a6hub-{stage}-{table}/stream/2026-01-01T00:00:00.000"
        assert _allows(live, "dynamodb:GetRecords", stream)
        assert not _allows(live, "dynamodb:GetRecords", stream.replace(stage, other))
    assert _allows(live, "dynamodb:UpdateItem", f"{tables}/a6hub-{stage}-wsconnections")
    assert _allows(live, "execute-api:ManageConnections",
                   f"arn:aws:execute-api:{region_account}:abc123/api/POST/@connections/x")
    assert _allows(live, "s3:GetObject", f"arn:aws:s3:::a6hub-{stage}-data/jobs/p/j/1/log.txt")
    assert not _allows(live, "s3:PutObject", f"arn:aws:s3:::a6hub-{stage}-data/jobs/p/j/1/log.txt")
    assert not _allows(live, "s3:GetObject", f"arn:aws:s3:::a6hub-{stage}-data/projects/x")
    assert not _allows(live, "sqs:SendMessage", queue)
    assert not _allows(live, "dynamodb:Scan", f"{tables}/a6hub-{stage}-wsconnections")
    assert not _allows(policy, "execute-api:ManageConnections",
                       f"arn:aws:execute-api:{region_account}:abc123/api/POST/@connections/x")
    assert all(s["Resource"] != "*" and s["Action"] != "*" for s in live["Statement"])


def test_jwt_key_comes_from_secrets_manager_in_a_deployed_stage(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.config import ConfigurationError, load_settings, load_signing_key

    # GIVEN a signing key stored in Secrets Manager and a stage that only names it
    sm = boto3.client("secretsmanager")
    key = "k" * 64
    sm.create_secret(Name="a6hub/cfgtest/jwt-signing-key", SecretString=key)
    sm.create_secret(Name="a6hub/cfgtest/weak-key", SecretString="short")
    monkeypatch.delenv("A6HUB_JWT_SECRET", raising=False)
    monkeypatch.setenv("A6HUB_STAGE", "cfgtest")
    monkeypatch.setenv("A6HUB_JWT_SECRET_ID", "a6hub/cfgtest/jwt-signing-key")
    # WHEN the key loads THEN it is the secret's value
    assert load_signing_key() == key
    # AND a weak stored key is refused outside local/test
    monkeypatch.setenv("A6HUB_JWT_SECRET_ID", "a6hub/cfgtest/weak-key")
    with pytest.raises(ConfigurationError):
        load_signing_key()
    # AND a deployed stage with no key at all does not start
    monkeypatch.delenv("A6HUB_JWT_SECRET_ID")
    with pytest.raises(ConfigurationError):
        load_signing_key()
    # AND the settings the runner reads need no key at all
    assert load_settings().stage == "cfgtest"


@pytest.fixture(scope="module")
def smoke_stacks(emulator: Emulator) -> Iterator[dict[str, str]]:
    """Every infra/*.yaml template deployed as stage `smoke`, in the order make deploy uses."""
    outputs = bootstrap.deploy(SMOKE)
    stacks = {"resources": bootstrap.stack_name(SMOKE)}
    for name in ("api", "runner"):
        template = INFRA / f"{name}.yaml"
        if template.exists():
            stack = f"a6hub-{SMOKE}-{name}-base" if name == "api" else f"a6hub-{SMOKE}-{name}"
            outputs.update(bootstrap.deploy_template(stack, template, {"Stage": SMOKE}))
            stacks[name] = stack
    # moto's CloudFormation does not create AWS::SecretsManager::Secret: store what
    # GenerateSecretString would have, under the name infra/api.yaml gives it.
    boto3.client("secretsmanager").create_secret(
        Name=outputs["JwtSigningKeyName"], SecretString=os.urandom(32).hex())
    outputs["stacks"] = json.dumps(stacks)
    yield outputs


@pytest.mark.slow
def test_every_template_deploys_and_a_smoke_flow_runs_on_what_it_created(
        smoke_stacks: dict[str, str]) -> None:
    cf = boto3.client("cloudformation")
    # GIVEN every template deployed as stage smoke
    for stack in json.loads(smoke_stacks["stacks"]).values():
        assert cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    # WHEN the app runs with the settings a deployed stage gets: its stack's outputs, and the
    # signing key named, not given
    env = {**os.environ, "A6HUB_STAGE": SMOKE, "A6HUB_TABLE_PREFIX": smoke_stacks["TablePrefix"],
           "A6HUB_BUCKET": smoke_stacks["BucketName"],
           "A6HUB_JOBS_QUEUE_URL": bootstrap.queue_url(f"a6hub-{SMOKE}-jobs"),
           "A6HUB_JWT_SECRET_ID": smoke_stacks["JwtSigningKeyName"]}
    env.pop("A6HUB_JWT_SECRET")
    run = subprocess.run([sys.executable, "-m", "tests.smoke_flow"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
    made = json.loads(run.stdout.strip().splitlines()[-1])
    # THEN register -> project -> file worked, and the records are in the smoke stack's resources
    assert made["content"] == "module top; endmodule\n"
    ddb = boto3.client("dynamodb")
    key = {"id": {"N": str(made["user"]["id"])}}
    user = ddb.get_item(TableName=f"a6hub-{SMOKE}-users", Key=key)
    assert user["Item"]["username"]["S"] == made["user"]["username"]
    assert "Item" not in ddb.get_item(TableName="a6hub-test-users", Key=key)
    prefix = f"projects/{made['project']['id']}/files/{made['file']['id']}/"
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=f"a6hub-{SMOKE}-data", Prefix=prefix)["KeyCount"] == 1
    assert s3.list_objects_v2(Bucket="a6hub-test-data", Prefix=prefix)["KeyCount"] == 0
    # AND when the jobs API is part of the app, the job went to the smoke stack's queue
    if "job" in made:
        assert made["job"]["status"] == "pending"
        attrs = boto3.client("sqs").get_queue_attributes(
            QueueUrl=env["A6HUB_JOBS_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"])
        assert int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= 1


def _import_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Fn::ImportValue" in node:
            value = node["Fn::ImportValue"]
            yield value["Fn::Sub"] if isinstance(value, dict) else value
        else:
            for child in node.values():
                yield from _import_names(child)
    elif isinstance(node, list):
        for child in node:
            yield from _import_names(child)


@pytest.mark.slow
def test_chalice_package_output_is_wired_to_the_deployed_exports(
        smoke_stacks: dict[str, str], tmp_path: Path) -> None:
    # GIVEN the API packaged as make deploy does it
    out = tmp_path / "package"
    run = subprocess.run([str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev",
                          "--merge-template", "infra/api-merge.json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    assert run.returncode == 0, run.stderr[-3000:]
    sam = json.loads((out / "sam.json").read_text())
    resources = sam["Resources"]
    # THEN every value it imports is exported by the stacks deployed for that stage
    exported = {e["Name"] for e in boto3.client("cloudformation").list_exports()["Exports"]}
    imports = {name.replace("${Stage}", SMOKE) for name in _import_names(sam)}
    assert {f"a6hub-{SMOKE}-TablePrefix", f"a6hub-{SMOKE}-BucketName",
            f"a6hub-{SMOKE}-JobsQueueUrl"} <= imports
    assert imports <= exported
    env = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["A6HUB_JWT_SECRET_ID"] == "a6hub/dev/jwt-signing-key" and "A6HUB_JWT_SECRET" not in env
    # AND the function's role carries exactly the stage's policy file
    role = resources["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert role == _policy("dev")
    # AND the upload notifications reach their own function, with its own policy, from the
    # queue infra/resources.yaml names for the stage
    uploads = resources["OnUploadEvents"]["Properties"]
    source = uploads["Events"]["OnUploadEventsSqsEventSource"]
    assert source["Type"] == "SQS" and source["Properties"]["Queue"]["Fn::Sub"].endswith(
        ":a6hub-dev-upload-events")
    assert resources["OnUploadEventsRole"]["Properties"]["Policies"][0]["PolicyDocument"] == \
        _policy("dev-upload-events")
    assert {"A6HUB_TABLE_PREFIX", "A6HUB_BUCKET"} <= set(uploads["Environment"]["Variables"])
    # AND the WebSocket API's handlers and the stream pusher run with the live policy, the
    # pusher fed by the streams the resources stack exports and posting to this stack's API
    for function in ("WebsocketConnect", "WebsocketMessage", "WebsocketDisconnect",
                     "OnJobChanges", "OnNewSockets"):
        assert resources[f"{function}Role"]["Properties"]["Policies"][0]["PolicyDocument"] == \
            _policy("dev-live"), function
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert "WebsocketAPI" in variables["A6HUB_WS_ENDPOINT"]["Fn::Sub"]
    assert resources["WebsocketAPI"]["Properties"]["ProtocolType"] == "WEBSOCKET"
    for function, export in (("OnJobChanges", "JobsStreamArn"),
                             ("OnNewSockets", "WsConnectionsStreamArn")):
        source = resources[function]["Properties"]["Events"][f"{function}DynamodbEventSource"]
        assert source["Properties"]["Stream"] == {
            "Fn::ImportValue": {"Fn::Sub": f"a6hub-${{Stage}}-{export}"}}
    # AND an unknown path answers 404 {"detail": "Not Found"} instead of API Gateway's 403
    missing = resources["RestAPI"]["Properties"]["GatewayResponses"]["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["StatusCode"] == "404"  # SAM wants a string
    assert json.loads(missing["ResponseTemplates"]["application/json"]) == {"detail": "Not Found"}


def test_a_runner_task_that_runs_several_jobs_at_once_runs_as_root_in_its_container() -> None:
    # GIVEN the runner template's task definitions: the image's USER is `runner` (10001)
    resources = load_template(str(INFRA / "runner.yaml"))["Resources"]
    tasks = {name: r["Properties"]["ContainerDefinitions"][0] for name, r in resources.items()
             if r["Type"] == "AWS::ECS::TaskDefinition"}
    concurrency = {name: {e["Name"]: e["Value"] for e in c["Environment"]}.get(
        "A6HUB_RUNNER_CONCURRENCY") for name, c in tasks.items()}
    # THEN the ECS-on-EC2 task (JobsPerRunner jobs at once) overrides it with root, so each job
    # draws a uid of its own (runner/uids.py): as 10001 all its jobs would share one RLIMIT_NPROC
    assert concurrency["Ec2TaskDefinition"] == {"Ref": "JobsPerRunner"}
    assert tasks["Ec2TaskDefinition"].get("User") == "0"
    # AND the Fargate task, one job at a time, keeps the unprivileged user
    assert concurrency["TaskDefinition"] == "1" and "User" not in tasks["TaskDefinition"]
