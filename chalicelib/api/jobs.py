"""Routes: /api/v1/projects/{project_id}/jobs (submit, list, read, logs, cancel, artifacts)."""

from __future__ import annotations

from collections.abc import Mapping

from chalice import Blueprint, Response

from chalicelib.api.http import (
    json_response,
    list_response,
    optional_caller,
    page_request,
    parse_body,
    path_id,
    required_caller,
    route,
)
from chalicelib.errors import Unprocessable
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.jobs import ArtifactLink, JobCreate, JobLogs, JobPublic
from chalicelib.services import jobs

bp = Blueprint(__name__)

OFFSET = Param("offset", "query", "Byte offset to read the log from (the previous next_offset)",
               schema_type="integer")
PRESIGN = Param("presign", "query", "Answer with a presigned URL even for small text artifacts",
                schema_type="boolean")


def _int_param(name: str, default: int) -> int:
    params: Mapping[str, str] = bp.current_request.query_params or {}
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise Unprocessable(f"{name} must be an integer") from e


@route(bp, "/{project_id}/jobs", methods=["POST"],
       doc=Doc("Submit a job (editors and owners)", JobCreate, JobPublic, status=201,
               errors=(503,)))
def submit_job(project_id: str) -> Response:
    request = bp.current_request
    caller = required_caller(request)
    data = parse_body(request, JobCreate)
    return json_response(jobs.submit_job(caller, path_id(project_id), data), status=201)


@route(bp, "/{project_id}/jobs",
       doc=Doc("List a project's jobs, newest first", response=JobPublic, is_list=True,
               auth="optional"))
def list_jobs(project_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    page = jobs.list_jobs(caller, path_id(project_id), limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/{project_id}/jobs/{job_id}",
       doc=Doc("Get a job with its steps, inputs and artifacts", response=JobPublic,
               auth="optional"))
def get_job(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(jobs.get_job(caller, path_id(project_id), path_id(job_id)))


@route(bp, "/{project_id}/jobs/{job_id}", methods=["DELETE"],
       doc=Doc("Cancel a job: pending ends at once (200), running is stopped by the runner (202)",
               response=JobPublic, errors=(409,)))
def cancel_job(project_id: str, job_id: str) -> Response:
    job = jobs.cancel_job(required_caller(bp.current_request), path_id(project_id), path_id(job_id))
    return json_response(job, status=202 if job.status == "running" else 200)


@route(bp, "/{project_id}/jobs/{job_id}/logs",
       doc=Doc("Read a job's log from a byte offset", response=JobLogs, auth="optional",
               params=(OFFSET,)))
def get_logs(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(jobs.get_logs(caller, path_id(project_id), path_id(job_id), _int_param("offset", 0)))


@route(bp, "/{project_id}/jobs/{job_id}/artifacts/{name}",
       doc=Doc("Download an artifact: small text inline, otherwise a short-lived presigned URL",
               response=ArtifactLink, auth="optional", params=(PRESIGN,)))
def get_artifact(project_id: str, job_id: str, name: str) -> Response:
    request = bp.current_request
    params: Mapping[str, str] = request.query_params or {}
    presign = params.get("presign", "").lower() in {"1", "true", "yes"}
    found = jobs.get_artifact(optional_caller(request), path_id(project_id), path_id(job_id), name, presign)
    if isinstance(found, jobs.InlineArtifact):
        return Response(body=found.body, status_code=200,
                        headers={"Content-Type": found.mime_type})
    return json_response(found)
