"""Routes: /api/v1/projects/{project_id}/files."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import (
    header,
    json_response,
    list_response,
    optional_caller,
    page_request,
    parse_body,
    request_bytes,
    required_caller,
    route,
)
from chalicelib.api.multipart import parse_upload
from chalicelib.schemas.files import FileCreate, FileUpdate
from chalicelib.services import files

bp = Blueprint(__name__)


def _with_etag(body: files.FilePublic, status: int = 200) -> Response:
    return json_response(body, status=status, headers={"ETag": files.etag(body.version)})


@route(bp, "/{project_id}/files")
def list_files(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    page = files.list_files(caller, project_id, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/files", methods=["POST"])
def create_file(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, FileCreate)
    return _with_etag(files.create_file(caller, project_id, data), status=201)


@route(bp, "/{project_id}/files/upload", methods=["POST"], content_types=["multipart/form-data"])
def upload_file(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    upload = parse_upload(header(request, "content-type") or "", request_bytes(request))
    data = FileCreate(filename=upload.filename, filepath=upload.filepath,
                      mime_type=upload.mime_type)
    return _with_etag(files.create_file(caller, project_id, data, raw=upload.data), status=201)


@route(bp, "/{project_id}/files/{file_id}")
def get_file(project_id: str, file_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return _with_etag(files.get_file(caller, project_id, file_id))


@route(bp, "/{project_id}/files/{file_id}", methods=["PUT", "PATCH"])
def update_file(project_id: str, file_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, FileUpdate)
    updated = files.update_file(caller, project_id, file_id, data, header(request, "if-match"))
    return _with_etag(updated)


@route(bp, "/{project_id}/files/{file_id}", methods=["DELETE"])
def delete_file(project_id: str, file_id: str) -> Response:
    request = bp.current_request
    files.delete_file(required_caller(request), project_id, file_id, header(request, "if-match"))
    return Response(body="", status_code=204)
