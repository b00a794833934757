"""Presigned upload requests and responses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.schemas.common import PublicModel, RequestModel


class UploadUrlCreate(RequestModel):
    filename: str = Field(min_length=1, max_length=255)
    filepath: str | None = Field(default=None, max_length=1024)
    size_bytes: int | None = Field(default=None, ge=1)
    mime_type: str | None = Field(default=None, max_length=127)


class UploadUrlPublic(PublicModel):
    """POST `fields` plus the file (as the last form field, named `file`) to `url`."""

    upload_id: int
    filepath: str
    method: Literal["POST"]
    url: str
    fields: dict[str, str]
    expires_in: int
    max_bytes: int


class UploadPublic(PublicModel):
    upload_id: int
    filepath: str
    status: Literal["pending", "registering", "registered", "rejected"]
    reason: str | None
    file_id: int | None
