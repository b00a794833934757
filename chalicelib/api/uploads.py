"""Routes: presigned large uploads, and the handler of S3's ObjectCreated notifications for them.

S3 notifies a queue, not the function: `chalice package` cannot deploy `on_s3_event` for a
bucket it does not create (CloudFormation cannot change an existing bucket's notifications),
and the queue gives retries and a dead-letter queue. Locally devstack/events.py feeds the
emulator's notification queue to this same handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.api.http import route
from chalicelib.config import get_settings
from chalicelib.openapi import Doc
from chalicelib.schemas.uploads import UploadPublic, UploadUrlCreate, UploadUrlPublic
from chalicelib.services import uploads

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)

# Chalice needs the queue's name when the app is built (chalice package reads the stage from
# .chalice/config.json); infra/resources.yaml names it the same way.
UPLOAD_EVENTS_QUEUE = get_settings().upload_events_queue


@route(bp, "/{project_id}/files/upload-url", methods=["POST"],
       doc=Doc("Get a presigned POST for a large file (editors and owners); the file appears "
               "once S3 reports the upload", UploadUrlCreate, UploadUrlPublic, status=201,
               errors=(409, 413)))
def create_upload_url(caller: Caller, project_id: int, body: UploadUrlCreate) -> UploadUrlPublic:
    return uploads.create_upload_url(caller, project_id, body)


@route(bp, "/{project_id}/files/uploads/{upload_id}",
       doc=Doc("State of a presigned upload: pending, registered (with file_id) or rejected "
               "(with reason)", response=UploadPublic))
def get_upload(caller: Caller, project_id: int, upload_id: int) -> UploadPublic:
    return uploads.get_upload(caller, project_id, upload_id)


@bp.on_sqs_message(queue=UPLOAD_EVENTS_QUEUE, batch_size=10)
def on_upload_events(event: SQSEvent) -> None:
    for record in event:
        uploads.handle_notification(record.body)
