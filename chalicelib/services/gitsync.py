"""Git trees meet the files table: validate a pushed tree, then make the files table follow main.

A push (or a restore) moves main first, with a conditional write; the files table then follows
the difference between the old and the new tree. Each row is changed only if it still holds
the old tree's content, so a files-API edit that landed in between (and was committed on top
of the new head by `history.record_change`) is not overwritten by the older pushed content.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from dulwich.objects import ObjectID, Tree
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import DomainError
from chalicelib.ids import distinct_number_id, with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.accounts import Unique
from chalicelib.models.base import transaction_connection, utcnow_iso
from chalicelib.models.files import File
from chalicelib.models.projects import Project
from chalicelib.services import modules
from chalicelib.services.files import guess_mime, path_key
from chalicelib.services.gitstore import ProjectRepo, io_pool
from chalicelib.services.paths import normalise_path

logger = Logger(service=SERVICE, child=True)

MAX_REPORTED_ERRORS = 5
TRANSACTION_FILES = 45  # <= 2 items each + the project: under DynamoDB's 100-item limit
_GITLINK = 0o160000


@dataclass(frozen=True)
class FileChange:
    path: str
    old_sha: bytes | None  # blob ids in git
    new_sha: bytes | None
    new_mode: int | None


def _oid(sha: bytes | None) -> ObjectID | None:
    return None if sha is None else ObjectID(sha)


def tree_diff(repo: ProjectRepo, old_tree: bytes | None, new_tree: bytes | None) -> list[FileChange]:
    out: list[FileChange] = []
    for change in repo.object_store.tree_changes(_oid(old_tree), _oid(new_tree)):
        (old_path, new_path), (_, new_mode), (old_sha, new_sha) = change
        raw = new_path if new_path is not None else old_path
        assert raw is not None
        out.append(FileChange(raw.decode("utf-8", "surrogateescape"), old_sha, new_sha, new_mode))
    return out


def path_error(path: str) -> str | None:
    """Why `path` is not a canonical project path (paths.normalise_path), or None."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return f"'{path}': file names must be UTF-8"
    try:
        canonical = normalise_path(path, path.rsplit("/", 1)[-1])
    except DomainError as e:
        return f"'{path}': {e.detail}"
    if canonical != path:
        return f"'{path}': not a canonical project path (expected '{canonical}')"
    return None


def _entry_error(repo: ProjectRepo, change: FileChange, size: int) -> str | None:
    assert change.new_mode is not None
    if stat.S_ISLNK(change.new_mode):
        return f"'{change.path}': symbolic links are not supported"
    if change.new_mode == _GITLINK:
        return f"'{change.path}': submodules are not supported"
    problem = path_error(change.path)
    if problem:
        return problem
    limit = get_settings().max_file_bytes
    if size > limit:
        return f"'{change.path}' is {size} bytes, larger than the limit of {limit} bytes per file"
    return None


def _size(repo: ProjectRepo, sha: bytes | None) -> int:
    return 0 if sha is None else len(repo.object_store.get_raw(sha)[1])


def _limit_errors(project: Project, count_delta: int, bytes_delta: int) -> list[str]:
    settings = get_settings()
    errors = []
    count = int(project.file_count or 0) + count_delta
    if count > settings.max_files_per_project:
        errors.append(f"the project would have {count} files, more than the limit of "
                      f"{settings.max_files_per_project}")
    total = int(project.total_bytes or 0) + bytes_delta
    if total > settings.max_project_bytes:
        errors.append(f"the project would hold {total} bytes, more than the limit of "
                      f"{settings.max_project_bytes} bytes")
    return errors


