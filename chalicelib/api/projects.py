"""Routes: /api/v1/projects (projects, their members and stars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import client_address, route
from chalicelib.openapi import Doc
from chalicelib.schemas.projects import (
    MemberAdd,
    MemberPublic,
    MemberUpdate,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    StarPublic,
)
from chalicelib.services import projects, stars
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)


@route(bp, "", methods=["POST"],
       doc=Doc("Create a project", ProjectCreate, ProjectPublic, status=201, errors=(409,)))
def create_project(caller: Caller, body: ProjectCreate) -> ProjectPublic:
    return projects.create_project(caller, body)


@route(bp, "", doc=Doc("List my projects (owned and shared with me)", response=ProjectPublic, is_list=True))
def list_my_projects(caller: Caller, limit: int, cursor: str | None) -> Page[ProjectPublic]:
    return projects.list_my_projects(caller, limit, cursor)


@route(bp, "/public",
       doc=Doc("List public projects, newest first", response=ProjectPublic, is_list=True, auth="none"))
def list_public_projects(limit: int, cursor: str | None) -> Page[ProjectPublic]:
    return projects.list_public_projects(limit, cursor)


@route(bp, "/{project_id}", doc=Doc("Get a project", response=ProjectPublic, auth="optional"))
def get_project(caller: Caller | None, project_id: int) -> ProjectPublic:
    return projects.get_project(caller, project_id, client_address(bp.current_request))


@route(bp, "/{project_id}", methods=["PUT", "PATCH"],
       doc=Doc("Update a project (owner)", ProjectUpdate, ProjectPublic, errors=(409,)))
def update_project(caller: Caller, project_id: int, body: ProjectUpdate) -> ProjectPublic:
    return projects.update_project(caller, project_id, body)


@route(bp, "/{project_id}", methods=["DELETE"],
       doc=Doc("Delete a project with its files and jobs (owner)", status=204))
def delete_project(caller: Caller, project_id: int) -> None:
    projects.delete_project(caller, project_id)


@route(bp, "/{project_id}/members",
       doc=Doc("List a project's members", response=MemberPublic, is_list=True, auth="optional"))
def list_members(caller: Caller | None, project_id: int, limit: int,
                 cursor: str | None) -> Page[MemberPublic]:
    return projects.list_members(caller, project_id, limit, cursor)


@route(bp, "/{project_id}/members", methods=["POST"],
       doc=Doc("Add a member by username (owner)", MemberAdd, MemberPublic, status=201,
               errors=(409,)))
def add_member(caller: Caller, project_id: int, body: MemberAdd) -> MemberPublic:
    return projects.add_member(caller, project_id, body)


@route(bp, "/{project_id}/members/{user_id}", methods=["PUT", "PATCH"],
       doc=Doc("Change a member's role (owner)", MemberUpdate, MemberPublic))
def update_member(caller: Caller, project_id: int, user_id: int, body: MemberUpdate) -> MemberPublic:
    return projects.update_member(caller, project_id, user_id, body)


@route(bp, "/{project_id}/members/{user_id}", methods=["DELETE"],
       doc=Doc("Remove a member (owner), or leave a project", status=204))
def remove_member(caller: Caller, project_id: int, user_id: int) -> None:
    projects.remove_member(caller, project_id, user_id)


@route(bp, "/{project_id}/star",
       doc=Doc("Whether I starred a project, and its star count", response=StarPublic))
def get_star(caller: Caller, project_id: int) -> StarPublic:
    return stars.starred(caller, project_id)


@route(bp, "/{project_id}/star", methods=["POST"],
       doc=Doc("Star a project (any reader; starring twice changes nothing)", response=StarPublic))
def star_project(caller: Caller, project_id: int) -> StarPublic:
    return stars.star(caller, project_id)


@route(bp, "/{project_id}/star", methods=["DELETE"],
       doc=Doc("Take back my star (unstarring twice changes nothing)", response=StarPublic))
def unstar_project(caller: Caller, project_id: int) -> StarPublic:
    return stars.unstar(caller, project_id)
