"""Local S3 event and DynamoDB stream delivery, as AWS does it for a deployed stage.

`apply_notifications` gives the emulator's bucket the NotificationConfiguration written in
infra/resources.yaml (moto's CloudFormation creates the bucket but skips that block), and
`deliver_once` / `run` feed the notification queue to the app's own `on_sqs_message` handler,
in the event shape Lambda's SQS trigger uses. `follow_streams` does the same for the DynamoDB
streams of the jobs and wsconnections tables (the live-updates pusher). MinIO (a separate S3
endpoint) cannot notify an SQS queue, so there uploads stay pending (README "Run on LocalStack + MinIO").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.bootstrap import TEMPLATE, endpoint

Handler = Callable[[dict[str, Any], Any], Any]
HANDLER_NAME = "on_upload_events"


def separate_s3_endpoint() -> bool:
    """Whether S3 is served apart from SQS: its notifications cannot reach our queue then."""
    return endpoint("s3") != endpoint("sqs")


def _sub(value: Any, stage: str) -> str:
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return str(text).replace("${Stage}", stage)


def notification_problem(stage: str) -> str | None:
    """Apply the template's bucket notifications; None if done, else why they cannot be."""
    if separate_s3_endpoint():
        return (f"S3 ({endpoint('s3')}) and SQS ({endpoint('sqs')}) are served apart: the "
                "bucket cannot notify the queue")
    try:
        apply_notifications(stage)
    except ClientError as e:  # MinIO: "A specified destination ARN does not exist or is not well-formed"
        return f"the S3 endpoint {endpoint('s3')} refused an SQS notification ({e})"
    return None


def apply_notifications(stage: str) -> bool:
    """Put the template's bucket notifications on the emulator's bucket; False if not possible."""
    if separate_s3_endpoint():
        return False
    from cfnlint.decode.cfn_yaml import load  # dev dependency; devstack is local-only

    resources = load(str(TEMPLATE))["Resources"]
    bucket = resources["DataBucket"]["Properties"]
    configurations = []
    sqs = boto3.client("sqs")
    for item in bucket.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
        queue = resources[item["Queue"]["Fn::GetAtt"][0]]["Properties"]["QueueName"]
        url = sqs.get_queue_url(QueueName=_sub(queue, stage))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rules = item.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        configurations.append({
            "QueueArn": arn, "Events": [item["Event"]],
            "Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}},
        })
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    s3.put_bucket_notification_configuration(
        Bucket=_sub(bucket["BucketName"], stage),
        NotificationConfiguration={"QueueConfigurations": configurations})
    return bool(configurations)


def events_queue_url(stage: str) -> str:
    url: str = boto3.client("sqs").get_queue_url(QueueName=f"a6hub-{stage}-upload-events")["QueueUrl"]
    return url


def app_handler() -> Handler:
    from app import app

    handler: Handler = app.handler_map[HANDLER_NAME]
    return handler


def deliver_once(queue_url: str, handler: Handler, wait_seconds: int = 0) -> int:
    """Receive up to 10 notifications, hand them to `handler` as one SQS-trigger event, and
    delete them if it returns (if it raises they come back after the visibility timeout)."""
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=wait_seconds).get("Messages", [])
    if not messages:
        return 0
    event = {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": queue_url, "awsRegion": sqs.meta.region_name,
    } for m in messages]}
    handler(event, None)
    sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return len(messages)


#: table (short name) -> the app's handler of its stream (chalicelib/api/live.py)
STREAM_HANDLERS = {"jobs": "on_job_changes", "wsconnections": "on_new_sockets"}


