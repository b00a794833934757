"""Live job updates over WebSocket, upstream's protocol (a6hub backend/app/api/v1/websocket.py):

    ws(s)://<host>/api/v1/ws/jobs/{job_id}/updates?token=<jwt>[&offset=<log byte offset>]
    -> {"type": "connected"|"status"|"log"|"error"|"complete"|"pong", "data": {...},
        "timestamp": "<ISO 8601>"}

Who may follow a job: whoever may GET it (any reader of its project; anonymous callers for public
projects). Refusals, as the HTTP status of the handshake ($connect's answer): 401 bad token (or
no token for a private project), 403 a job the caller may not read, 404 no such job; the local
gateway turns them into the close codes 4001, 4003 and 4004 (API Gateway cannot send close codes).

How updates travel: a socket is an item of `wsconnections` (API Gateway holds the socket; the
handlers are stateless). Two DynamoDB streams feed one pusher (`on_connection_added`,
`on_job_changed`), which posts through the API Gateway Management API:
- a new connection item: the greeting ($connect itself cannot send) -- `connected` with the
  job's status, then the log (from `offset`, else its last REPLAY_BYTES), then `complete` if the
  job has ended. A client that drops and reconnects gets exactly this again.
- a job item change: `status` when the status moved, `log` with the bytes the runner flushed
  since (it records `log_bytes` on the job at each flush), `error` and `complete` when it ended;
  a deleted job (its project deleted): `error`, and the socket is closed.
Each socket's log position and its `complete` are claimed with conditional writes, so the
greeting and a concurrent job change never send the same bytes or `complete` twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib import storage
from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.errors import NotFound, Unauthorized
from chalicelib.ids import parse_number_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import utcnow_iso
from chalicelib.models.jobs import FAILED, TERMINAL, Job
from chalicelib.models.live import WsConnection, job_key
from chalicelib.services import identity
from chalicelib.services.projects import authorize

logger = Logger(service=SERVICE, child=True)

#: The path the web client connects to (API Gateway receives the job id as a query parameter).
PATH_PREFIX = "/api/v1/ws/jobs/"
PATH_SUFFIX = "/updates"
REPLAY_BYTES = 256 * 1024  # how much of a long log a (re)connecting socket gets by default
CHUNK_BYTES = 32 * 1024  # API Gateway's WebSocket frame size; a message is split at lines
CONNECTION_SECONDS = 2 * 3600  # API Gateway's maximum connection duration
GREETING_ATTEMPTS = 15  # the handshake may finish just after the item is written
GREETING_PAUSE_SECONDS = 0.2

Post = Callable[[str, dict[str, Any]], bool]
Close = Callable[[str], None]


def parse_job_id(text: str) -> int | None:
    """The job id a path segment or query parameter names, or None: the one place that knows
    how a job id is spelled (an integer id, chalicelib.ids.parse_number_id)."""
    return parse_number_id(text)


def job_id_from_path(path: str) -> str | None:
    """The {job_id} of /api/v1/ws/jobs/{job_id}/updates, or None for any other path."""
    if not (path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX)):
        return None
    segment = path[len(PATH_PREFIX):-len(PATH_SUFFIX)]
    return segment if segment and "/" not in segment else None


def message(kind: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "data": dict(data or {}), "timestamp": utcnow_iso()}


# -- the Management API ----------------------------------------------------------------------

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def management_endpoint(domain_name: str | None = None, stage: str | None = None) -> str:
    """Where to post: A6HUB_WS_ENDPOINT (the local dev server, or set by the templates for the
    stream handlers), else the socket's own API (https://<domain>/<stage>) as API Gateway gives it."""
    configured = get_settings().ws_endpoint
    if configured:
        return configured
    if not domain_name:
        raise RuntimeError("A6HUB_WS_ENDPOINT is not set and the event names no API")
    return f"https://{domain_name}/{stage}" if stage else f"https://{domain_name}"


def _management(endpoint: str) -> Any:
    with _clients_lock:
        if endpoint not in _clients:
            from botocore.config import Config

            from chalicelib import aws

            _clients[endpoint] = aws.make_client(
                "apigatewaymanagementapi", endpoint_url=endpoint,
                config=Config(retries={"mode": "standard"}, connect_timeout=3, read_timeout=5))
        return _clients[endpoint]


def poster(endpoint: str) -> Post:
    """post(connection_id, message) -> False when the socket is gone (410 GoneException)."""
    api = _management(endpoint)

    def post(connection_id: str, payload: dict[str, Any]) -> bool:
        try:
            api.post_to_connection(ConnectionId=connection_id,
                                   Data=json.dumps(payload).encode("utf-8"))
        except api.exceptions.GoneException:
            return False
        return True

    return post


