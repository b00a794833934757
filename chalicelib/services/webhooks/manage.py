"""The owner's side of webhooks: create (URL checked, secret shown once), list, delete, ping, and
the recent deliveries of one webhook.

Every route needs the project's owner ("admin"): a webhook URL often carries a receiver's own
token, and its deliveries show what the receiver answered, so editors and viewers see neither.
"""

from __future__ import annotations

import secrets
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.errors import Conflict, NotFound, TooManyRequests
from chalicelib.ids import with_new_id
from chalicelib.models.base import (
    cancelled_by_condition,
    condition_failed,
    first_condition_failed,
    transact,
    utcnow_iso,
)
from chalicelib.models.projects import Project
from chalicelib.models.webhooks import Webhook, WebhookDelivery
from chalicelib.schemas.webhooks import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPublic,
    WebhookPublic,
)
from chalicelib.services import ratelimit
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, encode_cursor
from chalicelib.services.projects import authorize
from chalicelib.services.webhooks import events, targets

MAX_PER_PROJECT = 5
SECRET_BYTES = 32  # secrets.token_urlsafe: 43 characters, 256 bits
PINGS_PER_MINUTE = 10  # per webhook: each makes a runner POST to the URL
CONFLICT_RETRIES = 5  # a transaction that only lost a race for the project item is tried again
EVENTS = [events.PIPELINE_EVENT]


def _public(hook: Webhook) -> WebhookPublic:
    return WebhookPublic(id=hook.id, project_id=hook.project_id, url=hook.url, events=EVENTS,
                         created_by=hook.created_by, created_at=hook.created_at)


def delivery_public(row: WebhookDelivery) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=row.id, webhook_id=row.webhook_id, event=row.event,
        status=row.status,  # type: ignore[arg-type]
        attempts=int(row.attempts or 0),
        response_code=int(row.response_code) if row.response_code is not None else None,
        response_excerpt=row.response_excerpt, error=row.error,
        duration_ms=int(row.duration_ms) if row.duration_ms is not None else None,
        next_attempt_at=row.next_attempt_at, created_at=row.created_at,
        updated_at=row.updated_at)


def create_webhook(caller: Caller, project_id: int, data: WebhookCreate) -> WebhookCreated:
    """Add a webhook; the answer is the only one that holds its secret.

    Errors: 404/403 (not the owner), 422 (URL refused by the SSRF guard: form, https, internal
    address; the detail says why), 409 past MAX_PER_PROJECT webhooks. Nothing is stored then.
    The webhook is written in one transaction with the project's `webhook_count`, on the
    condition that the count is below the cap, so concurrent creates cannot pass it.
    """
    project = authorize(caller, project_id, "admin").project
    targets.check_url(data.url)
    _count_existing(project)
    secret = data.secret or secrets.token_urlsafe(SECRET_BYTES)

    def create(hook_id: int) -> Webhook:
        hook = Webhook(project_id, hook_id, url=data.url, secret=secret, created_by=caller.id,
                       created_at=utcnow_iso())

        def write(tx: TransactWrite) -> None:
            tx.save(hook, condition=Webhook.id.does_not_exist())
            tx.update(Project(project_id), actions=[Project.webhook_count.add(1)],
                      condition=Project.webhook_count < MAX_PER_PROJECT,
                      add_version_condition=False)

        try:
            transact(write)
        except TransactWriteError as e:
            # the request's items: the put (the webhook), then the update (the project's count)
            if (cancelled_by_condition(e) + [False, False])[1]:
                raise Conflict(f"a project has at most {MAX_PER_PROJECT} webhooks; "
                               "delete one first") from None
            raise
        return hook

    hook = with_new_id(create, first_condition_failed)
    return WebhookCreated(**_public(hook).model_dump(), secret=secret)


