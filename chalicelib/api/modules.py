"""Routes: /api/v1/projects/{project_id}/modules (design units extracted from HDL files)."""

from __future__ import annotations

from collections.abc import Mapping

from chalice import Blueprint, Response

from chalicelib.api.http import (
    json_response,
    list_response,
    optional_caller,
    page_request,
    parse_body,
    path_id,
    required_caller,
    route,
)
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.modules import ModuleParseResult, ModulePublic, ModuleUpdate
from chalicelib.services import modules

bp = Blueprint(__name__)

MODULE_TYPE = Param("module_type", "query", "Only modules of this type (verilog_module, "
                    "verilog_package, verilog_interface, ...)")
SEARCH = Param("search", "query", "Only modules whose name contains this (case-insensitive)")


@route(bp, "/{project_id}/modules",
       doc=Doc("List a project's modules, packages and interfaces", response=ModulePublic,
               is_list=True, auth="optional", params=(MODULE_TYPE, SEARCH)))
def list_modules(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    params: Mapping[str, str] = request.query_params or {}
    page = modules.list_modules(caller, path_id(project_id), params.get("module_type") or None,
                                params.get("search") or None, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/modules/reparse", methods=["POST"],
       doc=Doc("Re-parse every HDL file of the project (editors and owners)",
               response=ModuleParseResult))
def reparse(project_id: str) -> Response:
    caller = required_caller(bp.current_request)
    return json_response(modules.reparse_project(caller, path_id(project_id)))


@route(bp, "/{project_id}/modules/{module_id}",
       doc=Doc("Get a module with its ports, parameters and instances", response=ModulePublic,
               auth="optional"))
def get_module(project_id: str, module_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(modules.get_module(caller, path_id(project_id), path_id(module_id)))


@route(bp, "/{project_id}/modules/{module_id}", methods=["PUT"],
       doc=Doc("Set a module's description (name and metadata come from the source)",
               ModuleUpdate, ModulePublic))
def update_module(project_id: str, module_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, ModuleUpdate)
    return json_response(modules.update_module(caller, path_id(project_id), path_id(module_id),
                                               data))


@route(bp, "/{project_id}/modules/{module_id}", methods=["DELETE"],
       doc=Doc("Delete a module's record until its file is parsed again", status=204))
def delete_module(project_id: str, module_id: str) -> Response:
    modules.delete_module(required_caller(bp.current_request), path_id(project_id),
                          path_id(module_id))
    return Response(body="", status_code=204)


@route(bp, "/{project_id}/files/{file_id}/parse", methods=["POST"],
       doc=Doc("Re-parse one file for modules; answers with its diagnostics",
               response=ModuleParseResult))
def parse_file(project_id: str, file_id: str) -> Response:
    caller = required_caller(bp.current_request)
    return json_response(modules.parse_file(caller, path_id(project_id), path_id(file_id)))
