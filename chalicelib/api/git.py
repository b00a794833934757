"""Routes: /api/v1/projects/{project_id}/git — history, and git's smart HTTP protocol.

Clone URL: http(s)://<host>/api/v1/projects/<project_id>/git (Chalice cannot route
`<id>.git`). Authenticate with HTTP Basic: any username, a personal API token as the password.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.api.http import (
    Credentials,
    header,
    json_response,
    parse_body,
    query,
    query_required,
    request_bytes,
    route,
    to_response,
)
from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, DomainError, PayloadTooLarge
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
from chalicelib.services.git import commits, forks, imports, log
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

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


def plain_refusal(exc: Exception) -> Response:
    """Answer a smart-HTTP route's refusal (401, 403, 404, 413, 429, ...) as `text/plain`.

    git shows the body of a failed request only when its type is text/plain (git's http.c,
    show_http_message: each line as "remote: ..."); a JSON {"detail"} would leave the user
    with the bare status. The status and headers (WWW-Authenticate) stay as they were."""
    if not isinstance(exc, DomainError):
        return to_response(exc)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc)
    return Response(body=detail.rstrip("\n") + "\n", status_code=exc.status_code,
                    headers={**exc.headers, **_NO_CACHE, "Content-Type": "text/plain; charset=utf-8"})


def _git_caller(authorization: str | None, required: bool) -> Caller | None:
    from chalicelib.services.git import smart_http as githttp

    caller = githttp.git_caller(authorization)
    if caller is None and required:
        raise githttp.GitAuthRequired()
    return caller


#: git's smart HTTP: HTTP Basic (any username, a personal API token as password) or a bearer token.
GIT_CREDENTIALS = Credentials(schemes=("basic", "bearer"), read=_git_caller)


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


def _smart(caller: Caller | None, project_id: int, service: str) -> Response:
    from chalicelib.services.git import smart_http as githttp

    body = githttp.serve(caller, project_id, service, _git_body())
    return _git_response(body, f"application/x-{service}-result")


@route(bp, "/{project_id}/git/info/refs", credentials=GIT_CREDENTIALS, on_error=plain_refusal,
       doc=Doc("Git smart HTTP: ref advertisement (clone URL: /api/v1/projects/{project_id}/git)",
               auth="optional", content_type="application/x-git-upload-pack-advertisement",
               params=(Param("service", required=True,
                             description="git-upload-pack (clone, fetch) or git-receive-pack (push)"),)))
def info_refs(caller: Caller | None, project_id: int) -> Response:
    from chalicelib.services.git import smart_http as githttp

    service = query(bp.current_request, "service") or ""
    body = githttp.advertise(caller, project_id, service)
    return _git_response(body, f"application/x-{service}-advertisement")


@route(bp, "/{project_id}/git/git-upload-pack", methods=["POST"], content_types=[UPLOAD_REQUEST],
       credentials=GIT_CREDENTIALS, on_error=plain_refusal,
       doc=Doc("Git smart HTTP: fetch (upload-pack)", _GIT_BODY, auth="optional",
               request_content_type=UPLOAD_REQUEST,
               content_type="application/x-git-upload-pack-result"))
def upload_pack(caller: Caller | None, project_id: int) -> Response:
    return _smart(caller, project_id, "git-upload-pack")


@route(bp, "/{project_id}/git/git-receive-pack", methods=["POST"],
       content_types=[RECEIVE_REQUEST], credentials=GIT_CREDENTIALS, on_error=plain_refusal,
       doc=Doc("Git smart HTTP: push (receive-pack); editors and owners", _GIT_BODY,
               request_content_type=RECEIVE_REQUEST,
               content_type="application/x-git-receive-pack-result",
               description="A push is validated like the files API (paths, sizes, file count) "
                           "and refused whole; non-fast-forward only for the owner."))
def receive_pack(caller: Caller, project_id: int) -> Response:
    return _smart(caller, project_id, "git-receive-pack")


@route(bp, "/{project_id}/git/commits", doc=Doc(
    "List commits of the default branch, newest first, each with its pipeline status",
    response=CommitPublic, is_list=True,
    auth="optional"))
def list_commits(caller: Caller | None, project_id: int, limit: int,
                 cursor: str | None) -> Page[CommitPublic]:
    from chalicelib.services.pipelines import views as pipeline_views

    page = log.list_commits(caller, project_id, limit, cursor)
    page.items = pipeline_views.with_pipelines(project_id, page.items)
    return page


@route(bp, "/{project_id}/git/commits/{sha}", doc=Doc(
    "Get a commit and the paths it changed (a sha, short sha, branch, tag, HEAD or main)",
    response=CommitDetail,
    auth="optional"))
def get_commit(caller: Caller | None, project_id: int, sha: str) -> CommitDetail:
    from chalicelib.services.pipelines import views as pipeline_views

    return pipeline_views.with_pipelines(project_id, [log.get_commit(caller, project_id, sha)])[0]


@route(bp, "/{project_id}/git/commits/{sha}/content", doc=Doc(
    "A file's content at a commit", response=FileAtCommit, auth="optional", errors=(422,),
    params=(Param("path", required=True, description="project path, e.g. rtl/top.v"),)))
def file_at_commit(caller: Caller | None, project_id: int, sha: str) -> FileAtCommit:
    return log.file_at(caller, project_id, sha, query_required(bp.current_request, "path"))


@route(bp, "/{project_id}/git/diff", doc=Doc(
    "Diff between two commits (unified, per file)", response=DiffPublic, auth="optional",
    errors=(422,), params=(Param("base", required=True, description="older commit (sha, branch, tag, ...)"),
            Param("head", required=True, description="newer commit (sha, branch, tag, HEAD, ...)"))))
def diff(caller: Caller | None, project_id: int) -> DiffPublic:
    request = bp.current_request
    return log.diff(caller, project_id, query_required(request, "base"),
                    query_required(request, "head"))


@route(bp, "/{project_id}/git/restore", methods=["POST"], doc=Doc(
    "Restore a file, or the whole project, to a commit (as a new commit)", RestoreRequest,
    RestoreResult, errors=(409,)))
def restore(caller: Caller, project_id: int, body: RestoreRequest) -> RestoreResult:
    commit = commits.restore(caller, project_id, body)
    return RestoreResult(restored=commit is not None, commit=commit)


@route(bp, "/{project_id}/fork", methods=["POST"], doc=Doc(
    "Fork a project you can read into your account, with its full history: 202 with the new "
    "project, marked importing while a runner copies the history; follow its job "
    "(import_job_id) at .../jobs/{id}", ForkRequest, ProjectPublic, status=202,
    errors=(409, 429, 503)))
def fork(caller: Caller, project_id: int) -> Response:
    request = bp.current_request  # the body is optional: none forks under the same name
    data = parse_body(request, ForkRequest) if request_bytes(request).strip() else ForkRequest()
    created = forks.fork_project(caller, project_id, data)
    location = f"/api/v1/projects/{created.id}/jobs/{created.import_job_id}"
    return json_response(created, status=202, headers={"Location": location})


@route(bp, "/import", methods=["POST"], doc=Doc(
    "Create a project from a public git URL (https, http, git): 202 with the project, marked "
    "importing; follow its import job (import_job_id) at .../jobs/{id} and .../logs",
    ImportRequest, ProjectPublic, status=202, errors=(409, 429, 503)))
def import_project(caller: Caller, body: ImportRequest) -> Response:
    created = imports.start_import(caller, body)
    location = f"/api/v1/projects/{created.id}/jobs/{created.import_job_id}"
    return json_response(created, status=202, headers={"Location": location})
