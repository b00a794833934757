"""Pipelines as the API shows them: per job and per pipeline status of a commit."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chalicelib.schemas.common import PublicModel, RequestModel

PipelineStatus = Literal["pending", "running", "passed", "failed", "cancelled"]


class PipelineJobPublic(PublicModel):
    name: str
    job_type: str
    needs: list[str]
    status: PipelineStatus
    job_id: int | None = None  # None until the job started (its needs passed)
    error: str | None = None  # why it failed or was not run
    cached: bool = False  # the result was taken from an earlier identical run
    cached_from: int | None = None  # that run's job id (in the project `cached_project_id`)
    cached_project_id: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)  # the job's summary once it ended


class PipelinePublic(PublicModel):
    id: int
    project_id: int
    commit: str
    ref: str
    status: PipelineStatus
    jobs: list[PipelineJobPublic]
    errors: list[str] = Field(default_factory=list)  # the pipeline file's faults ("line N: ...")
    created_at: str
    updated_at: str


class PipelineValidate(RequestModel):
    """A pipeline file's text, checked as a push would check it."""

    content: str = Field(max_length=64 * 1024)


class PipelineValidation(PublicModel):
    valid: bool
    errors: list[str]
    jobs: list[str]  # job names in an order where each comes after its needs


class JobChange(PublicModel):
    name: str
    job_type: str
    base_status: PipelineStatus | None
    head_status: PipelineStatus | None
    changed: bool
    figures: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    tests_changed: list[dict[str, Any]] = Field(default_factory=list)


class PipelineComparison(PublicModel):
    base: str
    head: str
    base_pipeline: int | None
    head_pipeline: int | None
    jobs: list[JobChange]