def validate(repo: ProjectRepo, project: Project, changes: list[FileChange],
             *, count_limits: bool) -> list[str]:
    """Everything the files API would refuse about these changes, as readable messages."""
    repo.object_store.prefetch([s for c in changes for s in (c.old_sha, c.new_sha) if s])
    errors: list[str] = []
    count_delta = 0
    bytes_delta = 0
    for change in changes:
        regular = change.new_mode is not None and stat.S_ISREG(change.new_mode)
        new_size = _size(repo, change.new_sha) if regular else 0
        if change.new_sha is not None and change.new_mode is not None:
            problem = _entry_error(repo, change, new_size)
            if problem:
                errors.append(problem)
        bytes_delta += new_size - _size(repo, change.old_sha)
        count_delta += (change.new_sha is not None) - (change.old_sha is not None)
    if count_limits:
        errors += _limit_errors(project, count_delta, bytes_delta)
    if len(errors) > MAX_REPORTED_ERRORS:
        errors = errors[:MAX_REPORTED_ERRORS] + [f"... and {len(errors) - MAX_REPORTED_ERRORS} more"]
    return errors


class NewHistory:
    """What a push (or an import) adds to the store, checked before any of it is stored.

    Only the objects reached from the refs being set are checked and kept (`reached`); the rest
    of a pack is dropped, so nothing unvalidated is ever stored. Every new tree is held to the
    files API's rules (names, no symlinks or submodules, file sizes) whichever commit it
    belongs to, so the content routes, jobs and restores of any stored commit only ever see
    trees the rules allowed. Objects already stored were checked when they were stored; for
    those, only their existence (and, for folders, their type) is checked: a push may not point
    at what the server does not have (git's own "connectivity check").
    """

    def __init__(self, repo: ProjectRepo) -> None:
        self.repo = repo
        self.reached: set[bytes] = set()
        self._stored: set[bytes] = set()

    def check(self, tips: list[bytes]) -> list[str]:
        """Problems with the new objects reachable from `tips`, as readable messages.

        On problems, the objects this call reached are forgotten again (not kept)."""
        before = set(self.reached)
        errors: list[str] = []
        elsewhere: dict[bytes, _Step] = {}  # stored objects pointed at: their first step
        stack = [_Step(t, None, "the pushed ref", None) for t in tips]
        while stack:
            step = stack.pop()
            if step.sha in self.reached:
                continue
            obj = self.repo.object_store.pending_object(step.sha)
            if obj is None:
                if step.sha not in self._stored:
                    elsewhere.setdefault(step.sha, step)
                continue
            self.reached.add(step.sha)
            kind = obj.type_name.decode()
            if step.expect is not None and kind != step.expect:
                errors.append(f"{step.where()}: {step.sha.decode()[:12]} is a {kind}, "
                              f"not a {step.expect}")
                continue
            errors += self._object(obj, step, stack)
        errors += self._check_stored(elsewhere)
        if errors:
            self.reached = before
        return _capped(errors)

    def _object(self, obj: object, step: _Step, stack: list[_Step]) -> list[str]:
        from dulwich.objects import Blob, Commit, Tag, Tree

        if isinstance(obj, Commit):
            label = f"commit {obj.id.decode()[:12]}"
            stack.append(_Step(obj.tree, "tree", label, None))
            stack += [_Step(p, "commit", label, None) for p in obj.parents]
        elif isinstance(obj, Tag):
            stack.append(_Step(obj.object[1], None, f"tag {obj.id.decode()[:12]}", None))
        elif isinstance(obj, Tree):
            return self._tree(obj, step, stack)
        elif isinstance(obj, Blob):
            size, limit = obj.raw_length(), get_settings().max_file_bytes
            if size > limit:
                return [f"{step.where()} is {size} bytes, larger than the limit of {limit} "
                        "bytes per file"]
        return []

    def _tree(self, tree: Tree, step: _Step, stack: list[_Step]) -> list[str]:
        prefix = step.path + "/" if step.path else ""
        errors = []
        for entry in tree.iteritems():
            path = prefix + entry.path.decode("utf-8", "surrogateescape")
            if stat.S_ISDIR(entry.mode):
                problem = path_error(path)  # a folder's name follows the same rules
                if problem:
                    errors.append(f"{step.label}: {problem}")
                else:
                    stack.append(_Step(entry.sha, "tree", step.label, path))
                continue
            problem = _mode_error(path, entry.mode) or path_error(path)
            if problem:
                errors.append(f"{step.label}: {problem}")
            else:
                stack.append(_Step(entry.sha, "blob", step.label, path))
        return errors

    def _check_stored(self, wanted: dict[bytes, _Step]) -> list[str]:
        """Objects the new ones point at that are not new: they must be in the store already."""
        store = self.repo.object_store
        shas = list(wanted)
        present = list(io_pool().map(store.contains_loose, shas))
        folders = [s for s, ok in zip(shas, present, strict=True) if ok and wanted[s].expect == "tree"]
        store.prefetch(folders)
        errors = []
        for sha, ok in zip(shas, present, strict=True):
            step = wanted[sha]
            if not ok:
                errors.append(f"{step.where()}: object {sha.decode()[:12]} is neither in the push "
                              "nor on the server")
            elif step.expect == "tree" and store.get_raw(sha)[0] != Tree.type_num:
                errors.append(f"{step.where()}: {sha.decode()[:12]} is not a folder")
            else:
                self._stored.add(sha)
        return errors


