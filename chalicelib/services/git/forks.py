"""Forks: a new project owned by the caller with the full history of one they can read."""

from __future__ import annotations

from typing import cast

from chalicelib import storage
from chalicelib.errors import Conflict
from chalicelib.models.git import GitRef
from chalicelib.schemas.git import ForkRequest
from chalicelib.schemas.projects import ProjectCreate, ProjectPublic, Visibility
from chalicelib.services import projects
from chalicelib.services.git.store import io_pool, objects_prefix, open_repo
from chalicelib.services.git.sync import sync_files
from chalicelib.services.identity import Caller


def fork_project(caller: Caller, project_id: int, data: ForkRequest) -> ProjectPublic:
    source = projects.authorize(caller, project_id, "read").project
    # A collaborator may keep a copy, not publish what the owner kept private: the fork
    # records its private origin, and create_project (and every later visibility change)
    # lets only that project's owner make it public.
    refs, shas = _reachable(source.id)  # refused past the limit before anything is made
    created = projects.create_project(caller, ProjectCreate(
        name=data.name or source.name,
        description=data.description if data.description is not None else source.description,
        visibility=cast(Visibility, data.visibility or source.visibility)), fork_of=source)
    try:
        _copy_repository(source.id, created.id, refs, shas)
    except Exception:
        projects.delete_project(caller, created.id)  # no half-made fork stays behind
        raise
    return projects.project_public(projects.authorize(caller, created.id, "read").project)


MAX_FORK_OBJECTS = 5_000  # one request: ~16 server-side copies at a time, ~40 ms each on S3


def _reachable(source_id: int) -> tuple[list[GitRef], list[bytes]]:
    """The source's refs and the objects they reach (what a clone would get).

    Whatever else its store holds (history of deleted branches, objects stored before pushes
    were checked whole) stays behind. Raises Conflict (409) past MAX_FORK_OBJECTS.
    """
    from dulwich.object_store import MissingObjectFinder
    from dulwich.objects import ObjectID

    refs = list(GitRef.query(source_id, consistent_read=True))
    wanted = sorted({ObjectID(r.target.encode()) for r in refs})
    shas: list[bytes] = []
    for sha, _ in MissingObjectFinder(open_repo(source_id).object_store, [], wanted):
        shas.append(sha)
        if len(shas) > MAX_FORK_OBJECTS:
            raise Conflict(f"the project's history holds more than {MAX_FORK_OBJECTS} objects: "
                           "too large to fork in one request")
    return refs, shas


def _copy_repository(source_id: int, target_id: int, refs: list[GitRef],
                     shas: list[bytes]) -> None:
    """Copy the reachable objects (server-side), then the refs, then fill the files table."""
    source_prefix, target_prefix = objects_prefix(source_id), objects_prefix(target_id)

    def copy(sha: bytes) -> None:
        storage.copy_key(source_prefix + sha.decode(), target_prefix + sha.decode())

    list(io_pool().map(copy, shas))
    with GitRef.batch_write() as batch:
        for ref in refs:
            batch.save(GitRef(target_id, ref.ref, target=ref.target, updated_at=ref.updated_at))
    repo = open_repo(target_id)
    head = repo.head_commit()
    if head is not None:
        commit = repo.object_store[head]
        sync_files(repo, None, commit.tree)  # type: ignore[attr-defined]