def closer(endpoint: str) -> Close:
    """close(connection_id): end a socket from the server side (gone already is fine)."""
    api = _management(endpoint)

    def close(connection_id: str) -> None:
        try:
            api.delete_connection(ConnectionId=connection_id)
        except api.exceptions.GoneException:
            pass

    return close


# -- the socket's lifecycle ($connect, $default, $disconnect) --------------------------------

def _find_job(job_id: int) -> Job | None:
    for found in Job.by_id.query(job_id, limit=1):
        try:
            return Job.get(found.project_id, job_id)
        except Job.DoesNotExist:
            return None
    return None


def connect(connection_id: str, query: Mapping[str, str]) -> int:
    """Decide a handshake: 200 (the socket is registered), 401, 403 or 404 (see module doc).

    `query` carries `job_id` (API Gateway: the path rewritten to a parameter; locally the
    gateway does the same), `token` (a JWT or a personal API token) and optionally `offset`.
    """
    caller = None
    token = (query.get("token") or "").strip()
    if token:
        try:
            caller = identity.authenticate(f"Bearer {token}", required=True)
        except Unauthorized:
            return 401
    job_id = parse_job_id(query.get("job_id") or "")
    job = _find_job(job_id) if job_id else None
    if job is None:
        return 404
    try:
        authorize(caller, job.project_id, "read")
    except NotFound:
        return 401 if caller is None else 403
    offset = query.get("offset") or ""
    WsConnection(
        connection_id, job_key=job_key(job.project_id, job.id), project_id=job.project_id,
        job_id=job.id, user_id=caller.id if caller else None, connected_at=utcnow_iso(),
        expires_at=int(time.time()) + CONNECTION_SECONDS,
        replay_from=int(offset) if offset.isdigit() else -1,
    ).save()
    return 200


def disconnect(connection_id: str) -> None:
    WsConnection(connection_id).delete()


def on_message(connection_id: str, body: str, post: Post) -> None:
    """The client's keep-alive: "ping" (upstream's hook sends the bare word) -> pong."""
    text = (body or "").strip()
    if text == "ping" or text.startswith("{") and _is_ping(text):
        if not post(connection_id, message("pong")):
            disconnect(connection_id)


