"""Writing a project's history: every files-API change becomes a commit on main, and restores.

Consistency with the files table: for files-API writes the DynamoDB metadata transaction is
the commit point and the git commit follows (`record_change`, retried on the newest head when a
concurrent writer moved the branch); for pushes and restores the conditional ref update is the
commit point and the files table follows (`services/git/sync.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger

from chalicelib.errors import Conflict, NotFound, Unprocessable
from chalicelib.logs import SERVICE
from chalicelib.schemas.git import CommitPublic, RestoreRequest
from chalicelib.services.git import revisions
from chalicelib.services.git.log import commit_public
from chalicelib.services.git.revisions import lookup, tree_of
from chalicelib.services.identity import Caller
from chalicelib.services.projects import authorize

if TYPE_CHECKING:  # dulwich is imported lazily: it is not needed to serve most requests
    from dulwich.objects import Tree

    from chalicelib.services.git.store import ProjectRepo

logger = Logger(service=SERVICE, child=True)

MAX_COMMIT_ATTEMPTS = 10
FILE_MODE = 0o100644


@dataclass(frozen=True)
class Edit:
    """One path change: new content, a deletion (data None, copy_from None), or a move."""

    path: str
    data: bytes | None = None
    copy_from: str | None = None  # take the blob at this path of the head (rename, no new body)


def identity_of(caller: Caller) -> bytes:
    """`Name <email>` for the caller's commits: the no-reply address unless they chose to show
    their login email (public history is readable by anyone)."""
    from chalicelib.services.accounts import commit_email

    user = caller.user
    name = (user.full_name or user.username or "a6hub user").replace("<", "").replace(">", "")
    return f"{name} <{commit_email(user)}>".encode()


def record_change(caller: Caller, project_id: int, edits: Sequence[Edit],
                  message: str | None = None) -> str | None:
    """Commit a files-API change on main; the files table already holds it.

    Never raises: the change itself is durable, and an error here must not turn a saved edit
    into a failed request. A failure is logged, and the file stays out of the history until it
    is changed again.
    """
    if not edits:
        return None
    try:
        return _commit_edits(project_id, edits, identity_of(caller), message)
    except Exception:  # noqa: BLE001 - logged; see the docstring
        logger.exception("could not record a commit", extra={"project_id": project_id})
        return None


def _commit_edits(project_id: int, edits: Sequence[Edit], author: bytes,
                  message: str | None) -> str | None:
    from chalicelib.services.git.store import open_repo

    repo = open_repo(project_id)

    def build(base: Tree) -> list[tuple[bytes, int | None, bytes | None]]:
        return _resolve(repo, base, edits)

    def describe(base: Tree) -> str:
        return message or _default_message(repo, base, edits)

    commit = commit_on_main(repo, build, author, describe)
    return None if commit is None else commit.decode()


def _resolve(repo: ProjectRepo, base: Tree,
             edits: Sequence[Edit]) -> list[tuple[bytes, int | None, bytes | None]]:
    from dulwich.objects import Blob

    changes: list[tuple[bytes, int | None, bytes | None]] = []
    for edit in edits:
        path = edit.path.encode()
        if edit.copy_from is not None:
            found = lookup(repo, base, edit.copy_from)
            if found is None:
                continue  # the source is not in the history either; nothing to move
            changes.append((path, found[0], found[1]))
        elif edit.data is None:
            if lookup(repo, base, edit.path) is not None:
                changes.append((path, None, None))
        else:
            blob = Blob.from_string(edit.data)
            repo.object_store.add_object(blob)
            existing = lookup(repo, base, edit.path)
            changes.append((path, existing[0] if existing else FILE_MODE, blob.id))
    return changes


TreeChanges = list[tuple[bytes, int | None, bytes | None]]  # (path, mode, sha); None deletes


def commit_on_main(repo: ProjectRepo, build: Callable[[Tree], TreeChanges], author: bytes,
                   message: str | Callable[[Tree], str]) -> bytes | None:
    """Apply `build(base_tree)` changes on top of main and move main, retrying on races.

    Returns the new commit id, or None when the changes leave the tree as it was.
    """
    from dulwich.object_store import commit_tree_changes
    from dulwich.objects import Commit, ObjectID, Tree

    from chalicelib.services.git.store import DEFAULT_BRANCH, ZERO_SHA

    for _ in range(MAX_COMMIT_ATTEMPTS):
        repo.refs.refresh()
        head = repo.head_commit()
        base = tree_of(repo, head) if head else Tree()
        changes = build(base)
        base_id = base.id if head else None
        new_tree = (commit_tree_changes(repo.object_store, _copy(base), cast(Any, changes))
                    if changes else base_id)
        if new_tree == base_id or new_tree is None:
            repo.object_store.discard()
            return None
        commit = Commit()
        commit.tree = new_tree
        commit.parents = [ObjectID(head)] if head else []
        commit.author = commit.committer = author
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        text = message if isinstance(message, str) else message(base)
        commit.message = text.encode() + (b"" if text.endswith("\n") else b"\n")
        repo.object_store.add_object(commit)
        repo.object_store.flush()
        if repo.refs.set_if_equals(DEFAULT_BRANCH, head or ZERO_SHA, commit.id):
            return bytes(commit.id)
        logger.info("main moved while committing; rebuilding on the new head")
    raise Conflict("the project history is changing too fast; retry")


def _copy(tree: Tree) -> Tree:
    from dulwich.objects import Tree

    copy = Tree()
    for entry in tree.iteritems():
        copy.add(entry.path, entry.mode, entry.sha)
    return copy


def _default_message(repo: ProjectRepo, base: Tree, edits: Sequence[Edit]) -> str:
    moves = [e for e in edits if e.copy_from is not None]
    if moves:
        return f"Rename {moves[0].copy_from} to {moves[0].path}"
    writes = [e for e in edits if e.data is not None]
    if len(writes) == 1:
        verb = "Update" if lookup(repo, base, writes[0].path) else "Add"
        return f"{verb} {writes[0].path}"
    if writes:
        return f"Update {len(writes)} files"
    return f"Delete {edits[0].path}" if edits else "Update files"


def restore(caller: Caller, project_id: int, data: RestoreRequest) -> CommitPublic | None:
    """A new commit on main whose tree (or one path of it) is that of an older commit.

    Returns None when the project already matches. The files table follows the new tree.
    """
    from chalicelib.services.git.log import resolve_param
    from chalicelib.services.git.rules import path_error, tree_diff, validate
    from chalicelib.services.git.store import open_repo
    from chalicelib.services.git.sync import sync_files

    access = authorize(caller, project_id, "write")
    path = data.path.strip("/") if data.path else None
    problem = path_error(path) if path is not None else None
    if problem:  # the files API's path guard, and its answer
        raise Unprocessable(f"path: {problem}")
    repo = open_repo(project_id)
    target = resolve_param(repo, data.commit, "commit")
    target_tree = tree_of(repo, target.id)

    def build(base: Tree) -> list[tuple[bytes, int | None, bytes | None]]:
        # Everything this restore would write, against the head it builds on, is held to the
        # files API's rules before main moves (a folder: every path under it).
        pending = tree_diff(repo, base.id if len(base) else None, target_tree.id)
        if path is not None:
            pending = [c for c in pending if c.path == path or c.path.startswith(path + "/")]
        problems = validate(repo, access.project, pending, count_limits=True)
        if problems:
            raise Unprocessable("cannot restore: " + "; ".join(problems))
        if path is None:
            return _whole_tree_changes(repo, base, target_tree)
        found = lookup(repo, target_tree, path)
        if found is None and lookup(repo, base, path) is None:
            raise NotFound(f"'{path}' does not exist at commit {data.commit[:12]}")
        return [(path.encode(), found[0], found[1]) if found else (path.encode(), None, None)]

    what = path or "the project"
    message = data.message or f"Restore {what} to {target.id.decode()[:12]}"
    commit_id = commit_on_main(repo, build, identity_of(caller), message)
    if commit_id is None:
        return None
    old_tree = revisions.commit(repo, commit_id).parents
    sync_files(repo, tree_of(repo, old_tree[0]).id if old_tree else None,
                       tree_of(repo, commit_id).id)
    return commit_public(revisions.commit(repo, commit_id))


def _whole_tree_changes(repo: ProjectRepo, base: Tree,
                        target: Tree) -> list[tuple[bytes, int | None, bytes | None]]:
    changes: list[tuple[bytes, int | None, bytes | None]] = []
    for change in repo.object_store.tree_changes(base.id if len(base) else None, target.id):
        (old_path, new_path), (_, new_mode), (_, new_sha) = change
        if new_path is None:
            assert old_path is not None
            changes.append((old_path, None, None))
        else:
            changes.append((new_path, new_mode, new_sha))
    return changes


def edits_for_update(old_path: str, new_path: str, new_body: bytes | None) -> list[Edit]:
    """The path changes of one files-API update (new content, a move, or both)."""
    if new_path == old_path:
        return [] if new_body is None else [Edit(new_path, new_body)]
    moved = Edit(new_path, new_body) if new_body is not None else Edit(new_path, copy_from=old_path)
    return [moved, Edit(old_path)]
