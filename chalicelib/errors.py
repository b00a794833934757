"""Domain errors, each carrying the HTTP status it maps to (mapped in one place: api/http.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Pydantic prefixes a validator's own message with its exception kind ("Value error, must not
# contain '..'"): noise to an API caller, who reads the message after the field's location.
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def validation_message(item: Mapping[str, object]) -> str:
    """The message of one Pydantic error (an item of `ValidationError.errors()`), without the
    "Value error, " / "Assertion failed, " prefix Pydantic adds to a validator's message."""
    message = str(item.get("msg", "invalid"))
    for prefix in _PYDANTIC_PREFIXES:
        message = message.removeprefix(prefix)
    return message


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = headers or {}


class BadRequest(DomainError):
    status_code = 400


class Unauthorized(DomainError):
    status_code = 401

    def __init__(self, detail: Any = "Not authenticated") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class PreconditionFailed(DomainError):
    status_code = 412


class PayloadTooLarge(DomainError):
    status_code = 413


class Unprocessable(DomainError):
    status_code = 422


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, detail: Any, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(DomainError):
    status_code = 503
