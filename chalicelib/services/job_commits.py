"""Which commit a job runs on: a requested revision resolved to a sha at submit time, or main's head."""

from __future__ import annotations

import re

from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.errors import Unprocessable
from chalicelib.models.git import GitRef
from chalicelib.services.gitstore import DEFAULT_BRANCH, ProjectRepo, objects_prefix

_HEX = re.compile(r"^[0-9a-f]{4,40}$")
_MAX_PEEL = 5


def head_of_main(project_id: int) -> str | None:
    """main's commit now (one GetItem), or None while the project has no history."""
    try:
        return str(GitRef.get(project_id, DEFAULT_BRANCH.decode(), consistent_read=True).target)
    except GitRef.DoesNotExist:
        return None


def resolve(project_id: int, rev: str) -> str:
    """A commit sha for `rev` (HEAD, main, a branch, a tag, a full or abbreviated sha); 422 if none."""
    from chalicelib.services.gitstore import open_repo

    rev = rev.strip()
    repo = open_repo(project_id)
    if rev in ("HEAD", "main", "refs/heads/main"):
        head = head_of_main(project_id)
        if head is None:
            raise Unprocessable("commit: the project has no commits yet")
        return head
    refs = {name.decode(): target for name, target in repo.refs.as_dict().items()}
    for name in (rev, f"refs/heads/{rev}", f"refs/tags/{rev}"):
        if name in refs and name != "HEAD":
            return _peel(repo, refs[name], rev)
    lowered = rev.lower()
    if _HEX.match(lowered):
        sha = lowered if len(lowered) == 40 else _expand(project_id, lowered)
        return _peel(repo, sha.encode(), rev)
    raise Unprocessable(f"commit: {rev!r} is not a commit, branch or tag of this project")


def _expand(project_id: int, prefix: str) -> str:
    """An abbreviated sha to the one object it names (one S3 List call)."""
    base = objects_prefix(project_id)
    found = client("s3").list_objects_v2(Bucket=get_settings().bucket, Prefix=base + prefix,
                                         MaxKeys=2).get("Contents", [])
    if len(found) != 1:
        raise Unprocessable(f"commit: {prefix!r} is unknown" if not found
                            else f"commit: {prefix!r} is ambiguous; give more digits")
    return str(found[0]["Key"])[len(base):]


def _peel(repo: ProjectRepo, sha: bytes, rev: str) -> str:
    """Follow annotated tags to the commit; anything else that is not a commit is a 422."""
    from dulwich.objects import Commit, Tag

    store = repo.object_store
    for _ in range(_MAX_PEEL):
        try:
            obj = store[sha]
        except KeyError:
            break
        if isinstance(obj, Commit):
            return obj.id.decode()
        if not isinstance(obj, Tag):
            break
        sha = obj.object[1]
    raise Unprocessable(f"commit: {rev!r} is not a commit of this project")
