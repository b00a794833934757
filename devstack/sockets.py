"""The local stand-in for API Gateway's WebSocket API and its Management API, in each uvicorn
worker of the dev server (devstack/server.py).

A socket to /api/v1/ws/jobs/{job_id}/updates runs the app's own $connect / $default /
$disconnect handlers with API Gateway's event shape (the job id from the path handed over as the
`job_id` query parameter, as the production front end does). A refused $connect (401/403/404)
closes the socket with 4001/4003/4004.

`POST|DELETE|GET /@connections/{id}` (what boto3's `apigatewaymanagementapi` client sends)
delivers to the socket: the kernel spreads connections over the workers (SO_REUSEPORT), so the
pusher's post may reach any worker. A connection id names the worker holding the socket
(`<pid>-<random>`); a post for another worker's socket is forwarded over that worker's Unix
socket in a private directory, where the same ASGI app listens. A socket nobody holds answers
410 GoneException, as API Gateway does. The Management API here checks no signature: it
listens on 127.0.0.1 only (and the Unix sockets live in a 0700 directory).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[dict[str, Any], Any], Any]

MANAGEMENT_PREFIX = "/@connections/"
STAGE = "api"
_CLOSE = object()
_CLOSE_CODES = {401: 4001, 403: 4003, 404: 4004}


def socket_dir(port: int) -> Path:
    """Where the workers of the server on `port` listen for forwarded posts."""
    base = os.environ.get("A6HUB_WS_SOCKET_DIR") or tempfile.gettempdir()
    return Path(base) / f"a6hub-ws-{port}"


def worker_socket_path(port: int, pid: int | None = None) -> Path:
    return socket_dir(port) / f"{pid or os.getpid()}.sock"


class Sockets:
    """The sockets one worker holds, and the handlers that serve them."""

    def __init__(self, app: Any, port: int, job_path: Callable[[str], str | None]) -> None:
        self._app = app
        self._port = port
        self._job_path = job_path
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._connected_at: dict[str, float] = {}

    def handler(self, route_key: str) -> Handler:
        name = self._app.websocket_handlers[route_key].name
        found: Handler = self._app.handler_map[name]
        return found

    def _event(self, route_key: str, connection_id: str, scope: dict[str, Any],
               query: dict[str, str], body: str | None = None) -> dict[str, Any]:
        kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        return {
            "requestContext": {
                "routeKey": route_key, "eventType": kind, "connectionId": connection_id,
                "domainName": headers.get("host", "127.0.0.1"), "stage": STAGE, "apiId": "local",
                "requestId": str(uuid.uuid4()), "connectedAt": int(time.time() * 1000),
                "identity": {"sourceIp": (scope.get("client") or ("127.0.0.1", 0))[0]},
            },
            "headers": headers, "queryStringParameters": query or None,
            "body": body, "isBase64Encoded": False,
        }

    # -- a client's socket ---------------------------------------------------------------

    async def serve_socket(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        job_id = self._job_path(scope["path"])
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        if job_id is None:
            await send({"type": "websocket.close", "code": 1008})  # no such route: refuse
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        query["job_id"] = job_id
        connection_id = f"{os.getpid()}-{secrets.token_urlsafe(12)}"
        # $connect and $disconnect post nothing, so they run inline like HTTP requests.
        answer = self.handler("$connect")(self._event("$connect", connection_id, scope, query),
                                          None)
        status = int((answer or {}).get("statusCode", 200))
        await send({"type": "websocket.accept"})
        if status != 200:
            await send({"type": "websocket.close", "code": _CLOSE_CODES.get(status, 1011)})
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[connection_id] = queue
        self._connected_at[connection_id] = time.time()
        sender = asyncio.create_task(self._send_queued(queue, send))
        try:
            await self._receive_all(connection_id, scope, query, receive)
        finally:
            self._queues.pop(connection_id, None)
            self._connected_at.pop(connection_id, None)
            sender.cancel()
            self.handler("$disconnect")(
                self._event("$disconnect", connection_id, scope, query), None)

    async def _receive_all(self, connection_id: str, scope: dict[str, Any], query: dict[str, str],
                           receive: Receive) -> None:
        while True:
            incoming = await receive()
            if incoming["type"] == "websocket.disconnect":
                return
            body = incoming.get("text")
            if body is None and incoming.get("bytes") is not None:
                body = incoming["bytes"].decode("utf-8", errors="replace")
            event = self._event("$default", connection_id, scope, query, body or "")
            # $default may post (pong) through the Management API, which may be this very
            # worker: run it off the event loop.
            await asyncio.to_thread(self.handler("$default"), event, None)

    async def _send_queued(self, queue: asyncio.Queue[Any], send: Send) -> None:
        while True:
            item = await queue.get()
            if item is _CLOSE:
                await send({"type": "websocket.close", "code": 1000})
                return
            await send({"type": "websocket.send", "text": item})

    # -- the Management API --------------------------------------------------------------

    async def serve_management(self, scope: dict[str, Any], receive: Receive,
                               send: Send) -> None:
        connection_id = unquote(scope["path"][len(MANAGEMENT_PREFIX):])
        body = await _read_all(receive)
        method = scope["method"]
        owner = connection_id.split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid():
            status, payload = await self._forward(int(owner), method, scope["path"], body)
        else:
            status, payload = self._local(method, connection_id, body)
        headers = [(b"content-type", b"application/json")]
        if status == 410:
            headers.append((b"x-amzn-errortype", b"GoneException"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _local(self, method: str, connection_id: str, body: bytes) -> tuple[int, bytes]:
        queue = self._queues.get(connection_id)
        if queue is None:
            return 410, json.dumps({"message": "GoneException"}).encode()
        if method == "POST":
            queue.put_nowait(body.decode("utf-8", errors="replace"))
            return 200, b""
        if method == "DELETE":
            queue.put_nowait(_CLOSE)
            return 204, b""
        connected = self._connected_at[connection_id]
        info = {"ConnectedAt": _iso(connected), "LastActiveAt": _iso(time.time()),
                "Identity": {"SourceIp": "127.0.0.1"}}
        return 200, json.dumps(info).encode()

    async def _forward(self, pid: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(worker_socket_path(self._port, pid)))
        except OSError:
            return 410, json.dumps({"message": "GoneException"}).encode()
        try:
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: local\r\nContent-Length: {len(body)}"
                         "\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, payload


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
