"""Routes: /health, /openapi.json, /docs."""

from __future__ import annotations

import time

from chalice import Blueprint, Response

from chalicelib.api.http import json_response, route
from chalicelib.services import health

bp = Blueprint(__name__)


@route(bp, "/health")
def get_health() -> Response:
    report = health.report(time.monotonic())
    return json_response(report, status=200 if report["status"] == "ok" else 503)
