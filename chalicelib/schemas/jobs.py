"""Job requests, responses, and the queue message the API and the runner share."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.ids import MAX_ID
from chalicelib.schemas.common import PublicModel, RequestModel

JobType = Literal["simulation", "synthesis", "lint", "formal", "cocotb", "build"]
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


def _config_per_job_type(schema: dict[str, Any]) -> None:
    """Document `config` per job type: one `oneOf` branch per type, its config model's schema
    (chalicelib/schemas/job_configs.py, what parse_job_config validates with) inlined."""
    from chalicelib.schemas.job_configs import CONFIG_MODELS

    schema["oneOf"] = [
        {"title": f"{job_type} job", "required": ["job_type"],
         "properties": {"job_type": {"const": job_type}, "config": model.model_json_schema()}}
        for job_type, model in CONFIG_MODELS.items()]


class JobCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_config_per_job_type)

    job_type: JobType
    # Validated per job type by chalicelib.schemas.job_configs.parse_job_config.
    config: dict[str, Any] = Field(default_factory=dict)
    # Run on this commit's tree (a sha, an abbreviation, HEAD, a branch or a tag of the project).
    commit: str | None = Field(default=None, min_length=1, max_length=255)
    # Run the tools even when a run with the same cache key completed before (summary.cache).
    no_cache: bool = False


class JobMessage(BaseModel):
    """The body of a jobs-queue message (chalicelib/jobqueue.py): which job to run and the commit
    it was submitted on (the job record stays the truth; the commit lets the runner fetch the
    files while its claim is in flight). Messages sent before `commit` existed carry none."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    project_id: int = Field(ge=1, le=MAX_ID, strict=True)
    job_id: int = Field(ge=1, le=MAX_ID, strict=True)
    commit: str | None = Field(default=None, max_length=64)


class InputFilePublic(PublicModel):
    path: str
    file_id: int | None = Field(description=(
        "the files-table row at this path when the job started, if it held these bytes; else null"))
    blob: str | None = Field(default=None, description="the git blob id in the job's commit")
    sha256: str
    version: int
    size_bytes: int


class StepPublic(PublicModel):
    name: str
    argv: list[str]
    exit_code: int | None
    duration_s: float
    limit: str | None = None


class ArtifactPublic(PublicModel):
    name: str
    kind: str
    size_bytes: int
    mime_type: str


class TestResultPublic(PublicModel):
    """One cocotb test of a `cocotb` job, from cocotb's results XML (JUnit)."""

    name: str = Field(description="the test function's name")
    module: str = Field(description="the test module it is defined in")
    outcome: Literal["passed", "failed", "skipped"]
    duration_s: float | None = Field(description="wall time; null when the run stopped mid-test")
    sim_time_ns: float | None = Field(default=None, description="simulated time the test took")
    message: str | None = Field(description="why it failed or was skipped (exception and text)")


class JobPublic(PublicModel):
    id: int
    project_id: int
    job_type: str
    status: JobStatus
    config: dict[str, Any]
    commit: str | None = Field(default=None, description=(
        "the commit the job ran on (its tree is what the tools read): the requested one, else "
        "main's head at submit time; null only when the project had no commit then (no files)"))
    commit_pinned: bool = Field(default=False, description=(
        "true: the request named `commit`; false: it is main's head at submit time"))
    created_by: int
    user_id: int = Field(description="the submitter (upstream's name for created_by)")
    created_at: str
    updated_at: str = Field(description="when the job last changed state")
    started_at: str | None = None
    completed_at: str | None = None
    duration_s: float | None = None
    error_message: str | None = None
    exit_code: int | None = None
    attempts: int = 0
    cancel_requested: bool = False
    inputs: list[InputFilePublic] = Field(default_factory=list)
    steps: list[StepPublic] = Field(default_factory=list)
    tool_versions: dict[str, str] = Field(default_factory=dict)
    artifacts: list[ArtifactPublic] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)
    tests: list[TestResultPublic] | None = Field(default=None, description=(
        "cocotb jobs: one entry per test (also in the results.xml artifact); null otherwise"))
    log_bytes: int = 0
    log_truncated: bool = False
    # Pending jobs only: 1 + the pending jobs (anyone's) submitted before it, counted to 1,000.
    queue_position: int | None


class JobLogs(PublicModel):
    job_id: int
    status: JobStatus
    logs: str
    offset: int = Field(description="byte offset the returned text starts at")
    next_offset: int = Field(description="pass as ?offset= to fetch only what is new")
    size_bytes: int = Field(description="bytes of log stored so far")
    truncated: bool = Field(description="the log reached its cap; later output was dropped")
    complete: bool = Field(description="the job has finished and nothing more will be appended")


class ArtifactLink(PublicModel):
    name: str
    url: str
    expires_in: int
    size_bytes: int
    mime_type: str
