"""Routes: /api/v1/projects/{project_id}/jobs (submit, list, read, logs, cancel, artifacts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.api.http import json_response, query, query_flag, query_int, route
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.jobs import ArtifactLink, JobCreate, JobLogs, JobPublic
from chalicelib.services import job_wait, jobs
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)

OFFSET = Param("offset", "query", "Byte offset to read the log from (the previous next_offset)",
               schema_type="integer")
PRESIGN = Param("presign", "query", "Answer with a presigned URL even for small text artifacts",
                schema_type="boolean")
WAIT = Param("wait", "query", "Long poll: answer as soon as the status changes, at the latest after "
             "this many seconds (0 < wait <= 25)", schema_type="number")
SINCE_STATUS = Param("since_status", "query", "With wait: the status to wait for a change from "
                     "(default: the job's status when the request arrives)")


@route(bp, "/{project_id}/jobs", methods=["POST"],
       doc=Doc("Submit a job (editors and owners); `config` follows the job type's model",
               JobCreate, JobPublic, status=201, errors=(429, 503)))
def submit_job(caller: Caller, project_id: int, body: JobCreate) -> JobPublic:
    return jobs.submit_job(caller, project_id, body)


@route(bp, "/{project_id}/jobs",
       doc=Doc("List a project's jobs, newest first", response=JobPublic, is_list=True,
               auth="optional"))
def list_jobs(caller: Caller | None, project_id: int, limit: int,
              cursor: str | None) -> Page[JobPublic]:
    return jobs.list_jobs(caller, project_id, limit, cursor)


@route(bp, "/{project_id}/jobs/{job_id}",
       doc=Doc("Get a job with its steps, inputs and artifacts; with `wait`, once its status "
               "changes (long poll)", response=JobPublic, auth="optional",
               params=(WAIT, SINCE_STATUS), errors=(422,)))
def get_job(caller: Caller | None, project_id: int, job_id: int) -> JobPublic:
    wait = job_wait.parse_wait(query(bp.current_request, "wait"))
    since = job_wait.parse_since_status(query(bp.current_request, "since_status"), wait)
    if wait is None:
        return jobs.get_job(caller, project_id, job_id)
    return job_wait.wait_for_job(caller, project_id, job_id, wait, since)


@route(bp, "/{project_id}/jobs/{job_id}", methods=["DELETE"],
       doc=Doc("Cancel a job: pending ends at once (200), running is stopped by the runner (202)",
               response=JobPublic, errors=(409,)))
def cancel_job(caller: Caller, project_id: int, job_id: int) -> Response:
    job = jobs.cancel_job(caller, project_id, job_id)
    return json_response(job, status=202 if job.status == "running" else 200)


@route(bp, "/{project_id}/jobs/{job_id}/logs",
       doc=Doc("Read a job's log from a byte offset", response=JobLogs, auth="optional",
               params=(OFFSET,)))
def get_logs(caller: Caller | None, project_id: int, job_id: int) -> JobLogs:
    offset = query_int(bp.current_request, "offset")
    return jobs.get_logs(caller, project_id, job_id, 0 if offset is None else offset)


@route(bp, "/{project_id}/jobs/{job_id}/artifacts/{name}",
       doc=Doc("Download an artifact: small text inline, otherwise a short-lived presigned URL",
               response=ArtifactLink, auth="optional", params=(PRESIGN,)))
def get_artifact(caller: Caller | None, project_id: int, job_id: int, name: str) -> Response:
    presign = query_flag(bp.current_request, "presign")
    found = jobs.get_artifact(caller, project_id, job_id, name, presign)
    if isinstance(found, jobs.InlineArtifact):
        return Response(body=found.body, status_code=200,
                        headers={"Content-Type": found.mime_type})
    return json_response(found)
