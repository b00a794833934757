"""Project history: every files-API change becomes a commit on main; log, show, diff, restore.

Consistency with the files table: for files-API writes the DynamoDB metadata transaction is
the commit point and the git commit follows (`record_change`, retried on the newest head when a
concurrent writer moved the branch); for pushes and restores the conditional ref update is the
commit point and the files table follows (`chalicelib.services.gitsync`).
"""

from __future__ import annotations

import difflib
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger

from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, Unprocessable
from chalicelib.logs import SERVICE
from chalicelib.schemas.git import (
    ChangeKind,
    CommitDetail,
    CommitPublic,
    DiffFile,
    DiffPublic,
    FileAtCommit,
    PathChange,
    RestoreRequest,
)
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, encode_cursor
from chalicelib.services.projects import authorize

if TYPE_CHECKING:  # dulwich is imported lazily: it is not needed to serve most requests
    from dulwich.objects import Commit, Tree

    from chalicelib.services.gitstore import ProjectRepo

logger = Logger(service=SERVICE, child=True)

MAX_COMMIT_ATTEMPTS = 10
MAX_DIFF_BYTES = 1024 * 1024
# difflib's time grows with the square of the lines: a 1 MiB file of short lines takes about a
# minute. Bigger changes are listed as truncated without being diffed.
MAX_DIFF_INPUT_BYTES = 256 * 1024  # one file, old and new together
MAX_DIFF_TOTAL_INPUT_BYTES = 2 * 1024 * 1024  # all files of one diff
# Bytes alone do not bound difflib: 117 KB of short lines that each recur just under its
# "popular" threshold (1% of the lines) took 28 s. Its work grows with old lines x new lines,
# so that product is capped too (3,162 x 3,162 lines: under 0.1 s for the worst shape we
# found; bench/abuse_git.py measures it).
MAX_DIFF_LINE_PAIRS = 10_000_000  # one file: old lines x new lines
MAX_DIFF_TOTAL_LINE_PAIRS = 40_000_000  # all files of one diff
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
    from chalicelib.services.gitstore import open_repo

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


def lookup(repo: ProjectRepo, tree: Tree, path: str) -> tuple[int, bytes] | None:
    from dulwich.errors import NotTreeError
    from dulwich.object_store import tree_lookup_path

    try:
        mode, sha = tree_lookup_path(repo.object_store.__getitem__, tree.id, path.encode())
    except (KeyError, NotTreeError):  # absent, or a file where the path needs a folder
        return None
    return mode, sha


TreeChanges = list[tuple[bytes, int | None, bytes | None]]  # (path, mode, sha); None deletes


def commit_on_main(repo: ProjectRepo, build: Callable[[Tree], TreeChanges], author: bytes,
                   message: str | Callable[[Tree], str]) -> bytes | None:
    """Apply `build(base_tree)` changes on top of main and move main, retrying on races.

    Returns the new commit id, or None when the changes leave the tree as it was.
    """
    from dulwich.object_store import commit_tree_changes
    from dulwich.objects import Commit, ObjectID, Tree

    from chalicelib.services.gitstore import DEFAULT_BRANCH, ZERO_SHA

    for _ in range(MAX_COMMIT_ATTEMPTS):
        repo.refs.refresh()
        head = repo.head_commit()
        base = _tree_of(repo, head) if head else Tree()
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


def _tree_of(repo: ProjectRepo, commit_id: bytes) -> Tree:
    from dulwich.objects import Tree

    commit = _commit(repo, commit_id)
    tree = repo.object_store[commit.tree]
    assert isinstance(tree, Tree)
    return tree


def _commit(repo: ProjectRepo, commit_id: bytes) -> Commit:
    from dulwich.objects import Commit

    try:
        obj = repo.object_store[commit_id]
    except KeyError as e:
        raise NotFound("Commit not found") from e
    if not isinstance(obj, Commit):
        raise NotFound("Commit not found")
    return obj


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


# -- reading the history ---------------------------------------------------------------------

