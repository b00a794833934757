"""Routes: /api/v1/projects/{project_id}/pipelines (CI runs of main) and the status badge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.api.http import route
from chalicelib.errors import Unprocessable
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.pipelines import (
    PipelineComparison,
    PipelinePublic,
    PipelineValidate,
    PipelineValidation,
)
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)

REF = Param("ref", description="the branch: main (the only one pipelines run on)")


def _params() -> Mapping[str, str]:
    return bp.current_request.query_params or {}


@route(bp, "/{project_id}/pipelines", doc=Doc(
    "List a project's pipelines (one per commit of main holding .a6hub.yml), newest first",
    response=PipelinePublic, is_list=True, auth="optional", params=(REF,)))
def list_pipelines(caller: Caller | None, project_id: int, limit: int,
                   cursor: str | None) -> Page[PipelinePublic]:
    from chalicelib.services.pipelines import views

    return views.list_pipelines(caller, project_id, _params().get("ref"), limit, cursor)


@route(bp, "/{project_id}/pipelines/compare", doc=Doc(
    "Compare the pipelines of two commits: per job the outcome change, synthesis figures "
    "with deltas, cocotb tests that changed outcome", response=PipelineComparison,
    auth="optional", params=(Param("base", required=True, description="older revision"),
                             Param("head", required=True, description="newer revision"))))
def compare(caller: Caller | None, project_id: int) -> PipelineComparison:
    from chalicelib.services.pipelines import views

    params = _params()
    if not params.get("base") or not params.get("head"):
        raise Unprocessable("query parameters 'base' and 'head' are required")
    return views.compare(caller, project_id, params["base"], params["head"])


@route(bp, "/{project_id}/pipelines/validate", methods=["POST"], doc=Doc(
    "Check a pipeline file (.a6hub.yml) as a push of main would; faults carry line numbers",
    PipelineValidate, PipelineValidation))
def validate(caller: Caller, project_id: int, body: PipelineValidate) -> PipelineValidation:
    from chalicelib.services.pipelines import views

    return views.validate(caller, project_id, body.content)


@route(bp, "/{project_id}/badge.svg", doc=Doc(
    "The CI badge of a branch's newest pipeline (SVG; public projects need no token)",
    auth="optional", content_type="image/svg+xml", params=(REF,)))
def badge(caller: Caller | None, project_id: int) -> Response:
    from chalicelib.services.pipelines import views
    from chalicelib.services.pipelines.badge import badge_svg

    status = views.badge_status(caller, project_id, _params().get("ref"))
    return Response(body=badge_svg(status), status_code=200, headers={
        "Content-Type": "image/svg+xml; charset=utf-8",
        "Cache-Control": "no-cache, max-age=0, must-revalidate"})
