"""File requests and responses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.schemas.common import PublicModel, RequestModel

Encoding = Literal["utf-8", "base64"]


class FileCreate(RequestModel):
    filename: str = Field(min_length=1, max_length=255)
    filepath: str | None = Field(default=None, max_length=1024)
    content: str | None = None
    mime_type: str | None = Field(default=None, max_length=127)
    encoding: Encoding = "utf-8"
    message: str | None = Field(default=None, max_length=1000)


class FileUpdate(RequestModel):
    filename: str | None = Field(default=None, min_length=1, max_length=255)
    filepath: str | None = Field(default=None, max_length=1024)
    content: str | None = None
    mime_type: str | None = Field(default=None, max_length=127)
    encoding: Encoding = "utf-8"
    message: str | None = Field(default=None, max_length=1000)


class FilePublic(PublicModel):
    id: int
    filename: str
    filepath: str
    size_bytes: int
    mime_type: str
    sha256: str
    version: int
    created_at: str
    updated_at: str


class FileWithContent(FilePublic):
    content: str
    encoding: Encoding
