"""Account requests and responses."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from chalicelib.schemas.common import PublicModel, RequestModel

# Deliberately simple: one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
USERNAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{1,38})$"
MAX_PASSWORD_CHARS = 1024


def normalise_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


class UserCreate(RequestModel):
    email: str = Field(max_length=254)
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_CHARS)
    full_name: str | None = Field(default=None, max_length=200)

    _email = field_validator("email")(normalise_email)


class UserLogin(RequestModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=MAX_PASSWORD_CHARS)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class PasswordChange(RequestModel):
    current_password: str = Field(max_length=MAX_PASSWORD_CHARS)
    new_password: str = Field(min_length=8, max_length=MAX_PASSWORD_CHARS)


class UserUpdate(RequestModel):
    full_name: str | None = Field(default=None, max_length=200)
    # False (the default): commits made through the API carry `commit_email`, a no-reply
    # address; True: the login email, which public history then shows to anyone.
    public_email: bool | None = None


class UserPublic(PublicModel):
    id: int
    email: str
    username: str
    full_name: str | None
    is_active: bool
    created_at: str
    public_email: bool
    commit_email: str


class AccessTokenPublic(PublicModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_in: int


class ApiTokenCreate(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenPublic(PublicModel):
    id: int
    name: str
    prefix: str
    created_at: str
    expires_at: int | None


class ApiTokenCreated(ApiTokenPublic):
    token: str
