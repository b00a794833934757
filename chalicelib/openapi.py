"""The OpenAPI 3.1 document, generated from the route table and the pydantic request/response models.

Each route declares its `Doc` where it is registered (`route(bp, path, doc=Doc(...))`); the API
layer walks the app's registered routes and hands this module the resulting `Operation` list, so
this module needs no web framework. A route without a `Doc` still appears (marked
`x-undocumented`) and `undocumented()` names it, which the test suite refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaMode

from chalicelib.ids import MAX_ID
from chalicelib.schemas.common import ErrorPublic

Auth = Literal["required", "optional", "none"]
DOC_ATTRIBUTE = "openapi_doc"  # where route() keeps a view's Doc
REF_TEMPLATE = "#/components/schemas/{model}"
MULTIPART = "multipart/form-data"

_PATH_PARAM = re.compile(r"{([^}+]+)\+?}")
_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad request",
    401: "Not authenticated, or the token is invalid or expired",
    403: "Authenticated but not allowed", 404: "Not found (private resources too)",
    409: "Conflict with the current state", 412: "If-Match names a stale version",
    413: "Body, file or project too large", 415: "Unsupported media type",
    422: "The request failed validation", 429: "Too many requests (see Retry-After)",
    503: "A dependency is unreachable",
}
_HEADER_DOCS = {
    "ETag": "The version of the returned resource; send it back in If-Match",
    "Link": 'The next page: `<url>; rel="next"` (absent on the last page)',
    "Retry-After": "Seconds to wait before retrying",
}


@dataclass(frozen=True)
class Param:
    """A query or header parameter beyond the ones derived from the route (path, paging)."""

    name: str
    location: Literal["query", "header"] = "query"
    description: str = ""
    required: bool = False
    schema_type: Literal["string", "integer", "number", "boolean"] = "string"


@dataclass(frozen=True)
class Doc:
    """What the document says about one route (all its methods).

    `request` is the pydantic model that parse_body() validates (or a raw JSON Schema for a
    non-JSON body such as multipart); `response` is the public model (an array of it when
    `is_list`); `auth` is "required" (Bearer), "optional" (anonymous callers allowed, e.g. public
    projects) or "none" (no token is read). `auth`, `request`, `is_list` and `status` are
    also what api.http.route enforces and hands the view (caller, body, page, status), so the
    document and the behaviour come from this one declaration. Error responses are derived from
    the rest; `errors` adds route-specific ones (409, 412, 429...).
    """

    summary: str
    request: type[BaseModel] | dict[str, Any] | None = None
    response: type[BaseModel] | None = None
    is_list: bool = False
    auth: Auth = "required"
    status: int = 200
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    headers: tuple[str, ...] = ()
    request_content_type: str = "application/json"
    content_type: str = "application/json"  # of the success response (text/html for /docs)
    description: str = ""
    schemes: tuple[str, ...] = ("bearer",)  # set by api.http.route from its Credentials


@dataclass(frozen=True)
class Operation:
    """One registered (method, path) and its Doc (None: the route has none)."""

    method: str
    path: str
    name: str
    tag: str
    doc: Doc | None


def undocumented(operations: Iterable[Operation]) -> list[str]:
    return [f"{op.method} {op.path} ({op.name})" for op in operations if op.doc is None]


def _models(operations: Sequence[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorPublic, "serialization"): None}
    for op in operations:
        if op.doc is None:
            continue
        if isinstance(op.doc.request, type):
            wanted[(op.doc.request, "validation")] = None
        if op.doc.response is not None:
            wanted[(op.doc.response, "serialization")] = None
    return list(wanted)


def _schemas(operations: Sequence[Operation]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    from pydantic.json_schema import models_json_schema  # only /openapi.json needs it

    refs, defs = models_json_schema(_models(operations), ref_template=REF_TEMPLATE)
    components = dict(defs.get("$defs", {}))
    components["ValidationErrorPublic"] = {
        "title": "ValidationErrorPublic",
        "allOf": [refs[(ErrorPublic, "serialization")]],
        "type": "object",
        "properties": {"errors": {"type": "array", "items": {
            "type": "object",
            "properties": {"loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                           "msg": {"type": "string"}, "type": {"type": "string"}},
        }}},
    }
    return refs, components


def _path_schema(name: str) -> dict[str, Any]:
    """`*_id` path parameters are ids (chalicelib/ids.py): integers in [1, 2**53 - 1]."""
    if name.endswith("_id"):
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"type": "string"}


def _parameters(op: Operation, doc: Doc, max_page_size: int) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if doc.is_list:
        params.append({"name": "limit", "in": "query", "required": False,
                       "description": "Page size",
                       "schema": {"type": "integer", "minimum": 1, "maximum": max_page_size}})
        params.append({"name": "cursor", "in": "query", "required": False,
                       "description": "Opaque cursor from the previous page's Link header",
                       "schema": {"type": "string"}})
    for extra in doc.params:
        params.append({"name": extra.name, "in": extra.location, "required": extra.required,
                       "description": extra.description, "schema": {"type": extra.schema_type}})
    return params


def _error_statuses(op: Operation, doc: Doc) -> list[int]:
    statuses = set(doc.errors)
    if doc.auth != "none":
        statuses.add(401)
    if doc.request is not None:
        statuses.update({400, 413, 422})
    if _PATH_PARAM.search(op.path):
        statuses.add(404)
        if doc.auth == "required" and op.method != "GET":
            statuses.add(403)
    if doc.is_list:
        statuses.update({400, 422})
    return sorted(statuses)


def _error_response(status: int, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    schema = ({"$ref": REF_TEMPLATE.format(model="ValidationErrorPublic")} if status == 422
              else refs[(ErrorPublic, "serialization")])
    response: dict[str, Any] = {"description": _REASONS.get(status, "Error"),
                                "content": {"application/json": {"schema": schema}}}
    if status == 429:
        response["headers"] = {"Retry-After": _header("Retry-After")}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _header(name: str) -> dict[str, Any]:
    return {"description": _HEADER_DOCS.get(name, name), "schema": {"type": "string"}}


def _success(doc: Doc, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _REASONS.get(doc.status, "Success")}
    if doc.response is not None:
        schema = refs[(doc.response, "serialization")]
        if doc.is_list:
            schema = {"type": "array", "items": schema}
        response["content"] = {doc.content_type: {"schema": schema}}
    elif doc.status != 204:
        kind = "object" if doc.content_type == "application/json" else "string"
        response["content"] = {doc.content_type: {"schema": {"type": kind}}}
    headers = list(doc.headers) + (["Link"] if doc.is_list else [])
    if headers:
        response["headers"] = {name: _header(name) for name in headers}
    return response


def _security(doc: Doc) -> list[dict[str, list[str]]]:
    """Any one of the route's schemes; "optional" also allows anonymous callers ({})."""
    if doc.auth == "none":
        return []
    schemes: list[dict[str, list[str]]] = [{scheme: []} for scheme in doc.schemes]
    return schemes if doc.auth == "required" else [{}, *schemes]