def _is_ping(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "ping"


# -- the pusher (stream handlers) ------------------------------------------------------------

def _connected_data(job: Job, log_from: int) -> dict[str, Any]:
    return {"job_id": job.id, "project_id": job.project_id, "job_type": job.job_type,
            "status": job.status, "current_step": None, "progress": None,
            "log_offset": log_from, "log_bytes": int(job.log_bytes or 0)}


def greet(connection_id: str, post: Post) -> None:
    """The first messages of a new (or reconnected) socket: connected, the log, complete."""
    try:
        conn = WsConnection.get(connection_id, consistent_read=True)
    except WsConnection.DoesNotExist:
        return  # closed already
    job = _load_job(conn)
    if job is None:
        return
    size = int(job.log_bytes or 0)
    replay = int(conn.replay_from)
    start = min(replay, size) if replay >= 0 else max(0, size - REPLAY_BYTES)
    # From here on job changes reach this socket too; the job is read again below, so a change
    # made before this write is covered by the greeting and one after it by the change.
    conn.update(actions=[WsConnection.welcomed.set(True),
                         WsConnection.log_attempt.set(int(job.attempts or 0)),
                         WsConnection.log_offset.set(start)])
    job = _load_job(conn) or job
    for attempt in range(GREETING_ATTEMPTS):
        if post(connection_id, message("connected", _connected_data(job, start))):
            break
        time.sleep(GREETING_PAUSE_SECONDS * (attempt + 1) / 2)
    else:
        disconnect(connection_id)  # never came up, or already gone
        return
    if not push_log(conn, job, post):
        return
    if job.status in TERMINAL:
        finish(conn, job, post)


def _load_job(conn: WsConnection) -> Job | None:
    try:
        return Job.get(conn.project_id, conn.job_id, consistent_read=True)
    except Job.DoesNotExist:
        return None


def _claim(connection_id: str, update: str, condition: str,
           values: dict[str, Any]) -> dict[str, Any] | None:
    """One conditional UpdateItem on a connection; the old attributes, or None if refused."""
    ddb = client("dynamodb")
    try:
        response = ddb.update_item(
            TableName=WsConnection.Meta.table_name, Key={"connection_id": {"S": connection_id}},
            UpdateExpression=update, ConditionExpression=condition,
            ExpressionAttributeValues=values, ReturnValues="ALL_OLD")
    except ddb.exceptions.ConditionalCheckFailedException:
        return None
    return dict(response.get("Attributes") or {})


def push_log(conn: WsConnection, job: Job, post: Post) -> bool:
    """Send the socket the job's log bytes it has not had yet; False when the socket is gone."""
    attempt, end = int(job.attempts or 0), int(job.log_bytes or 0)
    if attempt == 0 or end == 0:
        return True
    old = _claim(conn.connection_id,
                 "SET log_attempt = :a, log_offset = :end",
                 "attribute_exists(connection_id) AND (log_attempt <> :a OR log_offset < :end)",
                 {":a": {"N": str(attempt)}, ":end": {"N": str(end)}})
    if old is None:
        return True  # sent already (by the greeting or another change)
    same = int(old.get("log_attempt", {}).get("N", -1)) == attempt
    start = int(old.get("log_offset", {}).get("N", 0)) if same else 0
    stored = storage.job_stored_as(job.project_id, job.id, attempt, job.summary)
    data, _ = storage.get_range(storage.job_log_key(*stored), start, end - start)
    for offset, chunk in _chunks(data, start):
        payload = {"log_line": chunk.decode("utf-8", errors="replace"), "offset": offset,
                   "next_offset": offset + len(chunk), "attempt": attempt}
        if not post(conn.connection_id, message("log", payload)):
            disconnect(conn.connection_id)
            return False
    return True


def _chunks(data: bytes, offset: int) -> list[tuple[int, bytes]]:
    """Pieces of at most CHUNK_BYTES, cut after a newline where there is one."""
    pieces = []
    while data:
        cut = len(data) if len(data) <= CHUNK_BYTES else data.rfind(b"\n", 0, CHUNK_BYTES) + 1
        if cut <= 0:
            cut = CHUNK_BYTES
        pieces.append((offset, data[:cut]))
        offset, data = offset + cut, data[cut:]
    return pieces


def finish(conn: WsConnection, job: Job, post: Post) -> None:
    """`error` (a failed job) and `complete`, once per socket."""
    if _claim(conn.connection_id, "SET completed_sent = :t",
              "attribute_exists(connection_id) AND attribute_not_exists(completed_sent)",
              {":t": {"BOOL": True}}) is None:
        return
    if job.status == FAILED and job.error_message:
        post(conn.connection_id, message("error", {"error_message": job.error_message}))
    data: dict[str, Any] = {"status": job.status, "exit_code": job.exit_code}
    if job.error_message:
        data["message"] = job.error_message
    if not post(conn.connection_id, message("complete", data)):
        disconnect(conn.connection_id)


def _followers(job: Job) -> list[WsConnection]:
    """The greeted sockets following a job (a socket not yet greeted is the greeting's)."""
    found = []
    for conn in WsConnection.by_job.query(job_key(job.project_id, job.id)):
        if not conn.welcomed:  # the index lags the table: ask the table before skipping
            try:
                conn = WsConnection.get(conn.connection_id, consistent_read=True)
            except WsConnection.DoesNotExist:
                continue
            if not conn.welcomed:
                continue
        found.append(conn)
    return found


def job_changed(old: Job | None, new: Job, post: Post) -> None:
    """Push one change of a job record to every socket following it."""
    moved = old is None or old.status != new.status
    grew = old is None or int(new.log_bytes or 0) != int(old.log_bytes or 0) or \
        int(new.attempts or 0) != int(old.attempts or 0)
    ended = new.status in TERMINAL and (old is None or old.status not in TERMINAL)
    if not (moved or grew or ended):
        return
    for conn in _followers(new):
        if moved and not post(conn.connection_id, message("status", {"status": new.status})):
            disconnect(conn.connection_id)
            continue
        if grew and not push_log(conn, new, post):
            continue
        if ended:
            finish(conn, new, post)


def job_removed(old: Job, post: Post, close: Close) -> None:
    """The job was deleted (with its project): tell its sockets and close them."""
    for conn in WsConnection.by_job.query(job_key(old.project_id, old.id)):
        post(conn.connection_id, message("error", {"error_message": "the job was deleted"}))
        close(conn.connection_id)
        disconnect(conn.connection_id)


def stream_records(records: list[dict[str, Any]], post: Post, close: Close) -> None:
    """Hand DynamoDB stream records (Lambda's event shape) of the jobs and wsconnections tables
    to the pusher; a socket's failure never stops the others."""
    for record in records:
        change = record.get("dynamodb") or {}
        new_image, old_image = change.get("NewImage"), change.get("OldImage")
        try:
            if "connection_id" in (change.get("Keys") or {}):
                if record.get("eventName") == "INSERT" and new_image:
                    greet(new_image["connection_id"]["S"], post)
            elif new_image:
                job_changed(Job.from_raw_data(old_image) if old_image else None,
                            Job.from_raw_data(new_image), post)
            elif old_image and record.get("eventName") == "REMOVE":
                job_removed(Job.from_raw_data(old_image), post, close)
        except Exception:  # noqa: BLE001 - one bad record must not drop the rest of the batch
            logger.exception("live update failed", extra={"event_id": record.get("eventID")})
