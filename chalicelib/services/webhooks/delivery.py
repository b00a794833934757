"""Sending webhook deliveries: one signed POST per attempt, run by the runner from the jobs queue.

Why the queue and not a thread: the end of a pipeline is recorded by whichever process ends its
last job, a runner (ECS) or the API (a Lambda: a cancel, a cached result); a Lambda is frozen
once it answers, so a thread it starts may never run. A delivery row is written and a message
sent to the jobs queue (the producer and the worker share this module); the runner, which polls
that queue anyway, makes the attempt. A failed attempt that is worth retrying is queued again
with SQS's DelaySeconds (exponential: A6HUB_WEBHOOK_RETRY_SECONDS x 2^(n-1), at most 900 s, up
to A6HUB_WEBHOOK_MAX_ATTEMPTS attempts), so a slow receiver holds a runner slot for one attempt
(A6HUB_WEBHOOK_TIMEOUT_SECONDS) and never sleeps in it. An in-process retry library (tenacity,
urllib3's Retry) would sleep between attempts in the slot; the schedule is three lines here.

Each attempt: the URL is checked again (url_guard.connect resolves, refuses internal addresses,
connects to a checked one and verifies the peer), a POST with the stored body, headers
`X-A6hub-Event`, `X-A6hub-Delivery` (the delivery id) and `X-A6hub-Signature-256:
sha256=<hex HMAC-SHA256 of the raw body keyed with the webhook's secret>` — GitHub's scheme,
https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries — connect
timeout 3 s, the whole attempt bounded by the timeout, redirects never followed (a 3xx fails the
delivery: following one would let a checked host send us anywhere), at most 64 KiB of the answer
read. 2xx delivers; 408, 429, 5xx, timeouts and connection errors are retried; other answers
fail at once; an internal address is `refused` and never retried.

A message names the attempt it asks for; the row's `attempts` is advanced by a write
conditioned on the previous count, so a message the queue delivers twice sends once. A runner
that dies during an attempt leaves its message to come back after the queue's visibility
timeout; the attempt is then taken over once it is older than twice the timeout plus 30 s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from chalicelib import jobqueue
from chalicelib.config import get_settings
from chalicelib.logs import SERVICE
from chalicelib.models.base import condition_failed, utcnow_iso
from chalicelib.models.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    REFUSED,
    Webhook,
    WebhookDelivery,
)
from chalicelib.services.git import url_guard
from chalicelib.services.webhooks import targets

logger = Logger(service=SERVICE, child=True)

EVENT_HEADER = "X-A6hub-Event"
DELIVERY_HEADER = "X-A6hub-Delivery"
SIGNATURE_HEADER = "X-A6hub-Signature-256"
USER_AGENT = "a6hub-webhook/1"
CONNECT_SECONDS = 3.0
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 1024
MAX_DELAY_SECONDS = 900  # SQS's ceiling for DelaySeconds
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MESSAGE_KEY = "webhook_delivery"
ABANDONED_MARGIN = 30  # seconds past an attempt's timeout before a redelivery takes it over


def signature(secret: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret` (UTF-8), as GitHub's
    X-Hub-Signature-256; a receiver compares it in constant time with its own."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempt: int) -> int:
    """Seconds before attempt `attempt + 1` after attempt `attempt` (1-based) failed."""
    base = get_settings().webhook_retry_seconds
    return int(min(MAX_DELAY_SECONDS, base * 2 ** max(0, attempt - 1)))


# --- the queue message -----------------------------------------------------------------------------


def message_body(webhook_id: int, delivery_id: int, attempt: int) -> str:
    """The jobs-queue body asking for attempt `attempt` of a delivery (never a job message:
    it has no job_id)."""
    return json.dumps({MESSAGE_KEY: {"webhook_id": webhook_id, "delivery_id": delivery_id,
                                     "attempt": attempt}}, separators=(",", ":"))


def parse_message(raw: str) -> tuple[int, int, int] | None:
    """(webhook_id, delivery_id, attempt) of a delivery message, None for any other body."""
    try:
        data = json.loads(raw)
        inner = data[MESSAGE_KEY] if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            return None
        ids = (inner["webhook_id"], inner["delivery_id"], inner["attempt"])
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        return None
    return ids[0], ids[1], ids[2]


def enqueue(webhook_id: int, delivery_id: int, attempt: int, delay: int = 0) -> None:
    """Queue attempt `attempt` of a delivery on the jobs queue, `delay` seconds from now."""
    jobqueue.send_other(get_settings().jobs_queue_url,
                        message_body(webhook_id, delivery_id, attempt), delay)


# --- one attempt ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: `status` is DELIVERED, FAILED, REFUSED or PENDING (retry it)."""

    status: str
    response_code: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int


