"""Routes: /api/v1/projects/{project_id}/files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.api.http import header, json_response, request_bytes, route
from chalicelib.api.multipart import parse_upload
from chalicelib.openapi import MULTIPART, Doc, Param
from chalicelib.schemas.files import FileCreate, FilePublic, FileUpdate, FileWithContent
from chalicelib.services import files
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)

IF_MATCH = Param("If-Match", "header", "The ETag the change is based on; 412 when stale")
UPLOAD_FORM = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"},
    "filepath": {"type": "string", "maxLength": 1024},
}}


def _with_etag(body: files.FilePublic, status: int = 200) -> Response:
    return json_response(body, status=status, headers={"ETag": files.etag(body.version)})


def _if_match() -> str | None:
    return header(bp.current_request, "if-match")


@route(bp, "/{project_id}/files",
       doc=Doc("List a project's files", response=FilePublic, is_list=True, auth="optional"))
def list_files(caller: Caller | None, project_id: int, limit: int,
               cursor: str | None) -> Page[FilePublic]:
    return files.list_files(caller, project_id, limit, cursor)


@route(bp, "/{project_id}/files", methods=["POST"],
       doc=Doc("Create a file", FileCreate, FilePublic, status=201, errors=(409,), headers=("ETag",)))
def create_file(caller: Caller, project_id: int, body: FileCreate) -> Response:
    return _with_etag(files.create_file(caller, project_id, body), status=201)


@route(bp, "/{project_id}/files/upload", methods=["POST"], content_types=["multipart/form-data"],
       doc=Doc("Upload a file (multipart: `file`, optional `filepath`)", UPLOAD_FORM, FilePublic,
               status=201, errors=(409, 415), headers=("ETag",), request_content_type=MULTIPART))
def upload_file(caller: Caller, project_id: int) -> Response:
    request = bp.current_request
    # Authorise before the body is parsed: parsing is the expensive part of a hostile request.
    files.check_writable(caller, project_id)
    upload = parse_upload(header(request, "content-type") or "", request_bytes(request))
    data = FileCreate(filename=upload.filename, filepath=upload.filepath,
                      mime_type=upload.mime_type)
    return _with_etag(files.create_file(caller, project_id, data, raw=upload.data), status=201)


@route(bp, "/{project_id}/files/{file_id}",
       doc=Doc("Get a file with its content", response=FileWithContent, auth="optional", headers=("ETag",)))
def get_file(caller: Caller | None, project_id: int, file_id: int) -> Response:
    return _with_etag(files.get_file(caller, project_id, file_id))


@route(bp, "/{project_id}/files/{file_id}", methods=["PUT", "PATCH"],
       doc=Doc("Update a file (If-Match: its ETag)", FileUpdate, FilePublic, errors=(409, 412),
               headers=("ETag",), params=(IF_MATCH,)))
def update_file(caller: Caller, project_id: int, file_id: int, body: FileUpdate) -> Response:
    return _with_etag(files.update_file(caller, project_id, file_id, body, _if_match()))


@route(bp, "/{project_id}/files/{file_id}", methods=["DELETE"],
       doc=Doc("Delete a file", status=204, errors=(412,), params=(IF_MATCH,)))
def delete_file(caller: Caller, project_id: int, file_id: int) -> None:
    files.delete_file(caller, project_id, file_id, _if_match())
