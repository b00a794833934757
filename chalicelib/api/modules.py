"""Routes: /api/v1/projects/{project_id}/modules (design units extracted from HDL files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import query, route
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.modules import ModuleParseResult, ModulePublic, ModuleUpdate
from chalicelib.services import modules
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)

MODULE_TYPE = Param("module_type", "query", "Only modules of this type (verilog_module, "
                    "verilog_package, verilog_interface, ...)")
SEARCH = Param("search", "query", "Only modules whose name contains this (case-insensitive)")


@route(bp, "/{project_id}/modules",
       doc=Doc("List a project's modules, packages and interfaces", response=ModulePublic,
               is_list=True, auth="optional", params=(MODULE_TYPE, SEARCH)))
def list_modules(caller: Caller | None, project_id: int, limit: int,
                 cursor: str | None) -> Page[ModulePublic]:
    request = bp.current_request
    return modules.list_modules(caller, project_id, query(request, "module_type"),
                                query(request, "search"), limit, cursor)


@route(bp, "/{project_id}/modules/reparse", methods=["POST"],
       doc=Doc("Re-parse every HDL file of the project (editors and owners)",
               response=ModuleParseResult))
def reparse(caller: Caller, project_id: int) -> ModuleParseResult:
    return modules.reparse_project(caller, project_id)


@route(bp, "/{project_id}/modules/{module_id}",
       doc=Doc("Get a module with its ports, parameters and instances", response=ModulePublic,
               auth="optional"))
def get_module(caller: Caller | None, project_id: int, module_id: int) -> ModulePublic:
    return modules.get_module(caller, project_id, module_id)


@route(bp, "/{project_id}/modules/{module_id}", methods=["PUT"],
       doc=Doc("Set a module's description (name and metadata come from the source)",
               ModuleUpdate, ModulePublic))
def update_module(caller: Caller, project_id: int, module_id: int,
                  body: ModuleUpdate) -> ModulePublic:
    return modules.update_module(caller, project_id, module_id, body)


@route(bp, "/{project_id}/modules/{module_id}", methods=["DELETE"],
       doc=Doc("Delete a module's record until its file is parsed again", status=204))
def delete_module(caller: Caller, project_id: int, module_id: int) -> None:
    modules.delete_module(caller, project_id, module_id)


@route(bp, "/{project_id}/files/{file_id}/parse", methods=["POST"],
       doc=Doc("Re-parse one file for modules; answers with its diagnostics",
               response=ModuleParseResult))
def parse_file(caller: Caller, project_id: int, file_id: int) -> ModuleParseResult:
    return modules.parse_file(caller, project_id, file_id)
