"""Routes: /api/v1/projects/{project_id}/webhooks (outbound notifications of pipeline ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.openapi import Doc
from chalicelib.schemas.webhooks import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPublic,
    WebhookPublic,
)
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)


@route(bp, "/{project_id}/webhooks", methods=["POST"], doc=Doc(
    "Add a webhook called when a pipeline ends (owner); the URL passes the import SSRF guard, "
    "and the answer holds the signing secret, shown this once", WebhookCreate, WebhookCreated,
    status=201, errors=(409,)))
def create_webhook(caller: Caller, project_id: int, body: WebhookCreate) -> WebhookCreated:
    from chalicelib.services.webhooks import manage

    return manage.create_webhook(caller, project_id, body)


@route(bp, "/{project_id}/webhooks", doc=Doc(
    "List a project's webhooks (owner; never their secrets)", response=WebhookPublic,
    is_list=True))
def list_webhooks(caller: Caller, project_id: int, limit: int,
                  cursor: str | None) -> Page[WebhookPublic]:
    from chalicelib.services.webhooks import manage

    return manage.list_webhooks(caller, project_id, limit, cursor)


@route(bp, "/{project_id}/webhooks/{webhook_id}", methods=["DELETE"], doc=Doc(
    "Delete a webhook (owner)", status=204))
def delete_webhook(caller: Caller, project_id: int, webhook_id: int) -> None:
    from chalicelib.services.webhooks import manage

    manage.delete_webhook(caller, project_id, webhook_id)


@route(bp, "/{project_id}/webhooks/{webhook_id}/ping", methods=["POST"], doc=Doc(
    "Send a signed ping delivery to a webhook (owner); the pending delivery, attempted by a "
    "runner", response=WebhookDeliveryPublic, status=202, errors=(429,)))
def ping_webhook(caller: Caller, project_id: int, webhook_id: int) -> WebhookDeliveryPublic:
    from chalicelib.services.webhooks import manage

    return manage.ping(caller, project_id, webhook_id)


@route(bp, "/{project_id}/webhooks/{webhook_id}/deliveries", doc=Doc(
    "A webhook's recent deliveries, newest first (owner): status, response code, attempts",
    response=WebhookDeliveryPublic, is_list=True))
def list_deliveries(caller: Caller, project_id: int, webhook_id: int, limit: int,
                    cursor: str | None) -> Page[WebhookDeliveryPublic]:
    from chalicelib.services.webhooks import manage

    return manage.list_deliveries(caller, project_id, webhook_id, limit, cursor)
