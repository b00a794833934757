"""HTTP middleware: request id and access log, and {"detail"} for Chalice's own error bodies."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from chalice.app import Request, Response

from chalicelib.api.http import CORS_HEADERS
from chalicelib.config import ConfigurationError, get_settings, signing_key
from chalicelib.logs import SERVICE

logger = Logger(service=SERVICE, child=True)


def _detail_body(response: Response) -> None:
    """Chalice answers 405/415/500 itself with {"Code", "Message"}; keep our contract."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or "detail" in body:
        return
    message = body.get("Message") or body.get("message") or "error"
    response.body = json.dumps({"detail": message})
    response.headers["Content-Type"] = "application/json"


def _cors(response: Response) -> None:
    """Every answer carries CORS headers, also those no route made (Chalice's own 404/405/415/
    500): without them a browser reports a network error instead of the status."""
    for name, value in CORS_HEADERS.items():
        if name == "Access-Control-Allow-Methods":
            continue  # a preflight's answer; Chalice/API Gateway give the route's own
        response.headers.setdefault(name, value)


def request_context(event: Request, get_response: Callable[[Request], Response]) -> Any:
    context = event.context or {}
    request_id = context.get("requestId") or (
        getattr(event.lambda_context, "aws_request_id", None) if event.lambda_context else None
    )
    logger.append_keys(request_id=request_id, method=event.method,
                       path=context.get("path") or event.path)
    started = time.perf_counter()
    try:
        try:
            # A bad A6HUB_* value, no key, or a weak one in a deployed stage: serve nothing.
            get_settings()
            signing_key()
        except ConfigurationError:
            logger.exception("refusing to serve: the service is not configured")
            return Response(body=json.dumps({"detail": "Service is not configured"}),
                            status_code=503,
                            headers={"Content-Type": "application/json", **CORS_HEADERS})
        response = get_response(event)
        _detail_body(response)
        _cors(response)
        # Inline artifacts (VCD, netlists) carry text a job's author chose: never let a browser
        # sniff them into HTML on the API's origin.
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request_id:
            response.headers["X-Request-Id"] = str(request_id)
        logger.info("request", extra={"status": response.status_code,
                                      "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
        return response
    finally:
        logger.remove_keys(["request_id", "method", "path", "user_id"])
