"""Outbound webhooks as the API takes and shows them; the secret leaves the server only once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.schemas.common import PublicModel, RequestModel

MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256


class WebhookCreate(RequestModel):
    """A webhook on the project's pipeline completions. `secret` signs every delivery
    (X-A6hub-Signature-256); left out, the server draws one and returns it in this answer only."""

    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = Field(default=None, min_length=MIN_SECRET_CHARS,
                               max_length=MAX_SECRET_CHARS, pattern=r"^[\x21-\x7e]+$")


class WebhookPublic(PublicModel):
    id: int
    project_id: int
    url: str
    events: list[str]  # what it is sent: ["pipeline"] (and a "ping" on request)
    created_by: int
    created_at: str


class WebhookCreated(WebhookPublic):
    secret: str  # shown in this answer only; store it to check X-A6hub-Signature-256


DeliveryStatus = Literal["pending", "delivered", "failed", "refused"]


class WebhookDeliveryPublic(PublicModel):
    id: int  # also the X-A6hub-Delivery header of every attempt
    webhook_id: int
    event: str
    status: DeliveryStatus
    attempts: int
    response_code: int | None = None
    response_excerpt: str | None = None  # the start of the receiver's answer (1 KiB at most)
    error: str | None = None  # why the last attempt did not deliver
    duration_ms: int | None = None
    next_attempt_at: str | None = None
    created_at: str
    updated_at: str
