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

