"""The baseline: a minimal ASGI app answering GET /health with the same JSON body, for uvicorn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

BODY = b'{"status": "ok", "checks": {"dynamodb": "ok", "s3": "ok", "sqs": "ok"}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    found = scope["path"] == "/health"
    await send({"type": "http.response.start", "status": 200 if found else 404,
                "headers": HEADERS if found else [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": BODY if found else b""})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The same answer as a WSGI app, for gunicorn with the API server's settings: the server
    layer's own ceiling, without the Chalice app and the gateway."""
    if environ.get("PATH_INFO") != "/health":
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [(k.decode(), v.decode()) for k, v in HEADERS])
    return [BODY]