@dataclass(frozen=True)
class _Step:
    """An object to visit: its id, the type its parent says it has, and where it was named."""

    sha: bytes
    expect: str | None
    label: str  # "commit <sha>", "tag <sha>", "the pushed ref"
    path: str | None  # the path inside the commit's tree, for trees and blobs

    def where(self) -> str:
        return f"{self.label}: '{self.path}'" if self.path else self.label


def _mode_error(path: str, mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return f"'{path}': symbolic links are not supported"
    if mode == _GITLINK:
        return f"'{path}': submodules are not supported"
    if not stat.S_ISREG(mode):
        return f"'{path}': unsupported file mode {mode:o}"
    return None


def _capped(errors: list[str]) -> list[str]:
    if len(errors) > MAX_REPORTED_ERRORS:
        return errors[:MAX_REPORTED_ERRORS] + [f"... and {len(errors) - MAX_REPORTED_ERRORS} more"]
    return errors


def sync_files(repo: ProjectRepo, old_tree: bytes | None, new_tree: bytes | None) -> None:
    """Make the files table follow main from `old_tree` to `new_tree` (idempotent).

    Bodies go to S3 in parallel; rows change in transactions of up to 45 files, each with the
    project's counters, so a 50-file push is a few round trips rather than hundreds.
    """
    changes = tree_diff(repo, old_tree, new_tree)
    if not changes:
        return
    repo.object_store.prefetch([s for c in changes for s in (c.old_sha, c.new_sha) if s])
    rows = _rows(repo.project_id, [c.path for c in changes])
    drawn: set[int] = set()
    planned = [(c, _plan(repo, c, rows.get(c.path), drawn)) for c in changes]
    ops = [(c, op) for c, op in planned if op is not None]
    uploads = [op for _, op in ops if op.data is not None]
    _write_all(repo, ops, uploads)
    # The modules of every HDL file the change touched follow it (services/modules.py).
    after = _rows(repo.project_id, [c.path for c in changes])
    touched = [*rows.values(), *(op.record for _, op in ops), *after.values()]
    modules.refresh_quietly(repo.project_id, [r.id for r in touched if modules.is_hdl(r.filepath)],
                            modules.sha256_map(op.data for op in uploads if op.data is not None))


def _write_all(repo: ProjectRepo, ops: list[tuple[FileChange, _Op]], uploads: list[_Op]) -> None:
    list(io_pool().map(lambda op: storage.put_bytes(op.record.s3_key, op.data or b"",
                                                    op.record.mime_type), uploads))
    for start in range(0, len(ops), TRANSACTION_FILES):
        chunk = ops[start:start + TRANSACTION_FILES]
        try:
            _write(repo.project_id, [op for _, op in chunk])
        except TransactWriteError:
            # Some row changed since it was read (a concurrent files-API write): one at a time.
            storage.delete_keys(op.record.s3_key for _, op in chunk if op.data is not None)
            for change, _ in chunk:
                _apply_one(repo, change)
            continue
        storage.delete_keys(op.old_key for _, op in chunk if op.old_key)


@dataclass
class _Op:
    kind: str  # "create" | "update" | "delete"
    record: File  # the row to write (create, update) or delete
    data: bytes | None = None  # new body, uploaded before the transaction
    old_key: str | None = None  # body to delete once the transaction succeeded
    size_delta: int = 0


def _rows(project_id: int, paths: list[str]) -> dict[str, File]:
    guards = {g.key: g.owner_id for g in Unique.batch_get([path_key(project_id, p) for p in paths])}
    found = {f.id: f for f in File.batch_get([(project_id, i) for i in set(guards.values())])}
    rows: dict[str, File] = {}
    for path in paths:
        row = found.get(guards.get(path_key(project_id, path), 0))
        if row is not None:
            rows[path] = row
    return rows


def _plan(repo: ProjectRepo, change: FileChange, row: File | None, drawn: set[int]) -> _Op | None:
    """What to write for one change; a new row's id is distinct from the others in `drawn` (a
    collision with an existing row fails the chunk's transaction, which then goes one by one)."""
    project_id = repo.project_id
    old_data = repo.object_store.get_raw(change.old_sha)[1] if change.old_sha else None
    if row is not None and old_data is not None and row.sha256 != _sha256(old_data):
        return None  # the row was changed after the old tree: newer than this push
    if change.new_sha is None:
        return None if row is None else _Op("delete", row, size_delta=-int(row.size_bytes))
    data = repo.object_store.get_raw(change.new_sha)[1]
    now = utcnow_iso()
    if row is None:
        file_id = distinct_number_id(drawn)
        record = File(project_id, file_id, filename=change.path.rsplit("/", 1)[-1],
                      filepath=change.path, size_bytes=len(data),
                      mime_type=guess_mime(change.path, data, None), sha256=_sha256(data),
                      s3_key=storage.file_body_key(project_id, file_id), created_at=now,
                      updated_at=now)
        return _Op("create", record, data, size_delta=len(data))
    if row.sha256 == _sha256(data):
        return None
    old_key, old_size = row.s3_key, int(row.size_bytes)
    row.s3_key = storage.file_body_key(project_id, row.id)
    row.size_bytes, row.sha256, row.updated_at = len(data), _sha256(data), now
    return _Op("update", row, data, old_key=old_key, size_delta=len(data) - old_size)


def _write(project_id: int, ops: list[_Op]) -> None:
    count_delta = 0
    with TransactWrite(connection=transaction_connection()) as tx:
        for op in ops:
            record = op.record
            if op.kind == "create":
                tx.save(Unique(path_key(project_id, record.filepath), owner_id=record.id),
                        condition=Unique.key.does_not_exist())
                tx.save(record, condition=File.id.does_not_exist())
                count_delta += 1
            elif op.kind == "update":
                tx.save(record)  # carries the version condition
            else:
                tx.delete(record)
                tx.delete(Unique(path_key(project_id, record.filepath), owner_id=record.id))
                count_delta -= 1
        tx.update(Project(project_id), actions=[
            Project.file_count.add(count_delta),
            Project.total_bytes.add(sum(op.size_delta for op in ops)),
            Project.updated_at.set(utcnow_iso()),
        ], condition=Project.id.exists(), add_version_condition=False)
    for op in ops:
        if op.kind == "delete":
            op.old_key = op.record.s3_key


def _apply_one(repo: ProjectRepo, change: FileChange) -> None:
    try:
        _apply(repo, change)
    except TransactWriteError:
        # A concurrent files-API write to the same path won: its commit follows ours.
        logger.warning("files table row changed meanwhile; kept the newer one",
                       extra={"project_id": repo.project_id, "path": change.path})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _find(project_id: int, path: str) -> File | None:
    try:
        guard = Unique.get(path_key(project_id, path))
    except Unique.DoesNotExist:
        return None
    try:
        return File.get(project_id, guard.owner_id)
    except File.DoesNotExist:
        return None


def _apply(repo: ProjectRepo, change: FileChange) -> None:
    project_id = repo.project_id
    old_data = repo.object_store.get_raw(change.old_sha)[1] if change.old_sha else None
    row = _find(project_id, change.path)
    if row is not None and old_data is not None and row.sha256 != _sha256(old_data):
        return  # the row was changed after the old tree: newer than this push
    if change.new_sha is None:
        if row is not None:
            _delete(project_id, row)
        return
    data = repo.object_store.get_raw(change.new_sha)[1]
    if row is None:
        _create(project_id, change.path, data)
    elif row.sha256 != _sha256(data):
        _update(project_id, row, data)


def _create(project_id: int, path: str, data: bytes) -> None:
    """A new row for `path`; its id is drawn until the transaction finds it free."""
    with_new_id(lambda file_id: _create_as(project_id, file_id, path, data),
                lambda e: isinstance(e, TransactWriteError) and _reasons(e)[1:2] == [
                    "ConditionalCheckFailed"])


def _reasons(e: TransactWriteError) -> list[str | None]:
    return [r.code if r else None for r in (e.cancellation_reasons or [])]


def _create_as(project_id: int, file_id: int, path: str, data: bytes) -> None:
    now = utcnow_iso()
    mime = guess_mime(path, data, None)
    record = File(project_id, file_id, filename=path.rsplit("/", 1)[-1], filepath=path,
                  size_bytes=len(data), mime_type=mime, sha256=_sha256(data),
                  s3_key=storage.file_body_key(project_id, file_id), created_at=now,
                  updated_at=now)
    storage.put_bytes(record.s3_key, data, mime)
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(Unique(path_key(project_id, path), owner_id=file_id),
                    condition=Unique.key.does_not_exist())
            tx.save(record, condition=File.id.does_not_exist())
            tx.update(Project(project_id), actions=[
                Project.file_count.add(1), Project.total_bytes.add(len(data)),
                Project.updated_at.set(now),
            ], condition=Project.id.exists(), add_version_condition=False)
    except TransactWriteError:
        storage.delete_keys([record.s3_key])
        raise


def _update(project_id: int, record: File, data: bytes) -> None:
    old_key, old_size = record.s3_key, int(record.size_bytes)
    record.s3_key = storage.file_body_key(project_id, record.id)
    record.size_bytes = len(data)
    record.sha256 = _sha256(data)
    record.updated_at = utcnow_iso()
    storage.put_bytes(record.s3_key, data, record.mime_type)
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(record)  # carries the version condition
            tx.update(Project(project_id), actions=[
                Project.total_bytes.add(len(data) - old_size),
                Project.updated_at.set(record.updated_at),
            ], condition=Project.id.exists(), add_version_condition=False)
    except TransactWriteError:
        storage.delete_keys([record.s3_key])
        raise
    storage.delete_keys([old_key])


def _delete(project_id: int, record: File) -> None:
    with TransactWrite(connection=transaction_connection()) as tx:
        tx.delete(record)
        tx.delete(Unique(path_key(project_id, record.filepath), owner_id=record.id))
        tx.update(Project(project_id), actions=[
            Project.file_count.add(-1), Project.total_bytes.add(-int(record.size_bytes)),
            Project.updated_at.set(utcnow_iso()),
        ], condition=Project.id.exists(), add_version_condition=False)
    storage.delete_keys([record.s3_key])