def _iso(timestamp: int, offset: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _split_identity(raw: bytes) -> tuple[str, str]:
    text = raw.decode("utf-8", "replace")
    name, _, rest = text.partition("<")
    return name.strip(), rest.rstrip(">").strip()


def commit_public(commit: Commit) -> CommitPublic:
    author_name, author_email = _split_identity(commit.author)
    committer_name, committer_email = _split_identity(commit.committer)
    message = commit.message.decode("utf-8", "replace")
    return CommitPublic(
        id=commit.id.decode(), message=message, summary=message.split("\n", 1)[0],
        author_name=author_name, author_email=author_email,
        authored_at=_iso(commit.author_time, commit.author_timezone),
        committer_name=committer_name, committer_email=committer_email,
        committed_at=_iso(commit.commit_time, commit.commit_timezone),
        parents=[p.decode() for p in commit.parents], tree=commit.tree.decode(),
    )


def _check_sha(sha: str) -> bytes:
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        raise NotFound("Commit not found")
    return sha.encode()


def _resolve_rev(repo: ProjectRepo, rev: str) -> bytes:
    if rev in ("HEAD", "main"):
        head = repo.head_commit()
        if head is None:
            raise NotFound("The project has no commits yet")
        return head
    return _check_sha(rev.lower())


def list_commits(caller: Caller | None, project_id: int, limit: int,
                 cursor: str | None) -> Page[CommitPublic]:
    """Newest first from main (or the commit a cursor pinned), `limit` at a time."""
    from dulwich.objects import ObjectID
    from dulwich.walk import Walker

    from chalicelib.services.gitstore import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    if cursor:
        # Signed and bound to this project, like every other cursor: a forged skip would make
        # each request walk as much history as it asked for.
        key = decode_cursor(cursor, {"project_id": project_id}) or {}
        try:
            head, skip = _check_sha(key["head"]["S"]), int(key["skip"]["N"])
        except (KeyError, TypeError, ValueError) as e:
            raise BadRequest("invalid cursor") from e
    else:
        found = repo.head_commit()
        if found is None:
            return Page(items=[])
        head, skip = found, 0
    walker = Walker(repo.object_store, [ObjectID(head)], max_entries=skip + limit + 1)
    entries = list(walker)[skip:]
    items = [commit_public(e.commit) for e in entries[:limit]]
    next_cursor = encode_cursor({"project_id": {"N": str(project_id)}, "head": {"S": head.decode()},
                                 "skip": {"N": str(skip + limit)}}) if len(entries) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def _changes(repo: ProjectRepo, old_tree: bytes | None, new_tree: bytes) -> list[PathChange]:
    from dulwich.objects import ObjectID

    out: list[PathChange] = []
    old_id = None if old_tree is None else ObjectID(old_tree)
    for change in repo.object_store.tree_changes(old_id, ObjectID(new_tree)):
        (old_path, new_path), _, (old_sha, new_sha) = change
        path = (new_path or old_path or b"").decode("utf-8", "replace")
        kind: ChangeKind = ("added" if old_path is None else "deleted" if new_path is None
                            else "modified")
        out.append(PathChange(path=path, change=kind,
                              old_blob=old_sha.decode() if old_sha else None,
                              new_blob=new_sha.decode() if new_sha else None))
    return out


def get_commit(caller: Caller | None, project_id: int, sha: str) -> CommitDetail:
    from chalicelib.services.gitstore import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    commit = _commit(repo, _resolve_rev(repo, sha))
    parent_tree = _commit(repo, commit.parents[0]).tree if commit.parents else None
    return CommitDetail(**commit_public(commit).model_dump(),
                        changes=_changes(repo, parent_tree, commit.tree))


def file_at(caller: Caller | None, project_id: int, sha: str, path: str) -> FileAtCommit:
    import base64

    from dulwich.objects import Blob

    from chalicelib.services import gitsync
    from chalicelib.services.gitstore import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    commit = _commit(repo, _resolve_rev(repo, sha))
    found = lookup(repo, _tree_of(repo, commit.id), path.strip("/"))
    # Only what a push may store: a regular file at a project path, within the size limit
    # (history stored before pushes were checked whole may hold more).
    if found is None or not stat.S_ISREG(found[0]) or gitsync.path_error(path.strip("/")):
        raise NotFound(f"'{path}' does not exist at commit {commit.id.decode()[:12]}")
    kind, data = repo.object_store.get_raw(found[1])
    if kind != Blob.type_num:
        raise NotFound(f"'{path}' does not exist at commit {commit.id.decode()[:12]}")
    if len(data) > get_settings().max_file_bytes:
        raise PayloadTooLarge(f"'{path}' is larger than the limit of "
                              f"{get_settings().max_file_bytes} bytes per file")
    try:
        content, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return FileAtCommit(commit=commit.id.decode(), path=path.strip("/"), size_bytes=len(data),
                        content=content, encoding=encoding)  # type: ignore[arg-type]


def diff(caller: Caller | None, project_id: int, base: str, head: str) -> DiffPublic:
    from chalicelib.services.gitstore import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    old = _commit(repo, _resolve_rev(repo, base))
    new = _commit(repo, _resolve_rev(repo, head))
    files: list[DiffFile] = []
    budget = MAX_DIFF_BYTES
    input_budget = MAX_DIFF_TOTAL_INPUT_BYTES
    pairs_budget = MAX_DIFF_TOTAL_LINE_PAIRS
    for change in _changes(repo, old.tree, new.tree):
        old_data = _blob_bytes(repo, change.old_blob)
        new_data = _blob_bytes(repo, change.new_blob)
        size = len(old_data) + len(new_data)
        pairs = (old_data.count(b"\n") + 1) * (new_data.count(b"\n") + 1)
        if (budget == 0 or size > min(MAX_DIFF_INPUT_BYTES, input_budget)
                or pairs > min(MAX_DIFF_LINE_PAIRS, pairs_budget)):
            files.append(DiffFile(**change.model_dump(), binary=False, patch=None, truncated=True))
            continue
        input_budget -= size
        pairs_budget -= pairs
        patch, binary = _unified(change.path, change.change, old_data, new_data)
        truncated = len(patch) > budget
        budget = max(0, budget - len(patch))
        files.append(DiffFile(**change.model_dump(), binary=binary,
                              patch=None if truncated else patch, truncated=truncated))
    return DiffPublic(base=old.id.decode(), head=new.id.decode(), files=files)


def _blob_bytes(repo: ProjectRepo, sha: str | None) -> bytes:
    if sha is None:
        return b""
    return repo.object_store.get_raw(sha.encode())[1]


def _unified(path: str, kind: str, old: bytes, new: bytes) -> tuple[str, bool]:
    try:
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary files differ: {path}\n", True
    if "\0" in old_text or "\0" in new_text:
        return f"Binary files differ: {path}\n", True
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile="/dev/null" if kind == "added" else f"a/{path}",
        tofile="/dev/null" if kind == "deleted" else f"b/{path}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines), False


def restore(caller: Caller, project_id: int, data: RestoreRequest) -> CommitPublic | None:
    """A new commit on main whose tree (or one path of it) is that of an older commit.

    Returns None when the project already matches. The files table follows the new tree.
    """
    from chalicelib.services import gitsync
    from chalicelib.services.gitstore import open_repo

    access = authorize(caller, project_id, "write")
    repo = open_repo(project_id)
    target = _commit(repo, _check_sha(data.commit.lower()))
    target_tree = _tree_of(repo, target.id)
    path = data.path.strip("/") if data.path else None

    def build(base: Tree) -> list[tuple[bytes, int | None, bytes | None]]:
        # Everything this restore would write, against the head it builds on, is held to the
        # files API's rules before main moves (a folder: every path under it).
        pending = gitsync.tree_diff(repo, base.id if len(base) else None, target_tree.id)
        if path is not None:
            pending = [c for c in pending if c.path == path or c.path.startswith(path + "/")]
        problems = gitsync.validate(repo, access.project, pending, count_limits=True)
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
    old_tree = _commit(repo, commit_id).parents
    gitsync.sync_files(repo, _tree_of(repo, old_tree[0]).id if old_tree else None,
                       _tree_of(repo, commit_id).id)
    return commit_public(_commit(repo, commit_id))


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