def send(url: str, secret: str, event: str, delivery_id: int, body: bytes,
         timeout: float) -> Attempt:
    """POST `body` to `url`, signed; never raises for what the receiver or the network does.

    `timeout` bounds the attempt (seconds; the connect step at most CONNECT_SECONDS of it).
    """
    import urllib3

    started = time.monotonic()
    deadline = started + timeout

    def done(status: str, code: int | None = None, excerpt: str | None = None,
             error: str | None = None) -> Attempt:
        return Attempt(status, code, excerpt, error, int((time.monotonic() - started) * 1000))

    try:
        targets.check_form(url)
    except targets.WebhookRefused as e:
        return done(REFUSED, error=str(e.detail))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               EVENT_HEADER: event, DELIVERY_HEADER: str(delivery_id),
               SIGNATURE_HEADER: signature(secret, body)}
    manager = url_guard.pool_manager(timeout, max_redirects=0)
    try:
        response = manager.request(
            "POST", url, body=body, headers=headers, redirect=False, retries=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=min(CONNECT_SECONDS, timeout), read=timeout,
                                    total=timeout))
    except url_guard.ImportRefused as e:
        return done(REFUSED, error=f"{e.detail}; sending to internal addresses is not allowed")
    except urllib3.exceptions.HTTPError as e:
        return done(PENDING, error=f"no answer: {_reason(e)}")
    try:
        code = int(response.status)
        excerpt = _read_capped(response, deadline)
    finally:
        response.close()  # never reused: the rest of a long answer is not read
        manager.clear()
    if 200 <= code < 300:
        return done(DELIVERED, code, excerpt)
    if 300 <= code < 400:
        return done(FAILED, code, excerpt, f"answered {code}: redirects are not followed")
    if code in RETRY_STATUSES or code >= 500:
        return done(PENDING, code, excerpt, f"answered {code}")
    return done(FAILED, code, excerpt, f"answered {code}")


def _reason(error: Exception) -> str:
    inner = getattr(error, "reason", None)
    return str(inner or error)[:300]


def _read_capped(response: Any, deadline: float) -> str | None:
    """At most MAX_RESPONSE_BYTES of the answer, read until `deadline`; its start as text."""
    from urllib3.exceptions import HTTPError

    data = bytearray()
    try:
        while len(data) < MAX_RESPONSE_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(left)  # the whole attempt is bounded, not each read
            chunk = response.read1(min(16 * 1024, MAX_RESPONSE_BYTES - len(data)))
            if not chunk:
                break
            data += chunk
    except (OSError, HTTPError) as e:  # the status decides; a broken body is only an excerpt
        logger.debug("webhook answer not read whole", extra={"error": str(e)})
    return data[:EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS] if data else None


# --- the runner's side -----------------------------------------------------------------------------


def _message_row(raw: str) -> tuple[tuple[int, int, int], WebhookDelivery | None] | None:
    """((webhook_id, delivery_id, attempt), the delivery's row read strongly consistent, or None
    once it is gone) for a delivery message; None for any other body."""
    parsed = parse_message(raw)
    if parsed is None:
        return None
    try:
        return parsed, WebhookDelivery.get(parsed[0], parsed[1], consistent_read=True)
    except WebhookDelivery.DoesNotExist:
        return parsed, None


