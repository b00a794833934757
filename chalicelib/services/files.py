"""Project files: metadata in DynamoDB, bodies in S3, quotas kept on the project item."""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
from dataclasses import dataclass

from botocore.exceptions import ClientError
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unprocessable,
)
from chalicelib.ids import is_number_id, with_new_id
from chalicelib.models.accounts import Unique
from chalicelib.models.base import transaction_connection, utcnow_iso
from chalicelib.models.files import File
from chalicelib.models.projects import Project
from chalicelib.schemas.files import FileCreate, FilePublic, FileUpdate, FileWithContent
from chalicelib.services import history, modules
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, page_of
from chalicelib.services.paths import normalise_path
from chalicelib.services.projects import authorize

_HDL_TYPES = {
    ".v": "text/x-verilog", ".vh": "text/x-verilog", ".sv": "text/x-systemverilog",
    ".svh": "text/x-systemverilog", ".hex": "text/plain", ".mem": "text/plain",
    ".vcd": "text/plain", ".ys": "text/plain", ".pcf": "text/plain", ".xdc": "text/plain",
}


@dataclass(frozen=True)
class Body:
    data: bytes
    mime_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def path_key(project_id: int, path: str) -> str:
    return f"path#{project_id}#{path}"


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


def guess_mime(path: str, data: bytes, given: str | None) -> str:
    if given:
        return given
    for suffix, mime in _HDL_TYPES.items():
        if path.lower().endswith(suffix):
            return mime
    guessed, _ = mimetypes.guess_type(path)
    if guessed:
        return guessed
    try:
        data.decode("utf-8")
        return "text/plain"
    except UnicodeDecodeError:
        return "application/octet-stream"


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


def _quota_condition(size_delta: int, count_delta: int):  # type: ignore[no-untyped-def]
    settings = get_settings()
    condition = Project.id.exists()
    if count_delta > 0:
        condition &= Project.file_count <= settings.max_files_per_project - count_delta
    if size_delta > 0:
        condition &= Project.total_bytes <= settings.max_project_bytes - size_delta
    return condition


def _quota_error(project_id: int, size_delta: int, count_delta: int) -> Exception:
    settings = get_settings()
    try:
        project = Project.get(project_id)
    except Project.DoesNotExist:
        return NotFound("Project not found")
    if count_delta > 0 and project.file_count + count_delta > settings.max_files_per_project:
        return Conflict(f"project has reached the limit of {settings.max_files_per_project} files")
    if size_delta > 0 and project.total_bytes + size_delta > settings.max_project_bytes:
        return PayloadTooLarge(
            f"project would exceed its size limit of {settings.max_project_bytes} bytes")
    return Conflict("the project changed meanwhile; retry")


def _reasons(e: TransactWriteError) -> list[str | None]:
    return [r.code if r else None for r in (e.cancellation_reasons or [])]


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
    authorize(caller, project_id, "write")
    path = normalise_path(data.filepath, data.filename)
    body = raw if raw is not None else decode_content(data.content, data.encoding)
    check_size(body)
    created = _store_new(project_id, path, Body(body, guess_mime(path, body, data.mime_type)))
    history.record_change(caller, project_id, [history.Edit(path, body)], data.message)
    if modules.is_hdl(path):
        modules.refresh_quietly(project_id, [created.id], modules.sha256_map([body]))
    return created


def create_from_upload(caller: Caller, project_id: int, path: str, data: bytes,
                       mime_type: str | None, limit: int) -> FilePublic:
    """A file whose body arrived through a presigned upload (services/uploads.py)."""
    authorize(caller, project_id, "write")
    check_size(data, limit)
    created = _store_new(project_id, path, Body(data, guess_mime(path, data, mime_type)))
    history.record_change(caller, project_id, [history.Edit(path, data)], None)
    if modules.is_hdl(path):
        modules.refresh_quietly(project_id, [created.id], modules.sha256_map([data]))
    return created


def _store_new(project_id: int, path: str, body: Body) -> FilePublic:
    """Store a new file; its id is drawn until the transaction finds it free."""
    return file_public(with_new_id(lambda file_id: _store_new_as(project_id, file_id, path, body),
                                   _file_id_taken))


def _file_id_taken(e: Exception) -> bool:
    """The create transaction's record (its second put, after the path guard) already existed."""
    return isinstance(e, TransactWriteError) and _reasons(e)[1:2] == ["ConditionalCheckFailed"]