class StreamFollower:
    """Reads one table's DynamoDB stream from now on and hands each batch to a handler, in the
    event shape of Lambda's DynamoDB trigger (what dynamodbstreams.get_records returns, plus the
    source ARN)."""

    SHARD_REFRESH_SECONDS = 10.0

    def __init__(self, table: str, handler: Handler) -> None:
        self.handler = handler
        self.arn = boto3.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.streams = boto3.client("dynamodbstreams")
        self.iterators: dict[str, str] = {}
        self._refreshed = 0.0
        self._refresh("LATEST")

    def _refresh(self, position: str) -> None:
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"],
                    ShardIteratorType=position)["ShardIterator"]
        self._refreshed = time.monotonic()

    def poll_once(self) -> int:
        if time.monotonic() - self._refreshed > self.SHARD_REFRESH_SECONDS:
            self._refresh("TRIM_HORIZON")  # a shard that appeared since: read it whole
        handled = 0
        for shard, iterator in list(self.iterators.items()):
            response = self.streams.get_records(ShardIterator=iterator, Limit=100)
            records = [{**r, "eventSourceARN": self.arn} for r in response.get("Records", [])]
            if records:
                self.handler({"Records": records}, None)
                handled += len(records)
            following = response.get("NextShardIterator")
            if following:
                self.iterators[shard] = following
            else:
                del self.iterators[shard]  # a closed shard, read to its end
        return handled


#: pause between polls of the streams while a record came within BUSY_SECONDS, and otherwise
BUSY_PAUSE_SECONDS = 0.02
IDLE_PAUSE_SECONDS = 0.1
BUSY_SECONDS = 10.0


def follow_streams(stage: str, stop: threading.Event | None = None,
                   pause: float = IDLE_PAUSE_SECONDS, busy_pause: float = BUSY_PAUSE_SECONDS,
                   busy_seconds: float = BUSY_SECONDS) -> None:
    """Feed the jobs and wsconnections streams to the app's pusher until `stop` is set.

    Polls again at once after a batch, every `busy_pause` seconds for `busy_seconds` after the
    last record (a job's records come in bursts: created, claimed, log progress, finished; a
    socket's greeting follows its connect), and every `pause` seconds when idle. Each poll is
    one GetRecords per open shard of the two tables (2 calls locally), so a busy follower makes
    ~100 calls a second against ~20 idle; Lambda's event-source mapping polls a stream's shards
    four times a second, so AWS adds ~125 ms on average where this adds ~10 ms while busy.

    Against devstack's store (devstack/changes.py) the pause is instead a wait for a write to
    either table, at most `pause` long: a record is read as soon as its write lands (the
    store writes stream records with the item, in the same request), and a follower with
    nothing to read makes ~30 calls a second (two GetRecords and the wait per `pause`).
    """
    from aws_lambda_powertools import Logger

    from app import app
    from devstack.changes import store_changes

    logger = Logger(service="a6hub", child=True)
    tables = [f"a6hub-{stage}-{table}" for table in STREAM_HANDLERS]
    followers = [StreamFollower(table, app.handler_map[name])
                 for table, name in zip(tables, STREAM_HANDLERS.values(), strict=True)]
    changes = store_changes()
    last_record = float("-inf")
    while stop is None or not stop.is_set():
        try:
            polled_at = time.monotonic()
            if sum(f.poll_once() for f in followers):
                last_record = time.monotonic()
                continue
            if changes is not None:
                changes.wait(tables, polled_at, pause)
                continue
            busy = time.monotonic() - last_record < busy_seconds
            time.sleep(busy_pause if busy else pause)
        except Exception:  # noqa: BLE001 - keep following; the batch is read again
            logger.exception("stream delivery failed")
            time.sleep(1)


def run(stage: str, stop: threading.Event | None = None) -> None:
    """Deliver notifications and stream records until `stop` is set (or forever)."""
    from aws_lambda_powertools import Logger

    logger = Logger(service="a6hub", child=True)
    threading.Thread(target=follow_streams, args=(stage, stop), name="streams",
                     daemon=True).start()
    handler = app_handler()
    url = events_queue_url(stage)
    while stop is None or not stop.is_set():
        try:
            deliver_once(url, handler, wait_seconds=5)
        except Exception:  # noqa: BLE001 - a failed batch is retried, the loop goes on
            logger.exception("upload event delivery failed; the messages will be retried")
            time.sleep(1)
