"""Routes: /api/v1/projects (projects and their members)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import (
    json_response,
    list_response,
    optional_caller,
    page_request,
    parse_body,
    required_caller,
    route,
)
from chalicelib.schemas.projects import MemberAdd, MemberUpdate, ProjectCreate, ProjectUpdate
from chalicelib.services import projects

bp = Blueprint(__name__)


@route(bp, "", methods=["POST"])
def create_project() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    return json_response(projects.create_project(caller, parse_body(request, ProjectCreate)),
                         status=201)


@route(bp, "")
def list_my_projects() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    limit, cursor = page_request(request)
    page = projects.list_my_projects(caller, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/public")
def list_public_projects() -> Response:
    request = bp.current_request
    limit, cursor = page_request(request)
    page = projects.list_public_projects(limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}")
def get_project(project_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(projects.get_project(caller, project_id))


@route(bp, "/{project_id}", methods=["PUT", "PATCH"])
def update_project(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, ProjectUpdate)
    return json_response(projects.update_project(caller, project_id, data))


@route(bp, "/{project_id}", methods=["DELETE"])
def delete_project(project_id: str) -> Response:
    projects.delete_project(required_caller(bp.current_request), project_id)
    return Response(body="", status_code=204)


@route(bp, "/{project_id}/members")
def list_members(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    page = projects.list_members(caller, project_id, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/members", methods=["POST"])
def add_member(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, MemberAdd)
    return json_response(projects.add_member(caller, project_id, data), status=201)


@route(bp, "/{project_id}/members/{user_id}", methods=["PUT", "PATCH"])
def update_member(project_id: str, user_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, MemberUpdate)
    return json_response(projects.update_member(caller, project_id, user_id, data))


@route(bp, "/{project_id}/members/{user_id}", methods=["DELETE"])
def remove_member(project_id: str, user_id: str) -> Response:
    projects.remove_member(required_caller(bp.current_request), project_id, user_id)
    return Response(body="", status_code=204)
