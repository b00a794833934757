"""A project's git storage quota: bytes of stored git objects (A6HUB_MAX_GIT_BYTES_PER_PROJECT).

The files limits (A6HUB_MAX_PROJECT_BYTES, files per project) bound one tree; history adds up
beyond them (every edit keeps its old blobs). `Project.git_bytes` counts the bytes of the
objects the store uploaded for the project (their stored, compressed size); `reserve` adds to
it with a conditional write before anything is uploaded, so concurrent pushes cannot both pass.
A push, an API commit or an import that would pass the quota is refused naming both figures;
a fork reserves what its source has counted. The count is conservative: an object stored twice
(pushed again) is counted twice, and nothing is subtracted. Stores written before the count
existed start at 0.
"""

from __future__ import annotations

from pynamodb.exceptions import UpdateError

from chalicelib.config import get_settings
from chalicelib.errors import PayloadTooLarge
from chalicelib.models.base import condition_failed
from chalicelib.models.projects import Project


class GitQuotaExceeded(PayloadTooLarge):
    """413: the objects would take the project's git storage past its quota."""


def reserve(project_id: int, size: int) -> None:
    """Add `size` bytes to the project's git storage, or raise GitQuotaExceeded (nothing added).

    A project that does not exist (deleted during the request: its objects are purged with it)
    has no count to add to; nothing is written, so no project item is created by the count.
    """
    quota = get_settings().max_git_bytes_per_project
    if size <= 0:
        return
    if size > quota:  # the condition below lets a first count through whatever its size
        raise GitQuotaExceeded(f"{size} new bytes of git objects are more than the project's "
                               f"git storage quota of {quota} bytes")
    try:
        Project(project_id).update(
            actions=[Project.git_bytes.add(size)],
            condition=Project.id.exists() & (Project.git_bytes.does_not_exist()
                                             | (Project.git_bytes <= quota - size)))
    except UpdateError as e:
        if not condition_failed(e):
            raise
        try:
            used = int(Project.get(project_id, consistent_read=True).git_bytes or 0)
        except Project.DoesNotExist:
            return
        raise GitQuotaExceeded(
            f"the project's git storage would hold {used + size} bytes ({used} stored, {size} "
            f"new), more than its quota of {quota} bytes") from None


def check_room(project: Project, size: int) -> None:
    """Before a files-API write stores anything: refuse (GitQuotaExceeded, 413) a body of `size`
    bytes that would take `project`'s git storage past its quota. The body's own size stands
    for what its commit will store (zlib usually makes that smaller)."""
    quota = get_settings().max_git_bytes_per_project
    used = int(project.git_bytes or 0)
    if used + size > quota:
        raise GitQuotaExceeded(
            f"the project's git storage holds {used} bytes; {size} more would pass its quota "
            f"of {quota} bytes (history included: delete the project or ask for more)")
