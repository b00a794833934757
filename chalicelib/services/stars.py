"""Stars: one per user and project, with the project's `stars_count` moved in the same transaction."""

from __future__ import annotations

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.errors import NotFound
from chalicelib.models.base import cancelled_by_condition, transact, utcnow_iso
from chalicelib.models.projects import Project, Star
from chalicelib.schemas.projects import StarPublic
from chalicelib.services.identity import Caller
from chalicelib.services.projects import authorize


def _count(project_id: int) -> int:
    try:
        project = Project.get(project_id, consistent_read=True, attributes_to_get=["stars_count"])
    except Project.DoesNotExist as e:
        raise NotFound("Project not found") from e
    return int(project.stars_count or 0)


def star(caller: Caller, project_id: int) -> StarPublic:
    """Star a project the caller can read. Idempotent: a second star changes nothing."""
    authorize(caller, project_id, "read")

    def write(tx: TransactWrite) -> None:
        tx.save(Star(project_id, caller.id, created_at=utcnow_iso()),
                condition=Star.user_id.does_not_exist())
        tx.update(Project(project_id), actions=[Project.stars_count.add(1)],
                  condition=Project.id.exists(), add_version_condition=False)

    try:
        transact(write, backoff_seconds=0.02)
    except TransactWriteError as e:
        failed = cancelled_by_condition(e) + [False, False]
        if failed[1]:
            raise NotFound("Project not found") from e
        if not failed[0]:
            raise
        # already starred: nothing to change
    return StarPublic(project_id=project_id, starred=True, stars_count=_count(project_id))


def unstar(caller: Caller, project_id: int) -> StarPublic:
    """Take the caller's star back. Idempotent: unstarring an unstarred project changes nothing.

    Needs read access like starring; a member who lost access keeps a star they cannot remove,
    as on GitHub, until the project is deleted (cleanup removes its stars).
    """
    authorize(caller, project_id, "read")

    def write(tx: TransactWrite) -> None:
        tx.delete(Star(project_id, caller.id), condition=Star.user_id.exists())
        tx.update(Project(project_id), actions=[Project.stars_count.add(-1)],
                  condition=Project.id.exists() & (Project.stars_count > 0),
                  add_version_condition=False)

    try:
        transact(write, backoff_seconds=0.02)
    except TransactWriteError as e:
        failed = cancelled_by_condition(e) + [False, False]
        if not failed[0] and not failed[1]:
            raise
        # not starred (or the counter already at 0): nothing to change
    return StarPublic(project_id=project_id, starred=False, stars_count=_count(project_id))


def starred(caller: Caller, project_id: int) -> StarPublic:
    """Whether the caller has starred the project, with its count."""
    authorize(caller, project_id, "read")
    try:
        Star.get(project_id, caller.id)
        mine = True
    except Star.DoesNotExist:
        mine = False
    return StarPublic(project_id=project_id, starred=mine, stars_count=_count(project_id))
