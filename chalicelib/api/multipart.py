"""multipart/form-data parsing for file uploads (the standard library's MIME parser)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from chalicelib.errors import Unprocessable


@dataclass(frozen=True)
class Upload:
    filename: str
    filepath: str | None
    mime_type: str | None
    data: bytes


def _field_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8") if isinstance(payload, bytes) else ""


def parse_upload(content_type: str, body: bytes) -> Upload:
    """Read the `file` part (required) and the optional `filepath` field."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise Unprocessable("expected multipart/form-data with a boundary")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise Unprocessable("malformed multipart body")
    upload_part: Message | None = None
    filepath: str | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "file":
            upload_part = part
        elif name == "filepath":
            filepath = _field_text(part)
    if upload_part is None:
        raise Unprocessable("the form must have a 'file' part")
    filename = upload_part.get_filename()
    if not filename:
        raise Unprocessable("the 'file' part must carry a filename")
    data = upload_part.get_payload(decode=True)
    mime = upload_part.get_content_type()
    return Upload(filename=filename, filepath=filepath,
                  mime_type=None if mime in ("application/octet-stream", "text/plain") else mime,
                  data=data if isinstance(data, bytes) else b"")
