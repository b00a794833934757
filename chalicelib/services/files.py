"""Project files (the files API): reading, creating, updating and deleting a project's files.

Rows are written by `file_rows` (metadata in DynamoDB, bodies in S3, the project's counters);
each change then becomes a commit on main (`git.commits.record_change`) and refreshes the
modules of HDL files (`modules`).
"""

from __future__ import annotations

import base64
import binascii

from botocore.exceptions import ClientError

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unprocessable,
)
from chalicelib.ids import is_number_id
from chalicelib.models.files import File
from chalicelib.schemas.files import FileCreate, FilePublic, FileUpdate, FileWithContent
from chalicelib.services import file_rows, modules
from chalicelib.services.file_rows import guess_mime
from chalicelib.services.git import commits, quota
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, page_of
from chalicelib.services.paths import normalise_path
from chalicelib.services.projects import authorize


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header asks for; None when absent or '*'."""
    if value is None or value.strip() == "*":
        return None
    tag = value.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    try:
        return int(tag.strip('"'))
    except ValueError as e:
        raise PreconditionFailed("If-Match does not name a version of this file") from e


def decode_content(content: str | None, encoding: str) -> bytes:
    if content is None:
        return b""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as e:
            raise Unprocessable("content is not valid base64") from e
    return content.encode("utf-8")


def check_size(data: bytes, limit: int | None = None) -> None:
    cap = get_settings().max_file_bytes if limit is None else limit
    if len(data) > cap:
        raise PayloadTooLarge(f"file is larger than the limit of {cap} bytes")


def file_public(f: File) -> FilePublic:
    return FilePublic(
        id=f.id, filename=f.filename, filepath=f.filepath, size_bytes=int(f.size_bytes),
        mime_type=f.mime_type, sha256=f.sha256, version=int(f.version or 0),
        created_at=f.created_at, updated_at=f.updated_at,
    )


def _load(project_id: int, file_id: int) -> File:
    if not is_number_id(file_id):
        raise NotFound("File not found")
    try:
        return File.get(project_id, file_id)
    except File.DoesNotExist as e:
        raise NotFound("File not found") from e


def list_files(caller: Caller | None, project_id: int, limit: int,
               cursor: str | None) -> Page[FilePublic]:
    authorize(caller, project_id, "read")
    start = decode_cursor(cursor, {"project_id": project_id})
    result = File.query(project_id, limit=limit, page_size=limit, last_evaluated_key=start)
    return page_of(result, (file_public(f) for f in result))


def check_writable(caller: Caller, project_id: int) -> None:
    """Raise (404/403) unless the caller may write files of the project; for routes that must
    refuse before they parse a body."""
    authorize(caller, project_id, "write")


def create_file(caller: Caller, project_id: int, data: FileCreate,
                raw: bytes | None = None) -> FilePublic:
    project = authorize(caller, project_id, "write").project
    path = normalise_path(data.filepath, data.filename)
    body = raw if raw is not None else decode_content(data.content, data.encoding)
    check_size(body)
    quota.check_room(project, len(body))
    created = file_public(file_rows.add(project_id, path, body,
                                        guess_mime(path, body, data.mime_type)))
    commits.record_change(caller, project_id, [commits.Edit(path, body)], data.message)
    if modules.is_hdl(path):
        modules.refresh_quietly(project_id, [created.id], modules.sha256_map([body]))
    return created


def create_from_upload(caller: Caller, project_id: int, path: str, data: bytes,
                       mime_type: str | None, limit: int) -> FilePublic:
    """A file whose body arrived through a presigned upload (services/uploads.py)."""
    project = authorize(caller, project_id, "write").project
    check_size(data, limit)
    quota.check_room(project, len(data))
    created = file_public(file_rows.add(project_id, path, data,
                                        guess_mime(path, data, mime_type)))
    commits.record_change(caller, project_id, [commits.Edit(path, data)], None)
    if modules.is_hdl(path):
        modules.refresh_quietly(project_id, [created.id], modules.sha256_map([data]))
    return created


def get_file(caller: Caller | None, project_id: int, file_id: int) -> FileWithContent:
    authorize(caller, project_id, "read")
    record, data = _read_current(project_id, _load(project_id, file_id))
    try:
        content, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return FileWithContent(content=content, encoding=encoding,  # type: ignore[arg-type]
                           **file_public(record).model_dump())


def _read_current(project_id: int, record: File) -> tuple[File, bytes]:
    """The record with its body. An update that lands between reading the record and its body
    deletes the body read was pointing at; then the record is read again."""
    for _ in range(3):
        try:
            return record, storage.get_bytes(record.s3_key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
        record = _load(project_id, record.id)
    raise Conflict("the file is being changed; retry")


def update_file(caller: Caller, project_id: int, file_id: int, data: FileUpdate,
                if_match: str | None) -> FilePublic:
    project = authorize(caller, project_id, "write").project
    record = _load(project_id, file_id)
    wanted = parse_if_match(if_match)
    if wanted is not None and wanted != record.version:
        raise PreconditionFailed("the file has changed since that version; fetch it again")
    changes = data.model_dump(exclude_unset=True)
    old_path = record.filepath
    if "filepath" in changes or "filename" in changes:
        record.filepath = _renamed_path(old_path, data.filepath, data.filename)
        record.filename = record.filepath.rsplit("/", 1)[-1]
    new_body: bytes | None = None
    if "content" in changes:
        new_body = decode_content(data.content, data.encoding)
        check_size(new_body)
        quota.check_room(project, len(new_body))
        record.mime_type = guess_mime(record.filepath, new_body, data.mime_type)
    elif data.mime_type:
        record.mime_type = data.mime_type
    change = file_rows.replacing(record, new_body, old_path=old_path)
    try:
        file_rows.apply(project_id, [change], quota=True)
    except file_rows.RowsNotWritten as e:
        raise _update_error(e, project_id, record.filepath, change.size_delta, wanted) from e
    commits.record_change(caller, project_id, commits.edits_for_update(
        old_path, record.filepath, new_body), data.message)
    if modules.is_hdl(old_path) or modules.is_hdl(record.filepath):
        modules.refresh_quietly(project_id, [file_id],
                                modules.sha256_map([new_body] if new_body is not None else []))
    return file_public(record)


def _renamed_path(old_path: str, filepath: str | None, filename: str | None) -> str:
    old_dir, _, old_name = old_path.rpartition("/")
    if filepath is None:
        return normalise_path(f"{old_dir}/" if old_dir else "", filename or old_name)
    if filename is None:
        last = filepath.rstrip("/").rsplit("/", 1)[-1]
        filename = old_name if filepath.endswith("/") or not last else last
    return normalise_path(filepath, filename)


def _update_error(e: file_rows.RowsNotWritten, project_id: int, path: str, size_delta: int,
                  wanted: int | None) -> Exception:
    if "row" in e.failed:
        if wanted is not None:
            return PreconditionFailed("the file has changed since that version; fetch it again")
        return Conflict("the file changed meanwhile; fetch it and retry")
    if "guard" in e.failed:
        return Conflict(f"a file already exists at '{path}'")
    if "project" in e.failed:
        return file_rows.limit_error(project_id, size_delta, 0)
    return e


def delete_file(caller: Caller, project_id: int, file_id: int, if_match: str | None) -> None:
    authorize(caller, project_id, "write")
    record = _load(project_id, file_id)
    wanted = parse_if_match(if_match)
    if wanted is not None and wanted != record.version:
        raise PreconditionFailed("the file has changed since that version; fetch it again")
    try:
        file_rows.apply(project_id, [file_rows.removing(record)], quota=True)
    except file_rows.RowsNotWritten as e:
        if "row" in e.failed:
            raise PreconditionFailed("the file has changed; fetch it again") from e
        raise
    commits.record_change(caller, project_id, [commits.Edit(record.filepath)])
    if modules.is_hdl(record.filepath):
        modules.refresh_quietly(project_id, [file_id])
