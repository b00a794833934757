"""Upload intents: a presigned upload's binding to one project, path and user until S3 reports it.

Access patterns:
- intent by upload id: GetItem uniques["upload#<upload_id>"] (kept beside the other guard
  items, which are keyed the same way; no table of its own)
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from chalicelib.models.base import IdAttribute, Model, table_name

PENDING = "pending"  # URL issued, nothing arrived yet
REGISTERING = "registering"  # an event handler is validating and storing it
REGISTERED = "registered"
REJECTED = "rejected"


def intent_key(upload_id: int) -> str:
    return f"upload#{upload_id}"


class UploadIntent(Model):
    class Meta:
        table_name = table_name("uniques")

    key = UnicodeAttribute(hash_key=True)
    project_id = IdAttribute()
    filepath = UnicodeAttribute()
    user_id = IdAttribute()
    mime_type = UnicodeAttribute(null=True)
    max_bytes = NumberAttribute()
    expires_at = NumberAttribute()  # epoch seconds; the presigned POST's own expiry
    status = UnicodeAttribute()
    claimed_at = NumberAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    file_id = IdAttribute(null=True)
    created_at = UnicodeAttribute()