def _operation(op: Operation, operation_id: str, refs: dict[Any, dict[str, Any]],
               max_page_size: int) -> dict[str, Any]:
    doc = op.doc or Doc(summary=op.name)
    out: dict[str, Any] = {"operationId": operation_id, "summary": doc.summary, "tags": [op.tag],
                           "security": _security(doc)}
    if doc.description:
        out["description"] = doc.description
    if op.doc is None:
        out["x-undocumented"] = True
    params = _parameters(op, doc, max_page_size)
    if params:
        out["parameters"] = params
    if doc.request is not None:
        schema = doc.request if isinstance(doc.request, dict) else refs[(doc.request, "validation")]
        out["requestBody"] = {"required": True, "content": {doc.request_content_type: {"schema": schema}}}
    responses = {str(doc.status): _success(doc, refs)}
    for status in _error_statuses(op, doc):
        responses[str(status)] = _error_response(status, refs)
    out["responses"] = responses
    return out


def build_document(operations: Sequence[Operation], *, title: str, version: str,
                   max_page_size: int = 100, description: str = "") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for these operations (ordered by path, then method)."""
    refs, components = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    used_ids: set[str] = set()
    for op in sorted(operations, key=lambda o: (o.path, o.method)):
        operation_id = op.name if op.name not in used_ids else f"{op.name}_{op.method.lower()}"
        used_ids.add(operation_id)
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, operation_id, refs,
                                                                       max_page_size)
    tags = sorted({op.tag for op in operations})
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A login access token, or a personal API token (a6p_...)",
            }, "basic": {
                "type": "http", "scheme": "basic",
                "description": "git's smart HTTP: any username, a personal API token as password",
            }},
        },
        "security": [{"bearer": []}],
    }
