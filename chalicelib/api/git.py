"""Routes: /api/v1/projects/{project_id}/git — history, and git's smart HTTP protocol.

Clone URL: http(s)://<host>/api/v1/projects/<project_id>/git (Chalice cannot route
`<id>.git`). Authenticate with HTTP Basic: any username, a personal API token as the password.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.http import (
    header,
    json_response,
    list_response,
    optional_caller,
    page_request,
    parse_body,
    path_id,
    request_bytes,
    required_caller,
    route,
)
from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, DomainError, PayloadTooLarge, Unprocessable
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.git import (
    CommitDetail,
    CommitPublic,
    DiffPublic,
    FileAtCommit,
    ForkRequest,
    ImportRequest,
    RestoreRequest,
    RestoreResult,
)
from chalicelib.schemas.projects import ProjectPublic
from chalicelib.services import forks, gitimport, history

bp = Blueprint(__name__)

UPLOAD_REQUEST = "application/x-git-upload-pack-request"
RECEIVE_REQUEST = "application/x-git-receive-pack-request"
# Request and response bodies of the smart protocol are binary (app.api.binary_types).
BINARY_TYPES = (
    UPLOAD_REQUEST, RECEIVE_REQUEST,
    "application/x-git-upload-pack-result", "application/x-git-receive-pack-result",
    "application/x-git-upload-pack-advertisement", "application/x-git-receive-pack-advertisement",
)
_NO_CACHE = {"Cache-Control": "no-cache, max-age=0, must-revalidate", "Pragma": "no-cache"}
_GIT_BODY = {"type": "string", "format": "binary"}


def _git_response(body: bytes, content_type: str) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": content_type, **_NO_CACHE})


def plain_refusals(view: Callable[..., Response]) -> Callable[..., Response]:
    """Answer a smart-HTTP route's refusal (401, 403, 404, 413, 429, ...) as `text/plain`.

    git shows the body of a failed request only when its type is text/plain (git's http.c,
    show_http_message: each line as "remote: ..."); a JSON {"detail"} would leave the user
    with the bare status. The status and headers (WWW-Authenticate) stay as they were."""

    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Response:
        try:
            return view(**kwargs)
        except DomainError as e:
            detail = e.detail if isinstance(e.detail, str) else str(e)
            return Response(body=detail.rstrip("\n") + "\n", status_code=e.status_code,
                            headers={**e.headers, **_NO_CACHE,
                                     "Content-Type": "text/plain; charset=utf-8"})

    return wrapped


def _git_body() -> bytes:
    request = bp.current_request
    raw = request_bytes(request)
    encoding = (header(request, "content-encoding") or "").lower()
    if encoding in ("gzip", "x-gzip"):
        limit = get_settings().max_request_bytes
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error as e:
            raise BadRequest("request body is not valid gzip") from e
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    elif encoding not in ("", "identity"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}")
    return raw


def _smart(project_id: str, service: str) -> Response:
    from chalicelib.services import githttp

    caller = githttp.git_caller(header(bp.current_request, "authorization"))
    body = githttp.serve(caller, path_id(project_id), service, _git_body())
    return _git_response(body, f"application/x-{service}-result")


@route(bp, "/{project_id}/git/info/refs", doc=Doc(
    "Git smart HTTP: ref advertisement (clone URL: /api/v1/projects/{project_id}/git)",
    auth="optional", content_type="application/x-git-upload-pack-advertisement",
    params=(Param("service", required=True,
                  description="git-upload-pack (clone, fetch) or git-receive-pack (push)"),),
    description="HTTP Basic authentication: any username, a personal API token as password."))
@plain_refusals
def info_refs(project_id: str) -> Response:
    from chalicelib.services import githttp

    request = bp.current_request
    params: Mapping[str, str] = request.query_params or {}
    service = params.get("service") or ""
    caller = githttp.git_caller(header(request, "authorization"))
    body = githttp.advertise(caller, path_id(project_id), service)
    return _git_response(body, f"application/x-{service}-advertisement")


@route(bp, "/{project_id}/git/git-upload-pack", methods=["POST"], content_types=[UPLOAD_REQUEST],
       doc=Doc("Git smart HTTP: fetch (upload-pack)", _GIT_BODY, auth="optional",
               request_content_type=UPLOAD_REQUEST,
               content_type="application/x-git-upload-pack-result"))
@plain_refusals
def upload_pack(project_id: str) -> Response:
    return _smart(project_id, "git-upload-pack")


@route(bp, "/{project_id}/git/git-receive-pack", methods=["POST"],
       content_types=[RECEIVE_REQUEST],
       doc=Doc("Git smart HTTP: push (receive-pack); editors and owners", _GIT_BODY,
               request_content_type=RECEIVE_REQUEST,
               content_type="application/x-git-receive-pack-result",
               description="A push is validated like the files API (paths, sizes, file count) "
                           "and refused whole; non-fast-forward only for the owner."))
@plain_refusals
def receive_pack(project_id: str) -> Response:
    return _smart(project_id, "git-receive-pack")


@route(bp, "/{project_id}/git/commits", doc=Doc(
    "List commits of the default branch, newest first", response=CommitPublic, is_list=True,
    auth="optional"))
def list_commits(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    page = history.list_commits(caller, path_id(project_id), limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/git/commits/{sha}", doc=Doc(
    "Get a commit and the paths it changed (sha, or HEAD)", response=CommitDetail,
    auth="optional"))
def get_commit(project_id: str, sha: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(history.get_commit(caller, path_id(project_id), sha))


@route(bp, "/{project_id}/git/commits/{sha}/content", doc=Doc(
    "A file's content at a commit", response=FileAtCommit, auth="optional",
    params=(Param("path", required=True, description="project path, e.g. rtl/top.v"),)))
def file_at_commit(project_id: str, sha: str) -> Response:
    request = bp.current_request
    params: Mapping[str, str] = request.query_params or {}
    path = params.get("path")
    if not path:
        raise Unprocessable("query parameter 'path' is required")
    return json_response(history.file_at(optional_caller(request), path_id(project_id), sha, path))


@route(bp, "/{project_id}/git/diff", doc=Doc(
    "Diff between two commits (unified, per file)", response=DiffPublic, auth="optional",
    params=(Param("base", required=True, description="older commit sha"),
            Param("head", required=True, description="newer commit sha, or HEAD"))))
def diff(project_id: str) -> Response:
    request = bp.current_request
    params: Mapping[str, str] = request.query_params or {}
    if not params.get("base") or not params.get("head"):
        raise Unprocessable("query parameters 'base' and 'head' are required")
    return json_response(history.diff(optional_caller(request), path_id(project_id), params["base"],
                                      params["head"]))


@route(bp, "/{project_id}/git/restore", methods=["POST"], doc=Doc(
    "Restore a file, or the whole project, to a commit (as a new commit)", RestoreRequest,
    RestoreResult, errors=(409,)))
def restore(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    commit = history.restore(caller, path_id(project_id), parse_body(request, RestoreRequest))
    return json_response(RestoreResult(restored=commit is not None, commit=commit))


@route(bp, "/{project_id}/fork", methods=["POST"], doc=Doc(
    "Fork a project you can read into your account, with its full history", ForkRequest,
    ProjectPublic, status=201, errors=(409,)))
def fork(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    raw = request_bytes(request)
    data = parse_body(request, ForkRequest) if raw.strip() else ForkRequest()
    return json_response(forks.fork_project(caller, path_id(project_id), data), status=201)


@route(bp, "/import", methods=["POST"], doc=Doc(
    "Create a project from a public git URL (https, http, git): 202 with the project, marked "
    "importing; follow its import job (import_job_id) at .../jobs/{id} and .../logs",
    ImportRequest, ProjectPublic, status=202, errors=(409, 429, 503)))
def import_project() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    created = gitimport.start_import(caller, parse_body(request, ImportRequest))
    location = f"/api/v1/projects/{created.id}/jobs/{created.import_job_id}"
    return json_response(created, status=202, headers={"Location": location})
