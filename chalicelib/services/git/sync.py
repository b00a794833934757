"""The files table follows main: after a push, restore, import or fork moved main (a
conditional write on the ref, the commit point), the rows follow the difference between the
old and the new tree (rows written by `services/file_rows.py`).

Each row is changed only if it still holds the old tree's content, so a files-API edit that
landed in between (and was committed on top of the new head by `commits.record_change`) is not
overwritten by the older pushed content.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from chalicelib.errors import DomainError
from chalicelib.ids import distinct_number_id
from chalicelib.logs import SERVICE
from chalicelib.models.files import File
from chalicelib.services import file_rows, modules
from chalicelib.services.file_rows import guess_mime
from chalicelib.services.git.rules import FileChange, tree_diff
from chalicelib.services.git.store import ProjectRepo, io_pool

logger = Logger(service=SERVICE, child=True)

TRANSACTION_FILES = 45  # <= 2 items each + the project: under DynamoDB's 100-item limit


@dataclass(frozen=True)
class _Plan:
    """What one tree change does to the files table."""

    kind: file_rows.Kind
    path: str
    row: File | None  # the row as read (replace, remove)
    data: bytes | None  # the new body (add, replace)


def sync_files(repo: ProjectRepo, old_tree: bytes | None, new_tree: bytes | None) -> None:
    """Make the files table follow main from `old_tree` to `new_tree` (idempotent).

    Bodies go to S3 in parallel; rows change in transactions of up to 45 files, each with the
    project's counters, so a 50-file push is a few round trips rather than hundreds. A chunk
    whose transaction fails (a row changed since it was read: a concurrent files-API write) is
    planned again file by file.
    """
    changes = tree_diff(repo, old_tree, new_tree)
    if not changes:
        return
    repo.object_store.prefetch([s for c in changes for s in (c.old_sha, c.new_sha) if s])
    paths = [c.path for c in changes]
    rows = file_rows.find_many(repo.project_id, paths)
    drawn: set[int] = set()
    planned = [(c, _row_change(repo.project_id, plan, drawn))
               for c in changes if (plan := _plan(repo, c, rows.get(c.path))) is not None]
    for start in range(0, len(planned), TRANSACTION_FILES):
        chunk = planned[start:start + TRANSACTION_FILES]
        try:
            file_rows.apply(repo.project_id, [row for _, row in chunk], quota=False,
                            each=io_pool().map)
        except file_rows.RowsNotWritten:
            for change, _ in chunk:
                _apply_one(repo, change)
    # The modules of every HDL file the change touched follow it (services/modules.py).
    after = file_rows.find_many(repo.project_id, paths)
    touched = [*rows.values(), *(row.record for _, row in planned), *after.values()]
    modules.refresh_quietly(repo.project_id,
                            [r.id for r in touched if modules.is_hdl(r.filepath)],
                            modules.sha256_map(row.body for _, row in planned if row.body))


def _plan(repo: ProjectRepo, change: FileChange, row: File | None) -> _Plan | None:
    """What `change` does to `row` (the row at its path, or None); None: nothing."""
    old_data = repo.object_store.get_raw(change.old_sha)[1] if change.old_sha else None
    if row is not None and old_data is not None and row.sha256 != file_rows.sha256(old_data):
        return None  # the row was changed after the old tree: newer than this push
    if change.new_sha is None:
        return None if row is None else _Plan("remove", change.path, row, None)
    data = repo.object_store.get_raw(change.new_sha)[1]
    if row is None:
        return _Plan("add", change.path, None, data)
    if row.sha256 == file_rows.sha256(data):
        return None
    return _Plan("replace", change.path, row, data)


def _row_change(project_id: int, plan: _Plan, drawn: set[int]) -> file_rows.RowChange:
    """The row change of a plan; a new row's id is distinct from the others in `drawn` (a
    collision with an existing row fails the chunk's transaction, which then goes one by one)."""
    if plan.kind == "add":
        assert plan.data is not None
        return file_rows.adding(project_id, distinct_number_id(drawn), plan.path, plan.data,
                                guess_mime(plan.path, plan.data, None))
    assert plan.row is not None
    if plan.kind == "replace":
        return file_rows.replacing(plan.row, plan.data)
    return file_rows.removing(plan.row)


def _apply_one(repo: ProjectRepo, change: FileChange) -> None:
    """One change, planned again against the row as it is now."""
    project_id = repo.project_id
    plan = _plan(repo, change, file_rows.find(project_id, change.path))
    if plan is None:
        return
    try:
        if plan.kind == "add":
            assert plan.data is not None
            file_rows.add(project_id, plan.path, plan.data,
                          guess_mime(plan.path, plan.data, None), quota=False)
        else:
            file_rows.apply(project_id, [_row_change(project_id, plan, set())], quota=False)
    except (file_rows.RowsNotWritten, DomainError):
        # A concurrent files-API write to the same path won: its commit follows ours.
        logger.warning("files table row changed meanwhile; kept the newer one",
                       extra={"project_id": project_id, "path": change.path})