def _count_existing(project: Project) -> None:
    """Give a project whose webhooks predate `webhook_count` its count, once: a Query of its
    webhooks and a write conditioned on the count still being absent (of two racing first
    creates, one sets it and the other's identical count is refused)."""
    if project.webhook_count is not None:
        return
    existing = sum(1 for _ in Webhook.query(project.id, attributes_to_get=["id"],
                                            consistent_read=True))
    try:
        Project(project.id).update(actions=[Project.webhook_count.set(existing)],
                                   condition=Project.id.exists()
                                   & Project.webhook_count.does_not_exist(),
                                   add_version_condition=False)
    except UpdateError as e:
        if not condition_failed(e):
            raise


def list_webhooks(caller: Caller, project_id: int, limit: int,
                  cursor: str | None) -> Page[WebhookPublic]:
    """The project's webhooks, oldest first, one page (never their secrets)."""
    authorize(caller, project_id, "admin")
    start = decode_cursor(cursor, {"project_id": project_id})
    result = Webhook.query(project_id, limit=limit, page_size=limit, last_evaluated_key=start)
    items = [_public(h) for h in result]
    return Page(items=items, next_cursor=encode_cursor(result.last_evaluated_key))


def _hook(caller: Caller, project_id: int, hook_id: int) -> Webhook:
    authorize(caller, project_id, "admin")
    try:
        return Webhook.get(project_id, hook_id)
    except Webhook.DoesNotExist:
        raise NotFound("Webhook not found") from None


def delete_webhook(caller: Caller, project_id: int, hook_id: int) -> None:
    """Remove a webhook and take it off the project's `webhook_count` in one transaction; queued
    attempts then end as failed ("the webhook was deleted"). 404 for an unknown webhook.
    A project without the count gets it first (`_count_existing`): a delete that skipped the
    count because it read none would leave it one too high if a create counted meanwhile."""
    project = authorize(caller, project_id, "admin").project
    _count_existing(project)

    def write(tx: TransactWrite) -> None:
        tx.delete(Webhook(project_id, hook_id), condition=Webhook.id.exists())
        tx.update(Project(project_id), actions=[Project.webhook_count.add(-1)],
                  condition=Project.webhook_count > 0, add_version_condition=False)

    try:
        transact(write)
    except TransactWriteError as e:
        if (cancelled_by_condition(e) + [False])[0]:
            raise NotFound("Webhook not found") from None
        raise


def ping(caller: Caller, project_id: int, hook_id: int) -> WebhookDeliveryPublic:
    """Queue a `ping` delivery (signed like every other) to check a receiver; the delivery,
    pending, for a 202. 429 past PINGS_PER_MINUTE per webhook."""
    hook = _hook(caller, project_id, hook_id)
    wait = ratelimit.acquire([ratelimit.Window(f"webhook-ping#{hook.id}", PINGS_PER_MINUTE, 60)])
    if wait:
        raise TooManyRequests(f"at most {PINGS_PER_MINUTE} pings a minute; try again in {wait} s",
                              retry_after=wait)
    from chalicelib.models.projects import Project

    payload: dict[str, Any] = {"event": events.PING_EVENT,
                               "hook": {"id": hook.id, "url": hook.url, "events": EVENTS},
                               "project": events.project_part(Project.get(project_id))}
    return delivery_public(events.record(hook, events.PING_EVENT, payload))


def list_deliveries(caller: Caller, project_id: int, hook_id: int, limit: int,
                    cursor: str | None) -> Page[WebhookDeliveryPublic]:
    """A webhook's deliveries, newest first, one page (status, response code, attempts)."""
    hook = _hook(caller, project_id, hook_id)
    start = decode_cursor(cursor, {"webhook_id": int(hook.id)})
    result = WebhookDelivery.query(int(hook.id), scan_index_forward=False, limit=limit,
                                   page_size=limit, last_evaluated_key=start)
    items = [delivery_public(row) for row in result]
    return Page(items=items, next_cursor=encode_cursor(result.last_evaluated_key))
