"""Base classes shared by every request and response model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """A request body: unknown fields are an error, strings are stripped of nothing."""

    # defer_build: validators are built on first use, not at import (Lambda cold start).
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class PublicModel(BaseModel):
    """What leaves the server: built from our own records, never from request bodies."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


class ErrorPublic(PublicModel):
    detail: str


class HealthPublic(PublicModel):
    status: str  # "ok" or "degraded"
    checks: dict[str, str]  # dependency -> "ok" or "unreachable"
