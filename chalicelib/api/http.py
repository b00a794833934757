"""The HTTP conventions every route shares: errors as {"detail"}, body parsing, paging, callers."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from aws_lambda_powertools import Logger
from chalice import Blueprint, CORSConfig, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, DomainError, PayloadTooLarge, Unprocessable
from chalicelib.ids import parse_number_id
from chalicelib.logs import SERVICE
from chalicelib.openapi import DOC_ATTRIBUTE, Doc
from chalicelib.services import identity as identity_service  # deferred: PynamoDB, PyJWT
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

logger = Logger(service=SERVICE, child=True)

M = TypeVar("M", bound=BaseModel)
View = Callable[..., Any]

JSON_HEADERS = {"Content-Type": "application/json"}

#: CORS for every route: the web client runs on another origin and sends a bearer token (not
#: cookies), so any origin may call; it reads the paging, concurrency and tracing headers.
CORS = CORSConfig(allow_origin="*", allow_headers=["Authorization", "Content-Type", "If-Match"],
                  expose_headers=["ETag", "Link", "Location", "Retry-After", "X-Request-Id"],
                  max_age=600)
#: The same headers for answers no route makes: middleware errors, the local gateway's own
#: answers (unknown path, body too large); infra/api-merge.json sets them on API Gateway's.
CORS_HEADERS = {**CORS.get_access_control_headers(),
                "Access-Control-Allow-Methods": "GET,POST,PUT,PATCH,DELETE,OPTIONS"}


def error_response(status: int, detail: Any, headers: dict[str, str] | None = None,
                   **extra: Any) -> Response:
    body = {"detail": detail, **extra}
    return Response(body=json.dumps(body), status_code=status,
                    headers={**JSON_HEADERS, **(headers or {})})


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, BaseModel):
        payload = body.model_dump_json()
    elif isinstance(body, list) and body and isinstance(body[0], BaseModel):
        payload = "[" + ",".join(item.model_dump_json() for item in body) + "]"
    else:
        payload = json.dumps(body)
    return Response(body=payload, status_code=status, headers={**JSON_HEADERS, **(headers or {})})


def _validation_detail(err: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    parts = []
    for item in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item.get("loc", ()))
        msg = item.get("msg", "invalid")
        errors.append({"loc": list(item.get("loc", ())), "msg": msg, "type": item.get("type")})
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request", errors


def to_response(exc: Exception) -> Response:
    """Map one exception to the HTTP answer; the only place domain errors meet status codes."""
    if isinstance(exc, DomainError):
        return error_response(exc.status_code, exc.detail, exc.headers)
    if isinstance(exc, ValidationError):
        detail, errors = _validation_detail(exc)
        return error_response(422, detail, errors=errors)
    logger.exception("unhandled error")
    return error_response(500, "Internal server error")


def route(bp: Blueprint, path: str, methods: list[str] | None = None,
          content_types: list[str] | None = None, *, doc: Doc | None = None) -> Callable[[View], View]:
    """Register a view whose errors become {"detail"} responses instead of Chalice's own.

    `doc` is the route's entry in /openapi.json (summary, request/response models, auth); a
    route registered without one fails tests/test_openapi.py.
    """

    def register(view: View) -> View:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Any:
            try:
                return view(**kwargs)
            except Exception as exc:  # noqa: BLE001 - every error leaves as JSON with detail
                return to_response(exc)

        setattr(wrapped, DOC_ATTRIBUTE, doc)
        options: dict[str, Any] = {"methods": methods or ["GET"], "cors": CORS}
        if content_types:
            options["content_types"] = content_types
        bp.route(path, **options)(wrapped)
        return view

    return register


def request_bytes(request: Request) -> bytes:
    raw = request.raw_body or b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > get_settings().max_request_bytes:
        raise PayloadTooLarge(f"request body exceeds {get_settings().max_request_bytes} bytes")
    return raw


def parse_body(request: Request, model: type[M]) -> M:
    raw = request_bytes(request)
    if not raw.strip():
        raise Unprocessable("request body is required")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("request body is not valid JSON") from e
    except RecursionError as e:  # "[[[[...": a few hundred kB of nesting exhausts the stack
        raise BadRequest("request body is nested too deeply") from e
    if not isinstance(data, dict):
        raise Unprocessable("request body must be a JSON object")
    return model.model_validate(data)


def path_id(segment: str) -> int:
    """The id a path segment names ("1234" -> 1234), or 0 when it is not one.

    Only the canonical spelling is an id (chalicelib.ids.parse_number_id: no sign, no leading
    zero, no decimal point, at most 2**53 - 1). 0 names nothing (ids start at 1), so a malformed
    id is answered exactly as an unknown one: the services check the caller first (a revoked
    token stays a 401) and then answer 404 without reading anything.
    """
    return parse_number_id(segment) or 0


def header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    return value if value else None


def client_address(request: Request) -> str:
    identity = (request.context or {}).get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


def _known(caller: Caller | None) -> Caller | None:
    if caller is not None:
        # Every later line of this request carries the user; the middleware removes the key.
        logger.append_keys(user_id=caller.claimed_id)
    return caller


def optional_caller(request: Request) -> Caller | None:
    """The caller, if any. An access token's user record is checked on first use of the caller,
    or together with the project by `projects.authorize` (see identity.Caller)."""
    return _known(identity_service.authenticate(header(request, "authorization"), required=False,
                                                lazy=True))


def required_caller(request: Request) -> Caller:
    caller = _known(identity_service.authenticate(header(request, "authorization"), required=True,
                                                  lazy=True))
    assert caller is not None
    return caller


def page_request(request: Request) -> tuple[int, str | None]:
    params: Mapping[str, str] = request.query_params or {}
    settings = get_settings()
    raw_limit = params.get("limit")
    limit = settings.default_page_size
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError as e:
            raise Unprocessable("limit must be an integer") from e
        if not 1 <= limit <= settings.max_page_size:
            raise Unprocessable(f"limit must be between 1 and {settings.max_page_size}")
    cursor = params.get("cursor") or None
    return limit, cursor


def list_response(request: Request, items: Iterable[BaseModel], page: Page[Any],
                  limit: int) -> Response:
    headers: dict[str, str] = {}
    if page.next_cursor:
        query = {k: v for k, v in (request.query_params or {}).items()
                 if k not in {"cursor", "limit", "skip"}}
        query.update({"limit": str(limit), "cursor": page.next_cursor})
        path = (request.context or {}).get("path") or request.path
        headers["Link"] = f'<{path}?{urlencode(query)}>; rel="next"'
    return json_response(list(items) or [], headers=headers)
