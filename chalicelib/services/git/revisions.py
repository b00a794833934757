"""Naming a commit: the one grammar every route and job that takes a revision uses.

A revision is `HEAD` or `main` (main's head), a branch or a tag (`v1`, `refs/heads/x`,
`refs/tags/v1`), or a full or abbreviated (4 to 40 hex digits) object id; refs are looked up
before abbreviated ids, as git does. Annotated tags are followed to the commit they name
(git's `<rev>^{commit}`). What `resolve` refuses is an `UnknownRevision`, which a route turns
into a 404 (`GET /git/commits/{rev}`) and a job submission into a 422.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from chalicelib.errors import NotFound

if TYPE_CHECKING:  # dulwich is imported lazily: it is not needed to serve most requests
    from dulwich.objects import Commit, Tree

    from chalicelib.services.git.store import ProjectRepo

_HEX = re.compile(r"^[0-9a-f]{4,40}$")
_FULL = re.compile(r"^[0-9a-f]{40}$")
MAX_PEEL = 5  # tags of tags: git itself gives up long before anyone writes five


class UnknownRevision(Exception):
    """`rev` names no commit of the project; the message says why, for the caller to show."""


def resolve(repo: ProjectRepo, rev: str) -> bytes:
    """The commit id (40 hex digits, bytes) that `rev` names in `repo`.

    Raises UnknownRevision: no commits yet (HEAD), an unknown or ambiguous abbreviation, a name
    that is neither a ref nor an id, or an object that is not (and does not peel to) a commit.
    """
    from chalicelib.services.git.store import DEFAULT_BRANCH, HEAD

    rev = rev.strip()
    if rev in ("HEAD", "main", DEFAULT_BRANCH.decode()):
        head = repo.head_commit()
        if head is None:
            raise UnknownRevision("the project has no commits yet")
        return _commit_id(repo, head, rev)
    refs = {bytes(name).decode("utf-8", "replace"): bytes(target)
            for name, target in repo.refs.as_dict().items()}
    for name in (rev, f"refs/heads/{rev}", f"refs/tags/{rev}"):
        if name in refs and name != HEAD.decode():
            return _commit_id(repo, refs[name], rev)
    lowered = rev.lower()
    if _HEX.match(lowered):
        sha = lowered if len(lowered) == 40 else _expand(repo, lowered)
        return _commit_id(repo, sha.encode(), rev)
    raise UnknownRevision(f"{rev!r} is not a commit, branch or tag of this project")


def full_sha(text: str) -> bytes | None:
    """`text` as an object id when it is one spelled in full (40 lowercase hex digits)."""
    return text.encode() if _FULL.match(text) else None


def _expand(repo: ProjectRepo, prefix: str) -> str:
    """An abbreviated id to the one stored object it names."""
    found = repo.object_store.ids_with_prefix(prefix, limit=2)
    if len(found) != 1:
        raise UnknownRevision(f"{prefix!r} is unknown" if not found
                              else f"{prefix!r} is ambiguous; give more digits")
    return found[0]


def _commit_id(repo: ProjectRepo, sha: bytes, rev: str) -> bytes:
    found = peel(repo, sha)
    if found is None:
        raise UnknownRevision(f"{rev!r} is not a commit of this project")
    return bytes(found.id)


def peel(repo: ProjectRepo, sha: bytes) -> Commit | None:
    """The commit `sha` is, or that its annotated tag(s) name; None for anything else or an
    object the store does not have."""
    from dulwich.objects import Commit, Tag

    for _ in range(MAX_PEEL):
        try:
            obj = repo.object_store[sha]
        except KeyError:
            return None
        if isinstance(obj, Commit):
            return obj
        if not isinstance(obj, Tag):
            return None
        sha = obj.object[1]
    return None


def commit(repo: ProjectRepo, commit_id: bytes) -> Commit:
    """The commit object `commit_id`; NotFound (404) when it is absent or not a commit."""
    from dulwich.objects import Commit

    try:
        obj = repo.object_store[commit_id]
    except KeyError as e:
        raise NotFound("Commit not found") from e
    if not isinstance(obj, Commit):
        raise NotFound("Commit not found")
    return obj


def tree_of(repo: ProjectRepo, commit_id: bytes) -> Tree:
    """The root tree of commit `commit_id` (NotFound as `commit`)."""
    from dulwich.objects import Tree

    tree = repo.object_store[commit(repo, commit_id).tree]
    assert isinstance(tree, Tree)
    return tree


def lookup(repo: ProjectRepo, tree: Tree, path: str) -> tuple[int, bytes] | None:
    """(mode, object id) of `path` under `tree`, or None when there is nothing there."""
    from dulwich.errors import NotTreeError
    from dulwich.object_store import tree_lookup_path

    try:
        mode, sha = tree_lookup_path(repo.object_store.__getitem__, tree.id, path.encode())
    except (KeyError, NotTreeError):  # absent, or a file where the path needs a folder
        return None
    return mode, sha
