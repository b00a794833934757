"""multipart/form-data parsing for file uploads.

The body is split on its boundary with bytes operations; only each part's small header block goes
through the standard library's MIME header parser (RFC 2231 filenames, quoting). Parsing the whole
body as a MIME message splits it into lines: a 5 MiB .hex image took over a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import HTTP

from chalicelib.errors import Unprocessable

_HEADERS = BytesHeaderParser(policy=HTTP)
# The form has two fields (`file`, `filepath`); a few more are tolerated (clients add their own).
# Counted with one bytes.count before anything is split: 167,000 tiny parts used to cost 9.6 s
# of header parsing.
MAX_PARTS = 8
MAX_HEADER_BYTES = 8 * 1024  # one part's header block


@dataclass(frozen=True)
class Upload:
    filename: str
    filepath: str | None
    mime_type: str | None
    data: bytes


def _boundary(content_type: str) -> bytes:
    if not content_type.lower().startswith("multipart/form-data"):
        raise Unprocessable("expected multipart/form-data with a boundary")
    boundary = _HEADERS.parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                   ).get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise Unprocessable("expected multipart/form-data with a boundary")
    return boundary.encode("latin-1")


def _parts(body: bytes, boundary: bytes) -> list[tuple[Message, bytes]]:
    """Each part's headers and body; the body ends before the CRLF that precedes a delimiter.
    Raises Unprocessable past MAX_PARTS parts or MAX_HEADER_BYTES of headers in one part."""
    delimiter = b"\r\n--" + boundary
    if body.count(delimiter) + body.startswith(b"--" + boundary) > MAX_PARTS + 1:
        raise Unprocessable(f"the form has more than {MAX_PARTS} parts")
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise Unprocessable("malformed multipart body")
    parts: list[tuple[Message, bytes]] = []
    for section in sections[1:-1]:
        # The rest of the delimiter line: optional whitespace (RFC 2046), then CRLF.
        line_end = section.find(b"\r\n")
        if line_end < 0 or section[:line_end].strip(b" \t"):
            raise Unprocessable("malformed multipart body")
        rest = section[line_end + 2:]
        if rest.startswith(b"\r\n"):  # a part with no headers
            headers, content = b"", rest[2:]
        else:
            end = rest.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES + 4)
            if end < 0:
                raise Unprocessable("malformed multipart body (no end of a part's headers within "
                                    f"{MAX_HEADER_BYTES} bytes)")
            headers, content = rest[:end], rest[end + 4:]
        parts.append((_HEADERS.parsebytes(headers + b"\r\n\r\n"), content))
    return parts


def parse_upload(content_type: str, body: bytes) -> Upload:
    """Read the `file` part (required) and the optional `filepath` field."""
    upload: tuple[Message, bytes] | None = None
    filepath: str | None = None
    for headers, content in _parts(body, _boundary(content_type)):
        name = headers.get_param("name", header="content-disposition")
        if name == "file":
            upload = (headers, content)
        elif name == "filepath":
            try:
                filepath = content.decode("utf-8")
            except UnicodeDecodeError as e:
                raise Unprocessable("filepath must be UTF-8") from e
    if upload is None:
        raise Unprocessable("the form must have a 'file' part")
    headers, data = upload
    filename = headers.get_filename()
    if not filename:
        raise Unprocessable("the 'file' part must carry a filename")
    mime = headers.get_content_type()
    return Upload(filename=filename, filepath=filepath,
                  mime_type=None if mime in ("application/octet-stream", "text/plain") else mime,
                  data=data)
