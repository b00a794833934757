"""Project and member requests and responses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from chalicelib.schemas.common import PublicModel, RequestModel

Visibility = Literal["private", "public"]
Role = Literal["owner", "editor", "viewer"]
GrantableRole = Literal["editor", "viewer"]


class ProjectCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility = "private"


class ProjectUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Visibility | None = None


class ProjectPublic(PublicModel):
    id: int
    name: str
    slug: str
    description: str | None
    visibility: Visibility
    owner_id: int
    created_at: str
    updated_at: str
    file_count: int
    total_bytes: int
    import_url: str | None
    import_job_id: int | None
    import_status: Literal["importing", "completed", "failed"] | None


class MemberAdd(RequestModel):
    username: str | None = Field(default=None, max_length=254)
    email: str | None = Field(default=None, max_length=254)
    role: GrantableRole = "viewer"

    @model_validator(mode="after")
    def _one_identity(self) -> MemberAdd:
        if (self.username is None) == (self.email is None):
            raise ValueError("give exactly one of username or email")
        return self


class MemberUpdate(RequestModel):
    role: GrantableRole


class MemberPublic(PublicModel):
    user_id: int
    username: str
    role: Role
    created_at: str
