"""Outbound webhooks of a project and their deliveries (services/webhooks).

Access patterns:
- webhooks of a project (list, the count cap, who to notify when a pipeline ends): Query
  webhooks[project_id] (at most MAX_PER_PROJECT items)
- one webhook: GetItem webhooks[project_id, id]; delete: DeleteItem
- deliveries of a webhook, newest first: Query webhookdeliveries[webhook_id] descending (ids are
  time-ordered), one page
- one delivery attempt (the runner): GetItem webhookdeliveries[webhook_id, id], then an
  UpdateItem conditioned on `attempts` being the number the queue message expects (a duplicate
  message never sends the same attempt twice)

Deliveries expire (DynamoDB TTL on `expires_at`) DELIVERY_TTL_DAYS after they are recorded.
The signing secret is kept as written (the table is encrypted at rest): signing needs it, and
no route ever returns it after creation.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from chalicelib.models.base import IdAttribute, Model, table_name

DELIVERY_TTL_DAYS = 30

PENDING = "pending"  # recorded, an attempt queued (first or retry)
DELIVERED = "delivered"  # a 2xx answer
FAILED = "failed"  # attempts exhausted, or an answer not worth retrying (3xx, 4xx but 429)
REFUSED = "refused"  # the address was internal at delivery time (SSRF guard): never retried


class Webhook(Model):
    class Meta:
        table_name = table_name("webhooks")

    project_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    url = UnicodeAttribute()
    secret = UnicodeAttribute()
    created_by = IdAttribute()
    created_at = UnicodeAttribute()


class WebhookDelivery(Model):
    class Meta:
        table_name = table_name("webhookdeliveries")

    webhook_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    project_id = IdAttribute()
    event = UnicodeAttribute()  # "pipeline" | "ping"
    payload = UnicodeAttribute()  # the exact JSON body signed and sent (every attempt the same)
    status = UnicodeAttribute()  # PENDING | DELIVERED | FAILED | REFUSED
    attempts = NumberAttribute(default=0)  # attempts started
    response_code = NumberAttribute(null=True)  # the last attempt's HTTP status
    response_excerpt = UnicodeAttribute(null=True)  # its body's start (capped), for debugging
    error = UnicodeAttribute(null=True)  # why the last attempt did not deliver
    duration_ms = NumberAttribute(null=True)  # the last attempt's
    next_attempt_at = UnicodeAttribute(null=True)  # when a queued retry is due
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    expires_at = NumberAttribute()  # epoch seconds; DynamoDB TTL removes the item after it
