"""Which commit a job runs on: a requested revision resolved to a sha at submit time
(`revisions.resolve`, the grammar of every route that names a commit), or main's head."""

from __future__ import annotations

from chalicelib.errors import Unprocessable
from chalicelib.models.git import GitRef
from chalicelib.services.git import revisions
from chalicelib.services.git.store import DEFAULT_BRANCH


def head_of_main(project_id: int) -> str | None:
    """main's commit now (one GetItem), or None while the project has no history."""
    try:
        return str(GitRef.get(project_id, DEFAULT_BRANCH.decode(), consistent_read=True).target)
    except GitRef.DoesNotExist:
        return None


def main_ref_key(project_id: int) -> GitRef:
    """The key of the project's main ref, to read it in another read's round trip
    (`authorize(..., also=...)`; strongly consistent there too, as `head_of_main`)."""
    return GitRef(project_id, DEFAULT_BRANCH.decode())


def target_of(ref: GitRef | None) -> str | None:
    """The commit a main ref read with `main_ref_key` names, None while there is no history."""
    return str(ref.target) if ref is not None else None


def resolve(project_id: int, rev: str) -> str:
    """A commit sha for `rev` (HEAD, main, a branch, a tag, a full or abbreviated sha); 422 if none."""
    from chalicelib.services.git.store import open_repo

    try:
        return revisions.resolve(open_repo(project_id), rev).decode()
    except revisions.UnknownRevision as e:
        raise Unprocessable(f"commit: {e}") from e
