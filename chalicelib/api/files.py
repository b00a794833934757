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
    path_id,
    request_bytes,
    required_caller,
    route,
)
from chalicelib.api.multipart import parse_upload
from chalicelib.openapi import MULTIPART, Doc, Param
from chalicelib.schemas.files import FileCreate, FilePublic, FileUpdate, FileWithContent
from chalicelib.services import files

bp = Blueprint(__name__)

IF_MATCH = Param("If-Match", "header", "The ETag the change is based on; 412 when stale")
UPLOAD_FORM = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"},
    "filepath": {"type": "string", "maxLength": 1024},
}}


def _with_etag(body: files.FilePublic, status: int = 200) -> Response:
    return json_response(body, status=status, headers={"ETag": files.etag(body.version)})


@route(bp, "/{project_id}/files",
       doc=Doc("List a project's files", response=FilePublic, is_list=True, auth="optional"))
def list_files(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    page = files.list_files(caller, path_id(project_id), limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/files", methods=["POST"],
       doc=Doc("Create a file", FileCreate, FilePublic, status=201, errors=(409,), headers=("ETag",)))
def create_file(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, FileCreate)
    return _with_etag(files.create_file(caller, path_id(project_id), data), status=201)


@route(bp, "/{project_id}/files/upload", methods=["POST"], content_types=["multipart/form-data"],
       doc=Doc("Upload a file (multipart: `file`, optional `filepath`)", UPLOAD_FORM, FilePublic,
               status=201, errors=(409, 415), headers=("ETag",), request_content_type=MULTIPART))
def upload_file(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    # Authorise before the body is parsed: parsing is the expensive part of a hostile request.
    pid = path_id(project_id)
    files.check_writable(caller, pid)
    upload = parse_upload(header(request, "content-type") or "", request_bytes(request))
    data = FileCreate(filename=upload.filename, filepath=upload.filepath,
                      mime_type=upload.mime_type)
    return _with_etag(files.create_file(caller, pid, data, raw=upload.data), status=201)


@route(bp, "/{project_id}/files/{file_id}",
       doc=Doc("Get a file with its content", response=FileWithContent, auth="optional", headers=("ETag",)))
def get_file(project_id: str, file_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return _with_etag(files.get_file(caller, path_id(project_id), path_id(file_id)))


@route(bp, "/{project_id}/files/{file_id}", methods=["PUT", "PATCH"],
       doc=Doc("Update a file (If-Match: its ETag)", FileUpdate, FilePublic, errors=(409, 412),
               headers=("ETag",), params=(IF_MATCH,)))
def update_file(project_id: str, file_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, FileUpdate)
    updated = files.update_file(caller, path_id(project_id), path_id(file_id), data,
                                header(request, "if-match"))
    return _with_etag(updated)


@route(bp, "/{project_id}/files/{file_id}", methods=["DELETE"],
       doc=Doc("Delete a file", status=204, errors=(412,), params=(IF_MATCH,)))
def delete_file(project_id: str, file_id: str) -> Response:
    request = bp.current_request
    files.delete_file(required_caller(request), path_id(project_id), path_id(file_id),
                      header(request, "if-match"))
    return Response(body="", status_code=204)
