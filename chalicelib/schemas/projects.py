"""Project and member requests and responses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from chalicelib.schemas.common import PublicModel, RequestModel

Visibility = Literal["private", "public"]
Role = Literal["owner", "editor", "viewer"]
GrantableRole = Literal["editor", "viewer"]
#: The repository's default branch. Only `main` exists today (the files API, jobs and history
#: all work on it), so `main` is the only value a project accepts; see README "Projects".
DEFAULT_BRANCH = "main"


def _only_main(value: str | None) -> str | None:
    if value is not None and value != DEFAULT_BRANCH:
        raise ValueError(f"only '{DEFAULT_BRANCH}' is supported: every project's files, jobs and "
                         "history live on its main branch")
    return value


class ProjectCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility = "private"
    git_branch: str = Field(default=DEFAULT_BRANCH, max_length=255)

    _branch = field_validator("git_branch")(_only_main)


class ProjectUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility | None = None
    git_branch: str | None = Field(default=None, max_length=255)

    _branch = field_validator("git_branch")(_only_main)


class ProjectPublic(PublicModel):
    id: int
    name: str
    slug: str
    description: str | None
    visibility: Visibility
    git_branch: str = Field(description="the repository's default branch (always 'main' today)")
    owner_id: int
    stars_count: int = Field(description="users who starred the project")
    views_count: int = Field(description="views, counted once per viewer per hour")
    created_at: str
    updated_at: str
    file_count: int
    total_bytes: int
    import_url: str | None
    import_job_id: int | None
    import_status: Literal["importing", "completed", "failed"] | None
    forked_from: int | None


class MemberAdd(RequestModel):
    username: str | None = Field(default=None, max_length=254)
    email: str | None = Field(default=None, max_length=254)
    role: GrantableRole = "viewer"

    @model_validator(mode="after")
    def _one_identity(self) -> MemberAdd:
        # By username only (public anyway): an answer to an email, 201 or 404, told the owner
        # whether the address has an account (issue 10, finding 9). `email` stays in the model
        # so that a client sending it reads why.
        if self.email is not None:
            raise ValueError("members are added by username, not by email (a lookup by email "
                             "would tell whether the address has an account)")
        if self.username is None:
            raise ValueError("username: required")
        return self


class MemberUpdate(RequestModel):
    role: GrantableRole


class MemberPublic(PublicModel):
    user_id: int
    username: str
    role: Role
    created_at: str


class StarPublic(PublicModel):
    project_id: int
    starred: bool = Field(description="whether the caller has starred the project")
    stars_count: int
