"""Reading a project's history: the log of main, one commit with its changes, a file at a
commit, and the diff of two commits. Every route names its commits with `revisions.resolve`.
"""

from __future__ import annotations

import base64
import difflib
import stat
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable
from chalicelib.schemas.git import (
    ChangeKind,
    CommitDetail,
    CommitPublic,
    DiffFile,
    DiffPublic,
    FileAtCommit,
    PathChange,
)
from chalicelib.services.git import revisions
from chalicelib.services.git.revisions import lookup, tree_of
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, encode_cursor
from chalicelib.services.projects import authorize

if TYPE_CHECKING:  # dulwich is imported lazily: it is not needed to serve most requests
    from dulwich.objects import Commit

    from chalicelib.services.git.store import ProjectRepo

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


def resolve(repo: ProjectRepo, rev: str) -> Commit:
    """The commit `rev` names (revisions.resolve); NotFound (404) with the reason otherwise."""
    try:
        return revisions.commit(repo, revisions.resolve(repo, rev))
    except revisions.UnknownRevision as e:
        raise NotFound(f"Commit not found: {e}") from e


def resolve_param(repo: ProjectRepo, rev: str, name: str) -> Commit:
    """The commit a query or body parameter `name` names; Unprocessable (422) naming the
    parameter otherwise. A revision in the path (`commits/{sha}`) names the resource itself and
    answers 404 (`resolve`); one in a parameter is a bad argument, as a job's `commit` and
    pipelines/compare's `base`/`head` are (422)."""
    try:
        return revisions.commit(repo, revisions.resolve(repo, rev))
    except revisions.UnknownRevision as e:
        raise Unprocessable(f"{name}: {e}") from e


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


def list_commits(caller: Caller | None, project_id: int, limit: int,
                 cursor: str | None) -> Page[CommitPublic]:
    """Newest first from main (or the commit a cursor pinned), `limit` at a time."""
    from dulwich.objects import ObjectID
    from dulwich.walk import Walker

    from chalicelib.services.git.store import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    if cursor:
        # Signed and bound to this project, like every other cursor: a forged skip would make
        # each request walk as much history as it asked for.
        key = decode_cursor(cursor, {"project_id": project_id}) or {}
        try:
            found_head, skip = revisions.full_sha(key["head"]["S"]), int(key["skip"]["N"])
        except (KeyError, TypeError, ValueError) as e:
            raise BadRequest("invalid cursor") from e
        if found_head is None:
            raise NotFound("Commit not found")
        head = found_head
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
    from chalicelib.services.git.store import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    commit = resolve(repo, sha)
    parent_tree = revisions.commit(repo, commit.parents[0]).tree if commit.parents else None
    return CommitDetail(**commit_public(commit).model_dump(),
                        changes=_changes(repo, parent_tree, commit.tree))


def file_at(caller: Caller | None, project_id: int, sha: str, path: str) -> FileAtCommit:
    from dulwich.objects import Blob

    from chalicelib.services.git.rules import path_error
    from chalicelib.services.git.store import open_repo

    authorize(caller, project_id, "read")
    problem = path_error(path.strip("/"))
    if problem:  # the files API's path guard, and its answer
        raise Unprocessable(f"path: {problem}")
    repo = open_repo(project_id)
    commit = resolve(repo, sha)
    found = lookup(repo, tree_of(repo, commit.id), path.strip("/"))
    # Only what a push may store: a regular file at a project path, within the size limit
    # (history stored before pushes were checked whole may hold more).
    if found is None or not stat.S_ISREG(found[0]) or path_error(path.strip("/")):
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
    from chalicelib.services.git.store import open_repo

    authorize(caller, project_id, "read")
    repo = open_repo(project_id)
    old = resolve_param(repo, base, "base")
    new = resolve_param(repo, head, "head")
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

