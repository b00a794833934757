"""A fork reads the cache of the project it was forked from (issue 16: "forks benefit").

Cached runs serve their own project (cache.scoped). A fork (`Project.forked_from`) trusts its
source, whose history it copied: a key the fork misses is looked up in the source's entries
too, in the same BatchGetItem, but only while the fork's owner can still read the source (the
projects' read check: public, the owner, or a member of any role). Never the other way: the
source never reads a fork's entries, so a fork's tree cannot poison its source's results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """The project a fork was forked from, and the fork's owner (whose read access counts)."""

    project_id: int
    owner_id: int

    def access_keys(self) -> tuple[Any, Any]:
        """The items deciding the owner's read access: the source project and the owner's
        membership in it (fetched with the cache items, see `readable`)."""
        from chalicelib.models.projects import Member, Project

        return Project(self.project_id), Member(self.project_id, self.owner_id)

    def readable(self, project: Any, member: Any) -> bool:
        """Whether the fork's owner can read the source, from the fetched `access_keys` items
        (None when absent): the source exists and is public, owned by them, or they are a
        member (services/projects.authorize's read rule)."""
        if project is None:
            return False
        return (project.visibility == "public" or int(project.owner_id) == self.owner_id
                or member is not None)


def source_of(project: Any) -> Source | None:
    """The cache source of `project` (models.projects.Project, or None): the project it was
    forked from, with its owner; None for a project that is not a fork."""
    if project is None or project.forked_from is None:
        return None
    if int(project.forked_from) == int(project.id):
        return None
    return Source(int(project.forked_from), int(project.owner_id))


def lookup(project_id: int, key: str, grading: bool = False) -> tuple[int, int] | None:
    """(project id, job id) of the run that stored `key` for the project (cache.lookup), or for
    a fork that misses, its source's run while the fork's owner can read the source; None.
    One BatchGetItem (the project's item and the project), a second only for a fork's miss
    (the source's item with its access items). `grading`: a graded job reads no other
    project's entries."""
    from chalicelib.models.base import fetch_many
    from chalicelib.models.pipelines import JobCache
    from chalicelib.models.projects import Project
    from chalicelib.services.pipelines.cache import scoped

    own, project = fetch_many(JobCache(scoped(project_id, key)), Project(project_id))
    if own is not None and int(own.project_id) == project_id:
        return project_id, int(own.job_id)
    source = None if grading else source_of(project)
    if source is None:
        return None
    found, member, item = fetch_many(*source.access_keys(),
                                     JobCache(scoped(source.project_id, key)))
    if item is None or int(item.project_id) != source.project_id:
        return None
    return (source.project_id, int(item.job_id)) if source.readable(found, member) else None
