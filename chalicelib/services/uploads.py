"""Large uploads: a presigned POST straight to S3, registered when S3 reports the object.

The URL is bound to one key, `uploads/<project_id>/<upload_id>`, derived from ids; the intent
row remembers the path, the uploader and the limit. When the ObjectCreated event arrives the
handler claims the intent (pending -> registering, a conditional write, so a replayed or
duplicated event does nothing), checks the object and the uploader's rights again, and either
stores it as a file (through the files service: quotas, path guard, git history) or deletes it
and records why. Objects under the prefix that no intent explains are deleted.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from chalicelib.ids import is_number_id, parse_number_id, with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.accounts import Unique, User
from chalicelib.models.base import condition_failed, id_taken, utcnow_iso
from chalicelib.models.files import File
from chalicelib.models.uploads import (
    PENDING,
    REGISTERED,
    REGISTERING,
    REJECTED,
    UploadIntent,
    intent_key,
)
from chalicelib.schemas.uploads import UploadPublic, UploadUrlCreate, UploadUrlPublic
from chalicelib.services import files
from chalicelib.services.identity import Caller
from chalicelib.services.paths import normalise_path
from chalicelib.services.projects import authorize

logger = Logger(service=SERVICE, child=True)

URL_SECONDS = 900
# A handler that died mid-registration leaves the intent `registering`; a redelivered event may
# take it over after this long.
STALE_CLAIM_SECONDS = 300
_KEY = re.compile(rf"^{re.escape(storage.UPLOADS_PREFIX)}(?P<project>[^/]+)/(?P<upload>[^/]+)$")


def create_upload_url(caller: Caller, project_id: int, data: UploadUrlCreate) -> UploadUrlPublic:
    authorize(caller, project_id, "write")
    path = normalise_path(data.filepath, data.filename)
    limit = get_settings().max_upload_bytes
    if data.size_bytes is not None and data.size_bytes > limit:
        raise PayloadTooLarge(f"file is larger than the upload limit of {limit} bytes")
    if Unique.count(File.path_key(project_id, path), limit=1):
        raise Conflict(f"a file already exists at '{path}'")

    def create(upload_id: int) -> int:
        UploadIntent(intent_key(upload_id), project_id=project_id, filepath=path,
                     user_id=caller.id, mime_type=data.mime_type, max_bytes=limit,
                     expires_at=int(time.time()) + URL_SECONDS, status=PENDING,
                     created_at=utcnow_iso()).save(condition=UploadIntent.key.does_not_exist())
        return upload_id

    upload_id = with_new_id(create, id_taken)
    post = storage.presign_upload(storage.upload_key(project_id, upload_id), limit, URL_SECONDS)
    return UploadUrlPublic(upload_id=upload_id, filepath=path, method="POST", url=post["url"],
                           fields=post["fields"], expires_in=URL_SECONDS, max_bytes=limit)


def _intent(upload_id: int) -> UploadIntent | None:
    if not is_number_id(upload_id):
        return None
    try:
        return UploadIntent.get(intent_key(upload_id))
    except UploadIntent.DoesNotExist:
        return None


def get_upload(caller: Caller, project_id: int, upload_id: int) -> UploadPublic:
    authorize(caller, project_id, "write")
    intent = _intent(upload_id)
    if intent is None or intent.project_id != project_id:
        raise NotFound("Upload not found")
    return UploadPublic(upload_id=upload_id, filepath=intent.filepath, status=intent.status,  # type: ignore[arg-type]
                        reason=intent.reason, file_id=intent.file_id)


def handle_notification(body: str) -> list[str]:
    """One S3 notification (an SQS message body): handle each ObjectCreated record in our bucket."""
    try:
        records = json.loads(body).get("Records") or []
    except (ValueError, AttributeError):
        logger.warning("not an S3 notification; dropped")
        return []
    done = []
    for record in records:
        s3 = record.get("s3") or {}
        if not str(record.get("eventName", "")).startswith("ObjectCreated") or \
                (s3.get("bucket") or {}).get("name") != get_settings().bucket:
            continue
        done.append(handle_object_created(unquote_plus((s3.get("object") or {}).get("key", ""))))
    return done


def handle_object_created(key: str) -> str:
    """Register or remove the object S3 reported at `key`; returns what was done (for the log)."""
    if not key.startswith(storage.UPLOADS_PREFIX):
        # Only presigned uploads are ours to judge; a notification for any other key (a bucket
        # whose notification lost its prefix filter) must not delete file bodies or git objects.
        return _outcome("ignored", key, "not under the uploads prefix")
    match = _KEY.match(key)
    intent = _intent(parse_number_id(match["upload"]) or 0) if match else None
    if match is None or intent is None or str(intent.project_id) != match["project"]:
        storage.delete_keys([key])
        return _outcome("removed", key, "no upload was issued for this key")
    if not _claim(intent):
        if intent.status != REGISTERING:
            storage.delete_keys([key])  # a second body POSTed with a used URL; replays are no-ops
        return _outcome("ignored", key, f"upload already {intent.status}")
    try:
        reason = _register(intent, key)
    except Exception:
        # Let the retry of this event (Lambda retries, or the SQS redelivery) claim it again.
        intent.update(actions=[UploadIntent.status.set(PENDING)])
        raise
    storage.delete_keys([key])
    if reason is None:
        return _outcome("registered", key, str(intent.file_id or ""))
    intent.update(actions=[UploadIntent.status.set(REJECTED), UploadIntent.reason.set(reason)])
    return _outcome("rejected", key, reason)


def _claim(intent: UploadIntent) -> bool:
    now = int(time.time())
    condition = (UploadIntent.status == PENDING) | (
        (UploadIntent.status == REGISTERING) & (UploadIntent.claimed_at < now - STALE_CLAIM_SECONDS))
    try:
        intent.update(actions=[UploadIntent.status.set(REGISTERING),
                               UploadIntent.claimed_at.set(now)], condition=condition)
    except UpdateError as e:
        if condition_failed(e):
            intent.refresh()
            return False
        raise
    return True


def _register(intent: UploadIntent, key: str) -> str | None:
    """Store the object as a file; the reason it was refused, or None."""
    size = storage.object_size(key)
    if size is None:
        return "the uploaded object is gone"
    if size > intent.max_bytes:
        return f"upload is {size} bytes, over the limit of {int(intent.max_bytes)} bytes"
    try:
        user = User.get(intent.user_id)
    except User.DoesNotExist:
        return "the uploader's account no longer exists"
    if not user.is_active:
        return "the uploader's account is disabled"
    try:
        created = files.create_from_upload(Caller(user=user), intent.project_id, intent.filepath,
                                           storage.get_bytes(key), intent.mime_type,
                                           int(intent.max_bytes))
    except DomainError as e:
        return str(e.detail)
    intent.update(actions=[UploadIntent.status.set(REGISTERED),
                           UploadIntent.file_id.set(created.id)])
    return None


def _outcome(what: str, key: str, detail: str) -> str:
    log = logger.info if what == "registered" else logger.warning
    log(f"upload {what}", extra={"s3_key": key, "detail": detail})
    return what
