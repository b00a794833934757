"""The HTTP conventions every route shares: errors as {"detail"}, body parsing, paging, callers.

`route()` is the one place a route's declaration (its `Doc`: auth, request model, paging, status)
is turned into behaviour: the caller, path ids, the page and the body are handed to the view,
and the view's return value becomes the answer. See route() for what a view may take.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from aws_lambda_powertools import Logger
from chalice import Blueprint, CORSConfig, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.config import get_settings
from chalicelib.errors import (
    BadRequest,
    DomainError,
    PayloadTooLarge,
    Unprocessable,
    validation_message,
)
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
        msg = validation_message(item)
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


@dataclass(frozen=True)
class Credentials:
    """How a route reads its caller: `read(authorization_header, required)` gives the caller,
    None (anonymous, only when not required) or raises a 401; `schemes` are the OpenAPI security
    schemes it accepts (components.securitySchemes in chalicelib/openapi.py)."""

    schemes: tuple[str, ...]
    read: Callable[[str | None, bool], Caller | None]


def _bearer(authorization: str | None, required: bool) -> Caller | None:
    # lazy: an access token's user record is checked on first use of the caller, or together
    # with the project by `projects.authorize` (see identity.Caller).
    return identity_service.authenticate(authorization, required=required, lazy=True)


#: A bearer token: a login access token or a personal API token (every route but git's).
BEARER = Credentials(schemes=("bearer",), read=_bearer)


def route(bp: Blueprint, path: str, methods: list[str] | None = None,
          content_types: list[str] | None = None, *, doc: Doc | None = None,
          credentials: Credentials = BEARER,
          on_error: Callable[[Exception], Response] | None = None) -> Callable[[View], View]:
    """Register a view; its `doc` is the one declaration of auth, body, paging and status.

    `doc` is the route's entry in /openapi.json (summary, request/response models, auth); a
    route registered without one fails tests/test_openapi.py (and is treated as auth="required").
    From the same declaration the wrapper, in this order:

    - reads the caller with `credentials` when `doc.auth` is "required" (no caller: 401) or
      "optional", and passes it as `caller` (a view of an auth="none" route may not take one);
    - turns every `*_id` path parameter into an int with `path_id` (0 when malformed);
    - passes `limit` and `cursor` (page_request) to a list view that takes them;
    - passes `body`, `doc.request` parsed by parse_body, to a view that takes it;
    - answers what the view returns: a Response as is, a `Page` as a list response (doc.is_list),
      None as an empty `doc.status` (204), anything else as JSON with `doc.status`.

    Errors become {"detail"} responses (`on_error`, default to_response) instead of Chalice's own.
    """
    declared = replace(doc or Doc(summary=""), schemes=credentials.schemes)
    answer_error = on_error or to_response

    def register(view: View) -> View:
        takes = _arguments(view, declared)

        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Any:
            try:
                request = bp.current_request
                limit = _inject(request, declared, credentials, takes, kwargs)
                return _answer(request, view(**kwargs), declared, limit)
            except Exception as exc:  # noqa: BLE001 - every error leaves as JSON with detail
                return answer_error(exc)

        setattr(wrapped, DOC_ATTRIBUTE, declared if doc is not None else None)
        options: dict[str, Any] = {"methods": methods or ["GET"], "cors": CORS}
        if content_types:
            options["content_types"] = content_types
        bp.route(path, **options)(wrapped)
        return view

    return register


def _arguments(view: View, doc: Doc) -> set[str]:
    """The view's parameter names; TypeError (at import) when they contradict the declaration."""
    takes = set(inspect.signature(view).parameters)
    if doc.auth == "none" and "caller" in takes:
        raise TypeError(f"{view.__name__}: an auth='none' route reads no caller")
    if "body" in takes and not isinstance(doc.request, type):
        raise TypeError(f"{view.__name__}: takes a body but its Doc names no request model")
    if "limit" in takes and not doc.is_list:
        raise TypeError(f"{view.__name__}: takes limit/cursor but its Doc is not a list")
    return takes


def _inject(request: Request, doc: Doc, credentials: Credentials, takes: set[str],
            kwargs: dict[str, Any]) -> int:
    """Fill the view's arguments from the declaration (see route); the page size, or 0."""
    if doc.auth != "none":
        caller = _known(credentials.read(header(request, "authorization"), doc.auth == "required"))
        if "caller" in takes:
            kwargs["caller"] = caller
    for name, value in kwargs.items():
        if name.endswith("_id") and isinstance(value, str):
            kwargs[name] = path_id(value)
    limit = 0
    if doc.is_list and "limit" in takes:
        limit, kwargs["cursor"] = page_request(request)
        kwargs["limit"] = limit
    if isinstance(doc.request, type) and "body" in takes:
        kwargs["body"] = parse_body(request, doc.request)
    return limit


def _answer(request: Request, result: Any, doc: Doc, limit: int) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, Page):
        return list_response(request, result.items, result, limit)
    if result is None:
        return Response(body="", status_code=doc.status)
    return json_response(result, status=doc.status)


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


def query(request: Request, name: str) -> str | None:
    """A query parameter as sent; None when absent or empty."""
    params: Mapping[str, str] = request.query_params or {}
    return params.get(name) or None


def query_required(request: Request, name: str) -> str:
    """A query parameter that must be given, stripped (422 "<name> is required" otherwise)."""
    value = (query(request, name) or "").strip()
    if not value:
        raise Unprocessable(f"{name} is required")
    return value


def query_int(request: Request, name: str, low: int | None = None,
              high: int | None = None) -> int | None:
    """An integer query parameter, None when absent; 422 when not an integer or out of [low, high]."""
    raw = query(request, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as e:
        raise Unprocessable(f"{name} must be an integer") from e
    if (low is not None and value < low) or (high is not None and value > high):
        raise Unprocessable(f"{name} must be between {low} and {high}")
    return value


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter: 1, true or yes (any case) is true; anything else false."""
    return (query(request, name) or "").lower() in {"1", "true", "yes"}


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
