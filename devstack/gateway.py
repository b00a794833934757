"""A WSGI application that serves the Chalice app the way API Gateway does.

It reuses Chalice's own API Gateway emulation (route matching, event shape, CORS preflight,
binary bodies) and writes each response in one piece, so a real threaded WSGI server can keep
connections alive without `chalice local`'s per-request stall (its BaseHTTPRequestHandler
writes headers and body in separate small packets and meets Nagle + delayed ACK).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LambdaContext, LocalGateway, LocalGatewayException, MatchResult, RouteMatcher

from chalicelib.api.http import CORS_HEADERS
from devstack.sockets import MANAGEMENT_PREFIX, Sockets

StartResponse = Callable[..., Any]

_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    412: "Precondition Failed", 413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

# API Gateway refuses payloads over 10 MB before the Lambda runs.
MAX_BODY_BYTES = 10 * 1024 * 1024


class _RememberingRouteMatcher(RouteMatcher):
    """Chalice's matcher walks every route per request (~10% of a /health request's CPU); the
    routes never change while serving, so a path's match is remembered (bounded)."""

    MAX_PATHS = 4096

    def __init__(self, route_urls: list[str]) -> None:
        super().__init__(route_urls)
        self._by_path: dict[str, MatchResult] = {}

    def match_route(self, url: str) -> MatchResult:
        path, _, query = url.partition("?")
        found = self._by_path.get(path)
        if found is None:
            found = super().match_route(path)  # ValueError when nothing matches
            if len(self._by_path) < self.MAX_PATHS:
                self._by_path[path] = found
        params = parse_qs(query, keep_blank_values=True) if query else {}
        return MatchResult(found.route, dict(found.captured), params)


class _Gateway(LocalGateway):
    """LocalGateway that reports the real client address and a request id, as API Gateway does."""

    def __init__(self, app: Chalice, config: Config) -> None:
        super().__init__(app, config)
        self.current = threading.local()
        self.event_converter._route_matcher = _RememberingRouteMatcher(list(app.routes))
        # Read once: LocalGateway looks these up in the layered config on every request.
        timeout = config.lambda_timeout or self.MAX_LAMBDA_EXECUTION_TIME
        self._context_args = (config.function_name, config.lambda_memory_size, timeout * 1000)

    def _generate_lambda_context(self) -> LambdaContext:
        name, memory, max_runtime_ms = self._context_args
        return LambdaContext(function_name=name, memory_size=memory, max_runtime_ms=max_runtime_ms)

    def _generate_lambda_event(self, method: str, path: str, headers: Any,
                               body: bytes | None) -> Any:
        event = super()._generate_lambda_event(method, path, headers, body)
        context = event["requestContext"]
        context["identity"]["sourceIp"] = getattr(self.current, "source_ip", "127.0.0.1")
        context["requestId"] = str(uuid.uuid4())
        context["stage"] = "local"
        return event


class GatewayApp:
    def __init__(self, app: Chalice) -> None:
        self._gateway = _Gateway(app, Config.create(chalice_stage="local", app_name=app.app_name))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, headers, body = self.handle(environ)
        start_response(f"{status} {_REASONS.get(status, 'Status')}", headers)
        return [body]

    def handle(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("RAW_URI") or _path_from(environ)
        headers = _headers_from(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return _json(413, {"detail": "Request Entity Too Large"})
        body = environ["wsgi.input"].read(length) if length else None
        if body is None and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                return _json(413, {"detail": "Request Entity Too Large"})
        self._gateway.current.source_ip = environ.get("REMOTE_ADDR") or "127.0.0.1"
        try:
            response = self._gateway.handle_request(method=method, path=path, headers=headers, body=body)
        except LocalGatewayException as e:
            return _gateway_error(e)
        return _response(method, response)


def _gateway_error(e: LocalGatewayException) -> tuple[int, list[tuple[str, str]], bytes]:
    """API Gateway's own answers, as infra/api-merge.json's GatewayResponses shape them: an
    unknown path (MISSING_AUTHENTICATION_TOKEN) is 404 {"detail": "Not Found"}; any other (an
    unknown path with an Authorization header is a 403 "Authorization header requires
    'Credential' parameter...") keeps its status with its message as the detail (DEFAULT_4XX /
    DEFAULT_5XX); every one carries the CORS headers."""
    if e.CODE == 403 and b"Missing Authentication Token" in (e.body or b""):
        return _json(404, {"detail": "Not Found"})
    try:
        message = str(json.loads(e.body or b"{}").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return _json(e.CODE, {"detail": message or _REASONS.get(e.CODE, "Error")})


def _path_from(environ: dict[str, Any]) -> str:
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _headers_from(environ: dict[str, Any]) -> dict[str, str]:
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
               if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def _json(status: int, payload: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """An answer of the gateway itself (no route made it): JSON with the CORS headers."""
    body = json.dumps(payload).encode()
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    *CORS_HEADERS.items()], body


def _response(method: str, response: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    raw = response.get("body")
    if raw is None:
        body = b""
    elif response.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
    headers: list[tuple[str, str]] = []
    for name, value in (response.get("headers") or {}).items():
        if name.lower() != "content-length":
            headers.append((name, str(value)))
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    if not any(n.lower() == "content-type" for n, _ in headers) and body:
        headers.append(("Content-Type", "application/json"))
    status = int(response["statusCode"])
    if method == "HEAD" or status in (204, 304):
        body = b""
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class GatewayAsgi:
    """The same gateway as an ASGI app (for uvicorn). The Chalice app runs inline on the event
    loop, so a process serves one request at a time, as a Lambda instance does (the app keeps the
    current request on itself); other keep-alive connections wait on the loop meanwhile."""

    def __init__(self, app: Chalice, sockets: Sockets | None = None) -> None:
        self._wsgi = GatewayApp(app)
        self._sockets = sockets

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if self._sockets is None:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
                return
            await self._sockets.serve_socket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if self._sockets is not None and scope["path"].startswith(MANAGEMENT_PREFIX):
            await self._sockets.serve_management(scope, receive, send)
            return
        body, too_large = await _read_body(receive)
        if too_large:
            status, headers, payload = _json(413, {"detail": "Request Entity Too Large"})
        else:
            status, headers, payload = self._wsgi.handle(_environ(scope, body))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    query = scope.get("query_string", b"").decode("latin-1")
    raw_path = (scope.get("raw_path") or scope["path"].encode("utf-8")).decode("latin-1")
    client = scope.get("client") or ("127.0.0.1", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "RAW_URI": f"{raw_path}?{query}" if query else raw_path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": client[0],
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
        elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):  # the body is whole already
            environ[f"HTTP_{key}"] = value.decode("latin-1")
    return environ
