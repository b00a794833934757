"""Assignments as the API takes and shows them: what an instructor makes, what a student sees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from chalicelib.schemas.common import PublicModel, RequestModel

MAX_HIDDEN_PATHS = 20
MAX_HIDDEN_PATH_CHARS = 255

# What a student reads of a failed graded job (AssignmentCreate.student_messages).
StudentMessages = Literal["outcome", "scrubbed"]


def _hidden_path(path: str) -> str:
    """A relative path or folder ("hidden/"), kept as given but for a trailing '/'."""
    if not path or path.strip() != path or "\x00" in path or "\\" in path:
        raise ValueError("a hidden path is a non-empty relative path without spaces at its ends")
    if path.startswith("/") or len(path) > MAX_HIDDEN_PATH_CHARS:
        raise ValueError(f"a hidden path is relative and at most {MAX_HIDDEN_PATH_CHARS} chars")
    parts = path.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError("a hidden path has no empty, '.' or '..' segments")
    return "/".join(parts) + ("/" if path.endswith("/") else "")


class AssignmentCreate(RequestModel):
    """Make one of the caller's own private projects an assignment."""

    project_id: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    # Files or folders ("hidden/") of the project that students never get: the hidden tests.
    hidden_paths: list[str] = Field(min_length=1, max_length=MAX_HIDDEN_PATHS)
    deadline: str | None = Field(default=None, max_length=64)  # ISO-8601 with a time zone
    student_messages: StudentMessages = Field(
        default="outcome",
        description="What a student reads of a failed graded job: `outcome` (default) only the "
                    "failing step and its exit code or limit; `scrubbed` also the tools' "
                    "messages, capped and with runs of the hidden files' text withheld. The "
                    "student's design runs beside the hidden tests and can print them encoded "
                    "(hex, say) into those messages, so `scrubbed` trusts the class.")

    @field_validator("hidden_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_hidden_path(p) for p in value))

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError as e:
            raise ValueError("deadline is an ISO-8601 date and time, e.g. "
                             "2026-12-01T23:59:00Z") from e
        if when.tzinfo is None:
            raise ValueError("deadline needs a time zone (Z or +hh:mm)")
        return when.astimezone(UTC).isoformat()


class AssignmentPublic(PublicModel):
    id: int
    title: str
    deadline: str | None = None
    created_at: str
    student_messages: StudentMessages = "outcome"
    # Shown to the instructor only (a student sees the assignment, not where its tests are).
    project_id: int | None = None
    owner_id: int | None = None
    hidden_paths: list[str] | None = None
    invite_code: str | None = None  # students accept with it (instructor only)
    # The caller's own copy, once they accepted it.
    copy_project_id: int | None = None


class AcceptRequest(RequestModel):
    """Accept an assignment with the code its instructor handed out."""

    code: str = Field(min_length=1, max_length=100)


class AcceptancePublic(PublicModel):
    assignment_id: int
    student_id: int
    copy_project_id: int
    created_at: str


class TestOutcome(PublicModel):
    name: str
    outcome: str  # passed | failed | skipped
    message: str | None = None  # capped and scrubbed of the hidden files' text


class GradedJob(PublicModel):
    name: str
    status: str  # pending | running | passed | failed | cancelled
    message: str | None = None  # why it failed, capped and scrubbed
    tests: list[TestOutcome] = Field(default_factory=list)


class SubmissionPublic(PublicModel):
    """One graded commit of the caller's copy: outcomes only, never logs or artifacts."""

    id: int
    commit: str
    received_at: str
    late: bool
    status: str
    error: str | None = None
    jobs: list[GradedJob] = Field(default_factory=list)


class GradeRow(PublicModel):
    """One student's latest graded commit (the instructor's table)."""

    student_id: int
    username: str
    copy_project_id: int | None
    commit: str | None = None
    received_at: str | None = None
    late: bool = False
    status: str | None = None  # the pipeline's; None: nothing graded yet
    pipeline_id: int | None = None  # in the assignment's project (logs: its jobs)
    jobs: dict[str, str] = Field(default_factory=dict)  # graded job -> status
    tests: dict[str, str] = Field(default_factory=dict)  # "<job>/<test>" -> outcome
