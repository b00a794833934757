"""The files table's rows: adding, replacing and removing them, with their path guards and the
project's counters, in one DynamoDB transaction.

Every writer of file rows goes through here: the files API and presigned uploads
(`services/files.py`), and git (`services/git/sync.py`: pushes, restores, imports and forks make
the files table follow main). Nothing here knows about git or the history.

A change is built first (`adding`, `replacing`, `removing`), then `apply` writes one or more in
one transaction: each row (an add only if its id is free; a replace or remove only at the
version read, PynamoDB's version condition), its path guard (`File.path_guard`: an add or a move
only if the path is free), and one update of the project's `file_count`, `total_bytes` and
`updated_at` (with `quota=True`, only within the project's limits). Bodies live in S3 under a
fresh key per version (`storage.file_body_key`): new bodies are stored before the transaction
and deleted again when it fails; replaced or removed bodies are deleted once it succeeded.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from chalicelib.ids import with_new_id
from chalicelib.models.accounts import Unique
from chalicelib.models.base import cancelled_by_condition, transaction_connection, utcnow_iso
from chalicelib.models.files import File
from chalicelib.models.projects import Project

_HDL_TYPES = {
    ".v": "text/x-verilog", ".vh": "text/x-verilog", ".sv": "text/x-systemverilog",
    ".svh": "text/x-systemverilog", ".hex": "text/plain", ".mem": "text/plain",
    ".vcd": "text/plain", ".ys": "text/plain", ".pcf": "text/plain", ".xdc": "text/plain",
}

Part = Literal["row", "guard", "project"]
Kind = Literal["add", "replace", "remove"]


@dataclass
class RowChange:
    """One row to write. `record` is the row as it will be (add, replace) or as read (remove)."""

    kind: Kind
    record: File
    size_delta: int = 0  # bytes the project gains (negative: loses)
    body: bytes | None = None  # a new body, stored under record.s3_key before the transaction
    old_key: str | None = None  # a body to delete once the transaction succeeded
    old_path: str | None = None  # replace: the path before a move (its guard is released)


class RowsNotWritten(Exception):
    """The transaction was cancelled and nothing was written.

    `failed` names the parts whose condition failed: "row" (an add's id is taken, or a replaced
    or removed row is no longer at the version read), "guard" (a path is taken) or "project"
    (the project is gone or, with quota, past a limit). Empty: cancelled for another reason
    (e.g. a concurrent transaction on the same items).
    """

    def __init__(self, failed: set[Part]) -> None:
        super().__init__("file rows not written: " + (", ".join(sorted(failed)) or "cancelled"))
        self.failed = failed


def guess_mime(path: str, data: bytes, given: str | None) -> str:
    """`given`, else by the name (HDL and tool files first), else text/plain for UTF-8, else
    application/octet-stream."""
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def adding(project_id: int, file_id: int, path: str, data: bytes, mime_type: str) -> RowChange:
    """A new row `file_id` at `path` (a canonical project path) holding `data`."""
    now = utcnow_iso()
    record = File(project_id, file_id, filename=path.rsplit("/", 1)[-1], filepath=path,
                  size_bytes=len(data), mime_type=mime_type, sha256=sha256(data),
                  s3_key=storage.file_body_key(project_id, file_id), created_at=now,
                  updated_at=now)
    return RowChange("add", record, size_delta=len(data), body=data)


def replacing(record: File, data: bytes | None, *, old_path: str | None = None) -> RowChange:
    """`record` with `data` as its new body (None: the body stays), changed in place.

    The caller has already set what else changes (path, name, MIME type); `old_path` is the
    path before a move.
    """
    change = RowChange("replace", record,
                       old_path=old_path if old_path not in (None, record.filepath) else None)
    if data is not None:
        change.old_key = record.s3_key
        change.size_delta = len(data) - int(record.size_bytes)
        change.body = data
        record.s3_key = storage.file_body_key(int(record.project_id), int(record.id))
        record.size_bytes = len(data)
        record.sha256 = sha256(data)
    record.updated_at = utcnow_iso()
    return change


def removing(record: File) -> RowChange:
    """Remove `record` (at the version read) and its path guard; its body goes afterwards."""
    return RowChange("remove", record, size_delta=-int(record.size_bytes), old_key=record.s3_key)


def apply(project_id: int, changes: Sequence[RowChange], *, quota: bool,
          each: Callable[[Callable[[RowChange], Any], Iterable[RowChange]], Iterable[Any]] = map,
          ) -> None:
    """Store the new bodies, write every change in one transaction, then drop old bodies.

    `quota`: refuse past the project's file-count and size limits (the files API); git syncs
    pass False, their limits were checked before main moved. `each`: how bodies are stored
    (e.g. a thread pool's `map`). At most ~45 changes (DynamoDB's 100 items per transaction).
    Raises RowsNotWritten (nothing written, new bodies deleted again).
    """
    uploads = [c for c in changes if c.body is not None]
    list(each(lambda c: storage.put_bytes(c.record.s3_key, c.body or b"", c.record.mime_type),
              uploads))
    try:
        _transact(project_id, changes, quota=quota)
    except RowsNotWritten:
        storage.delete_keys(c.record.s3_key for c in uploads)
        raise
    storage.delete_keys(c.old_key for c in changes if c.old_key)


def _transact(project_id: int, changes: Sequence[RowChange], *, quota: bool) -> None:
    # Which part each item is, in the order DynamoDB reports them (deletes, puts, updates).
    deletes: list[Part] = []
    puts: list[Part] = []
    count_delta = 0
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            for change in changes:
                record = change.record
                if change.kind == "add":
                    tx.save(record.path_guard(), condition=Unique.key.does_not_exist())
                    tx.save(record, condition=File.id.does_not_exist())
                    puts += ["guard", "row"]
                    count_delta += 1
                elif change.kind == "replace":
                    tx.save(record)  # carries the version condition
                    puts.append("row")
                    if change.old_path is not None:
                        tx.save(record.path_guard(), condition=Unique.key.does_not_exist())
                        tx.delete(record.path_guard(change.old_path))
                        puts.append("guard")
                        deletes.append("guard")
                else:
                    tx.delete(record)  # carries the version condition
                    tx.delete(record.path_guard())
                    deletes += ["row", "guard"]
                    count_delta -= 1
            size_delta = sum(c.size_delta for c in changes)
            tx.update(Project(project_id), actions=[
                Project.file_count.add(count_delta), Project.total_bytes.add(size_delta),
                Project.updated_at.set(utcnow_iso()),
            ], condition=(_quota_condition(size_delta, count_delta) if quota
                          else Project.id.exists()), add_version_condition=False)
    except TransactWriteError as e:
        parts: list[Part] = [*deletes, *puts, "project"]
        failed = {part for part, hit in zip(parts, cancelled_by_condition(e), strict=False) if hit}
        raise RowsNotWritten(failed) from e


def _quota_condition(size_delta: int, count_delta: int):  # type: ignore[no-untyped-def]
    settings = get_settings()
    condition = Project.id.exists()
    if count_delta > 0:
        condition &= Project.file_count <= settings.max_files_per_project - count_delta
    if size_delta > 0:
        condition &= Project.total_bytes <= settings.max_project_bytes - size_delta
    return condition


def limit_error(project_id: int, size_delta: int, count_delta: int) -> DomainError:
    """Why the project refused a change of its counters: gone (404), past the file-count limit
    (409) or the size limit (413), or changed meanwhile (409)."""
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


def add(project_id: int, path: str, data: bytes, mime_type: str, *, quota: bool = True) -> File:
    """A new row at `path`; its id is drawn until the transaction finds it free.

    Raises Conflict (409) when the path is taken, `limit_error`'s errors when the project
    refused the counters, RowsNotWritten otherwise.
    """
    def add_as(file_id: int) -> File:
        change = adding(project_id, file_id, path, data, mime_type)
        try:
            apply(project_id, [change], quota=quota)
        except RowsNotWritten as e:
            if "guard" in e.failed:
                raise Conflict(f"a file already exists at '{path}'") from e
            if "project" in e.failed:
                raise limit_error(project_id, len(data), 1) from e
            raise
        return change.record

    return with_new_id(add_as, lambda e: isinstance(e, RowsNotWritten) and "row" in e.failed)


def find(project_id: int, path: str) -> File | None:
    """The row at `path` (through its guard), or None."""
    try:
        guard = Unique.get(File.path_key(project_id, path))
        return File.get(project_id, guard.owner_id)
    except (Unique.DoesNotExist, File.DoesNotExist):
        return None


def find_many(project_id: int, paths: Sequence[str]) -> dict[str, File]:
    """The rows at these paths (two batch reads), keyed by path; absent paths are left out."""
    keys = [File.path_key(project_id, p) for p in paths]
    guards = {g.key: g.owner_id for g in Unique.batch_get(keys)}
    found = {f.id: f for f in File.batch_get([(project_id, i) for i in set(guards.values())])}
    rows: dict[str, File] = {}
    for path, key in zip(paths, keys, strict=True):
        row = found.get(guards.get(key, 0))
        if row is not None:
            rows[path] = row
    return rows
