"""Routes: /health, /openapi.json, /docs (Swagger UI and its static files)."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from chalice import Blueprint, Chalice, Response
from chalice.app import Request

from chalicelib import swagger_ui
from chalicelib.api.http import json_response, route
from chalicelib.config import get_settings
from chalicelib.errors import NotFound
from chalicelib.openapi import DOC_ATTRIBUTE, Doc, Operation, build_document
from chalicelib.schemas.common import HealthPublic
from chalicelib.services import health

bp = Blueprint(__name__)

API_TITLE = "a6hub API"
API_VERSION = "1.0.0"
API_DESCRIPTION = ("Accounts, HDL projects with collaborators, files and jobs. Lists are arrays "
                   "paged by `limit` and `cursor` (next page in the `Link` header); errors are "
                   '`{"detail": ...}`.')


def operations(app: Chalice) -> list[Operation]:
    """Every (method, path) the app registered, with the Doc its route() declared (or None)."""
    found = []
    for path, entries in app.routes.items():
        for method, entry in entries.items():
            view = entry.view_function
            found.append(Operation(method=method, path=path, name=view.__name__,
                                   tag=view.__module__.rsplit(".", 1)[-1],
                                   doc=getattr(view, DOC_ATTRIBUTE, None)))
    return found


@lru_cache(maxsize=1)
def _document(app: Chalice) -> dict[str, Any]:
    return build_document(operations(app), title=API_TITLE, version=API_VERSION,
                          description=API_DESCRIPTION, max_page_size=get_settings().max_page_size)


def _stage_prefix(request: Request) -> str:
    """'/dev' when API Gateway serves the API under a stage path, '' locally."""
    full = str((request.context or {}).get("path") or request.path).rstrip("/")
    path = request.path.rstrip("/")
    return full[: -len(path)] if path and full.endswith(path) else ""


@route(bp, "/health", doc=Doc("Service health and dependency reachability", response=HealthPublic,
                              auth="none", errors=(503,)))
def get_health() -> Response:
    report = health.report(time.monotonic())
    return json_response(report, status=200 if report["status"] == "ok" else 503)


@route(bp, "/openapi.json", doc=Doc("This OpenAPI 3.1 document", auth="none"))
def get_openapi() -> Response:
    request = bp.current_request
    document = {**_document(bp.current_app), "servers": [{"url": _stage_prefix(request) or "/"}]}
    return json_response(document)


@route(bp, "/docs", doc=Doc("Swagger UI for this API", auth="none", content_type="text/html"))
def get_docs() -> Response:
    return Response(body=swagger_ui.page(_stage_prefix(bp.current_request)), status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8"})


@route(bp, "/docs/{asset}", doc=Doc(
    "Swagger UI's static files", auth="none", content_type="*/*",
    description="Text files (css, js, html) are sent as text; images are binary, so through API "
                "Gateway they need an Accept header naming their type (browsers send one)."))
def get_docs_asset(asset: str) -> Response:
    found = swagger_ui.asset(asset)
    if found is None:
        raise NotFound("No such file")
    return Response(body=found.body, status_code=200,
                    headers={"Content-Type": found.content_type,
                             "Cache-Control": "public, max-age=86400"})
