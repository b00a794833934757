"""Routes: /api/v1/projects (projects and their members)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import (
    client_address,
    json_response,
    list_response,
    optional_caller,
    page_request,
    parse_body,
    path_id,
    required_caller,
    route,
)
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

bp = Blueprint(__name__)


@route(bp, "", methods=["POST"],
       doc=Doc("Create a project", ProjectCreate, ProjectPublic, status=201, errors=(409,)))
def create_project() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    return json_response(projects.create_project(caller, parse_body(request, ProjectCreate)),
                         status=201)


@route(bp, "", doc=Doc("List my projects (owned and shared with me)", response=ProjectPublic, is_list=True))
def list_my_projects() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    limit, cursor = page_request(request)
    page = projects.list_my_projects(caller, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/public",
       doc=Doc("List public projects, newest first", response=ProjectPublic, is_list=True, auth="none"))
def list_public_projects() -> Response:
    request = bp.current_request
    limit, cursor = page_request(request)
    page = projects.list_public_projects(limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}", doc=Doc("Get a project", response=ProjectPublic, auth="optional"))
def get_project(project_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(projects.get_project(caller, path_id(project_id),
                                              client_address(bp.current_request)))


@route(bp, "/{project_id}", methods=["PUT", "PATCH"],
       doc=Doc("Update a project (owner)", ProjectUpdate, ProjectPublic, errors=(409,)))
def update_project(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, ProjectUpdate)
    return json_response(projects.update_project(caller, path_id(project_id), data))


@route(bp, "/{project_id}", methods=["DELETE"],
       doc=Doc("Delete a project with its files and jobs (owner)", status=204))
def delete_project(project_id: str) -> Response:
    projects.delete_project(required_caller(bp.current_request), path_id(project_id))
    return Response(body="", status_code=204)


@route(bp, "/{project_id}/members",
       doc=Doc("List a project's members", response=MemberPublic, is_list=True, auth="optional"))
def list_members(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    page = projects.list_members(caller, path_id(project_id), limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/members", methods=["POST"],
       doc=Doc("Add a member by username or email (owner)", MemberAdd, MemberPublic, status=201,
               errors=(409,)))
def add_member(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, MemberAdd)
    return json_response(projects.add_member(caller, path_id(project_id), data), status=201)


@route(bp, "/{project_id}/members/{user_id}", methods=["PUT", "PATCH"],
       doc=Doc("Change a member's role (owner)", MemberUpdate, MemberPublic))
def update_member(project_id: str, user_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, MemberUpdate)
    return json_response(projects.update_member(caller, path_id(project_id), path_id(user_id), data))


@route(bp, "/{project_id}/members/{user_id}", methods=["DELETE"],
       doc=Doc("Remove a member (owner), or leave a project", status=204))
def remove_member(project_id: str, user_id: str) -> Response:
    projects.remove_member(required_caller(bp.current_request), path_id(project_id), path_id(user_id))
    return Response(body="", status_code=204)


@route(bp, "/{project_id}/star",
       doc=Doc("Whether I starred a project, and its star count", response=StarPublic))
def get_star(project_id: str) -> Response:
    return json_response(stars.starred(required_caller(bp.current_request), path_id(project_id)))


@route(bp, "/{project_id}/star", methods=["POST"],
       doc=Doc("Star a project (any reader; starring twice changes nothing)", response=StarPublic))
def star_project(project_id: str) -> Response:
    return json_response(stars.star(required_caller(bp.current_request), path_id(project_id)))


@route(bp, "/{project_id}/star", methods=["DELETE"],
       doc=Doc("Take back my star (unstarring twice changes nothing)", response=StarPublic))
def unstar_project(project_id: str) -> Response:
    return json_response(stars.unstar(required_caller(bp.current_request), path_id(project_id)))
