"""Routes: /api/v1/builds (the web client's build page: FPGA targets, settings, start, status)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.openapi import Doc
from chalicelib.schemas.builds import (
    BuildConfigSaved,
    BuildFlowConfig,
    BuildPresets,
    BuildRequest,
    BuildStatus,
    BuildTargets,
)
from chalicelib.schemas.jobs import JobPublic
from chalicelib.services import builds

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)


@route(bp, "/presets", doc=Doc("This deployment's FPGA targets as build presets",
                               response=BuildPresets, auth="none"))
def get_presets() -> BuildPresets:
    return builds.presets()


@route(bp, "/pdks", doc=Doc("The targets a build's `pdk` may name here (FPGA devices; no ASIC PDK)",
                            response=BuildTargets, auth="none"))
def get_targets() -> BuildTargets:
    return builds.targets()


@route(bp, "/{project_id}/build/config",
       doc=Doc("The project's saved build settings, or defaults", response=BuildFlowConfig,
               auth="optional"))
def get_config(caller: Caller | None, project_id: int) -> BuildFlowConfig:
    return builds.get_config(caller, project_id)


@route(bp, "/{project_id}/build/config", methods=["PUT"],
       doc=Doc("Validate and save the project's build settings (editors and owners)",
               BuildFlowConfig, BuildConfigSaved))
def save_config(caller: Caller, project_id: int, body: BuildFlowConfig) -> BuildConfigSaved:
    return builds.save_config(caller, project_id, body)


@route(bp, "/{project_id}/build", methods=["POST"],
       doc=Doc("Start an FPGA build (a job of type build) from the settings", BuildRequest,
               JobPublic, status=201, errors=(503,)))
def start_build(caller: Caller, project_id: int, body: BuildRequest) -> JobPublic:
    return builds.start_build(caller, project_id, body.config)


@route(bp, "/{project_id}/build/status",
       doc=Doc("The latest build: status, steps, progress, log and result", response=BuildStatus,
               auth="optional"))
def get_status(caller: Caller | None, project_id: int) -> BuildStatus:
    return builds.build_status(caller, project_id)
