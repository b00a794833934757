"""The jobs queue (SQS): the one message format and every SQS call the API and the runner make.

The API sends (`send_job`) and probes (`check`); the runner receives, deletes, changes a
message's visibility and reads the queue's shape (`queue_shape`). A message names a job and the
commit it runs on (`JobMessage`); the job record stays the truth, the commit only lets the
runner fetch the files while its claim is in flight. Queue URLs are passed in: the API reads
its own from its settings, the runner from its own (runner/settings.py), so this module reads
no configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chalicelib.aws import client
from chalicelib.schemas.jobs import JobMessage

MAX_VISIBILITY = 43200  # SQS's ceiling for one ChangeMessageVisibility, in seconds

__all__ = ["MAX_VISIBILITY", "Delivery", "JobMessage", "QueueShape", "check", "delete",
           "queue_shape", "receive", "send_job", "send_other", "set_visibility"]


@dataclass(frozen=True)
class Delivery:
    """One received message: its receipt handle, its raw body and the job it names (None when
    the body is not a job message)."""

    receipt: str
    raw: str
    message: JobMessage | None


@dataclass(frozen=True)
class QueueShape:
    """What the queue's attributes tell a worker: how long a delivery stays hidden (seconds),
    after how many receives a message goes to the dead-letter queue, and that queue's URL."""

    visibility_seconds: int
    max_receives: int | None
    dlq_url: str | None


def send_job(queue_url: str, project_id: int, job_id: int, commit: str | None) -> None:
    """Ask a runner to run job `job_id` of `project_id` (on `commit`, a full sha, or None)."""
    body = JobMessage(project_id=project_id, job_id=job_id, commit=commit).model_dump_json()
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)


def send_other(queue_url: str, body: str, delay_seconds: int = 0) -> None:
    """Send a message that is not a job's (a webhook attempt, services/webhooks/delivery.py, owns
    its body) after `delay_seconds` (clamped to SQS's 0..900)."""
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=body,
                               DelaySeconds=max(0, min(delay_seconds, 900)))


def parse(raw: str) -> JobMessage | None:
    """The job a message body names, or None when it is not a job message."""
    try:
        return JobMessage.model_validate_json(raw)
    except ValidationError:
        return None


def receive(queue_url: str, wait_seconds: int, max_messages: int = 1) -> list[Delivery]:
    """Long-poll up to `wait_seconds` (0..20) for at most `max_messages` (1..10) deliveries."""
    response = client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["ApproximateReceiveCount"])
    return [Delivery(receipt=m["ReceiptHandle"], raw=m["Body"], message=parse(m["Body"]))
            for m in response.get("Messages", [])]


def delete(queue_url: str, receipt: str) -> None:
    """Remove a delivered message for good (its job is done, dropped or failed)."""
    client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)


def set_visibility(queue_url: str, receipt: str, seconds: int) -> None:
    """Hide a delivered message for `seconds` more (clamped to 0..MAX_VISIBILITY); 0 hands it
    back at once."""
    client("sqs").change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=receipt,
        VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY)))


def queue_shape(queue_url: str, dlq_url: str | None = None) -> QueueShape:
    """The queue's visibility timeout and redrive policy; the policy's dead-letter queue wins
    over `dlq_url` (which serves queues without one)."""
    sqs = client("sqs")
    attrs: dict[str, Any] = sqs.get_queue_attributes(QueueUrl=queue_url,
                                                     AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
    if redrive.get("deadLetterTargetArn"):
        dlq_name = str(redrive["deadLetterTargetArn"]).rsplit(":", 1)[-1]
        dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    return QueueShape(
        visibility_seconds=int(attrs.get("VisibilityTimeout", 60)),
        max_receives=int(redrive["maxReceiveCount"]) if redrive.get("maxReceiveCount") else None,
        dlq_url=dlq_url)


def check(queue_url: str) -> None:
    """One cheap call that fails when the queue cannot be reached (for /health)."""
    client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