def handle_message(raw: str) -> str | None:
    """Run the attempt a queue message asks for; None when `raw` is not a delivery message.

    Returns what was done ("delivered", "retrying", "failed", "refused", "duplicate",
    "dropped"); the caller deletes the message in every case. Storage errors propagate (the
    message then stays in flight and comes back).
    """
    found = _message_row(raw)
    if found is None:
        return None
    (webhook_id, delivery_id, attempt), row = found
    if row is None:
        return "dropped"
    if not _claim(row, attempt):
        return "duplicate"
    try:
        hook = Webhook.get(row.project_id, webhook_id)
    except Webhook.DoesNotExist:
        _record(row, Attempt(FAILED, None, None, "the webhook was deleted", 0), None)
        return "dropped"
    settings = get_settings()
    outcome = send(hook.url, hook.secret, row.event, delivery_id, row.payload.encode(),
                   float(settings.webhook_timeout_seconds))
    if outcome.status == PENDING and attempt >= settings.webhook_max_attempts:
        outcome = Attempt(FAILED, outcome.response_code, outcome.excerpt,
                          f"{outcome.error}; gave up after {attempt} attempts",
                          outcome.duration_ms)
    delay = retry_delay(attempt) if outcome.status == PENDING else None
    _record(row, outcome, delay)
    if delay is not None:
        enqueue(webhook_id, delivery_id, attempt + 1, delay)
    logger.info("webhook attempt", extra={"webhook_id": webhook_id, "delivery_id": delivery_id,
                                          "attempt": attempt, "status": outcome.status,
                                          "code": outcome.response_code})
    return "retrying" if delay is not None else outcome.status


def dead_lettered(raw: str) -> bool:
    """End the delivery whose queue message the queue gave up on (it went to the dead-letter
    queue after the queue's maximum receives, each taken by a runner that died or could not
    reach storage): a still pending row becomes `failed` with the reason, so it does not stay
    `pending` forever. False when `raw` is not a delivery message (the caller handles it).

    A row that a later attempt's message has moved on (its `attempts` past this message's) or
    that has ended is left alone; the caller deletes the message in every case. Storage errors
    propagate (the message then stays in the dead-letter queue for the next check).
    """
    found = _message_row(raw)
    if found is None:
        return False
    (webhook_id, delivery_id, attempt), row = found
    if row is None:
        return True
    made = int(row.attempts or 0)
    if row.status != PENDING or made > attempt:
        return True
    reason = ("gave up: the delivery's queue message went to the dead-letter queue (the runner "
              "taking it crashed, was killed or could not reach storage each time)")
    try:
        row.update(actions=[WebhookDelivery.status.set(FAILED), WebhookDelivery.error.set(reason),
                            WebhookDelivery.next_attempt_at.remove(),
                            WebhookDelivery.updated_at.set(utcnow_iso())],
                   condition=(WebhookDelivery.status == PENDING)
                   & (WebhookDelivery.attempts == made))
    except UpdateError as e:
        if not condition_failed(e):
            raise
    logger.warning("webhook delivery dead-lettered", extra={"webhook_id": webhook_id,
                                                            "delivery_id": delivery_id,
                                                            "attempt": attempt})
    return True


def _claim(row: WebhookDelivery, attempt: int) -> bool:
    """Take attempt `attempt` of a pending delivery: the row must have made attempt - 1, or
    have started this one so long ago that its runner died in it (a redelivered message then
    takes it over). One conditional write; False when another message has it."""
    made = int(row.attempts or 0)
    if row.status != PENDING:
        return False
    if made == attempt - 1:
        condition = WebhookDelivery.attempts == attempt - 1
    elif made == attempt and _abandoned(row.updated_at):
        condition = (WebhookDelivery.attempts == attempt) & (
            WebhookDelivery.updated_at == row.updated_at)
    else:
        return False
    try:
        row.update(actions=[WebhookDelivery.attempts.set(attempt),
                            WebhookDelivery.updated_at.set(utcnow_iso())],
                   condition=condition & (WebhookDelivery.status == PENDING))
    except UpdateError as e:
        if condition_failed(e):
            return False
        raise
    return True


def _abandoned(updated_at: str) -> bool:
    """An attempt started at `updated_at` would have ended (recorded) by now."""
    started = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    limit = timedelta(seconds=2 * get_settings().webhook_timeout_seconds + ABANDONED_MARGIN)
    return datetime.now(UTC) - started > limit


def _record(row: WebhookDelivery, outcome: Attempt, delay: int | None) -> None:
    due = None
    if delay is not None:
        due = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    fields: list[tuple[Any, Any]] = [
        (WebhookDelivery.response_code, outcome.response_code),
        (WebhookDelivery.response_excerpt, outcome.excerpt),
        (WebhookDelivery.error, outcome.error),
        (WebhookDelivery.next_attempt_at, due),
    ]
    actions: list[Action] = [WebhookDelivery.status.set(outcome.status),
               WebhookDelivery.duration_ms.set(outcome.duration_ms),
               WebhookDelivery.updated_at.set(utcnow_iso())]
    actions += [attr.set(value) if value is not None else attr.remove() for attr, value in fields]
    row.update(actions=actions)