def _store_new_as(project_id: int, file_id: int, path: str, body: Body) -> File:
    now = utcnow_iso()
    record = File(project_id, file_id, filename=path.rsplit("/", 1)[-1], filepath=path,
                  size_bytes=len(body.data), mime_type=body.mime_type, sha256=body.sha256,
                  s3_key=storage.file_body_key(project_id, file_id), created_at=now,
                  updated_at=now)
    storage.put_bytes(record.s3_key, body.data, body.mime_type)
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(Unique(path_key(project_id, path), owner_id=file_id),
                    condition=Unique.key.does_not_exist())
            tx.save(record, condition=File.id.does_not_exist())
            tx.update(Project(project_id), actions=[
                Project.file_count.add(1), Project.total_bytes.add(len(body.data)),
                Project.updated_at.set(now),
            ], condition=_quota_condition(len(body.data), 1), add_version_condition=False)
    except TransactWriteError as e:
        storage.delete_keys([record.s3_key])
        reasons = _reasons(e)
        if reasons[:1] == ["ConditionalCheckFailed"]:
            raise Conflict(f"a file already exists at '{path}'") from e
        if reasons[2:3] == ["ConditionalCheckFailed"]:
            raise _quota_error(project_id, len(body.data), 1) from e
        raise
    return record


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
    authorize(caller, project_id, "write")
    record = _load(project_id, file_id)
    wanted = parse_if_match(if_match)
    if wanted is not None and wanted != record.version:
        raise PreconditionFailed("the file has changed since that version; fetch it again")
    changes = data.model_dump(exclude_unset=True)
    old_path, old_key, old_size = record.filepath, record.s3_key, int(record.size_bytes)
    if "filepath" in changes or "filename" in changes:
        record.filepath = _renamed_path(old_path, data.filepath, data.filename)
        record.filename = record.filepath.rsplit("/", 1)[-1]
    new_body: bytes | None = None
    if "content" in changes:
        new_body = decode_content(data.content, data.encoding)
        check_size(new_body)
        record.s3_key = storage.file_body_key(project_id, file_id)
        record.size_bytes = len(new_body)
        record.sha256 = hashlib.sha256(new_body).hexdigest()
        record.mime_type = guess_mime(record.filepath, new_body, data.mime_type)
        storage.put_bytes(record.s3_key, new_body, record.mime_type)
    elif data.mime_type:
        record.mime_type = data.mime_type
    record.updated_at = utcnow_iso()
    size_delta = int(record.size_bytes) - old_size
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            # save() carries the version condition: a concurrent writer makes this fail.
            tx.save(record)
            if record.filepath != old_path:
                tx.save(Unique(path_key(project_id, record.filepath), owner_id=file_id),
                        condition=Unique.key.does_not_exist())
                tx.delete(Unique(path_key(project_id, old_path), owner_id=file_id))
            tx.update(Project(project_id), actions=[
                Project.total_bytes.add(size_delta), Project.updated_at.set(record.updated_at),
            ], condition=_quota_condition(size_delta, 0), add_version_condition=False)
    except TransactWriteError as e:
        if new_body is not None:
            storage.delete_keys([record.s3_key])
        raise _update_error(e, project_id, record.filepath, old_path, size_delta, wanted) from e
    if new_body is not None:
        storage.delete_keys([old_key])
    history.record_change(caller, project_id, history.edits_for_update(
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


def _update_error(e: TransactWriteError, project_id: int, path: str, old_path: str,
                  size_delta: int, wanted: int | None) -> Exception:
    reasons = _reasons(e) + [None] * 4
    renamed = path != old_path
    # PynamoDB sends a transaction's deletes, then its puts, then its updates (not the order of
    # the calls), so a rename's reasons are [old guard, record, new guard, project].
    record_reason, guard_reason, project_reason = (
        (reasons[1], reasons[2], reasons[3]) if renamed else (reasons[0], None, reasons[1]))
    if record_reason == "ConditionalCheckFailed":
        if wanted is not None:
            return PreconditionFailed("the file has changed since that version; fetch it again")
        return Conflict("the file changed meanwhile; fetch it and retry")
    if guard_reason == "ConditionalCheckFailed":
        return Conflict(f"a file already exists at '{path}'")
    if project_reason == "ConditionalCheckFailed":
        return _quota_error(project_id, size_delta, 0)
    return e


def delete_file(caller: Caller, project_id: int, file_id: int, if_match: str | None) -> None:
    authorize(caller, project_id, "write")
    record = _load(project_id, file_id)
    wanted = parse_if_match(if_match)
    if wanted is not None and wanted != record.version:
        raise PreconditionFailed("the file has changed since that version; fetch it again")
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.delete(record)
            tx.delete(Unique(path_key(project_id, record.filepath), owner_id=file_id))
            tx.update(Project(project_id), actions=[
                Project.file_count.add(-1), Project.total_bytes.add(-int(record.size_bytes)),
                Project.updated_at.set(utcnow_iso()),
            ], condition=Project.id.exists(), add_version_condition=False)
    except TransactWriteError as e:
        if _reasons(e)[:1] == ["ConditionalCheckFailed"]:
            raise PreconditionFailed("the file has changed; fetch it again") from e
        raise
    storage.delete_keys([record.s3_key])
    history.record_change(caller, project_id, [history.Edit(record.filepath)])
    if modules.is_hdl(record.filepath):
        modules.refresh_quietly(project_id, [file_id])
