"""Removal of everything that hangs off a deleted project: members, stars, files (rows and path
guards), jobs, modules, webhooks, git refs, S3 objects."""

from __future__ import annotations

from typing import TypeVar

from pynamodb.models import Model

from chalicelib import storage
from chalicelib.models.accounts import Unique
from chalicelib.models.builds import BuildSettings
from chalicelib.models.files import File
from chalicelib.models.git import GitRef
from chalicelib.models.modules import Module
from chalicelib.models.projects import Member, Star
from chalicelib.models.webhooks import Webhook

M = TypeVar("M", bound=Model)


def _delete_all(model: type[M], project_id: int) -> list[M]:
    items = list(model.query(project_id))
    with model.batch_write() as batch:
        for item in items:
            batch.delete(item)
    return items


def purge_project(project_id: int) -> None:
    """Idempotent: safe to run again after a partial failure."""
    from chalicelib.models.jobs import Job  # jobs arrive with the runner; optional here

    _delete_all(Member, project_id)
    _delete_all(Star, project_id)
    files = _delete_all(File, project_id)
    with Unique.batch_write() as batch:
        for f in files:
            batch.delete(f.path_guard())
    _delete_all(Job, project_id)
    _delete_all(BuildSettings, project_id)
    _delete_all(Module, project_id)
    _delete_all(Webhook, project_id)  # their deliveries expire (TTL)
    storage.delete_prefix(storage.project_prefix(project_id))
    storage.delete_prefix(f"jobs/{project_id}/")
    _delete_all(GitRef, project_id)
    storage.delete_prefix(f"git/{project_id}/")  # the repository's objects (git/store)
