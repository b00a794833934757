"""Who is calling: resolves an Authorization header (JWT or personal API token) to a Caller."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from chalicelib.auth.access_tokens import decode_access_token
from chalicelib.config import get_settings
from chalicelib.errors import Unauthorized
from chalicelib.models.accounts import ApiToken, User

API_TOKEN_PREFIX = "a6p_"  # noqa: S105 - marks personal tokens, not a secret


@dataclass(frozen=True)
class Caller:
    user: User
    via_api_token: bool = False

    @property
    def id(self) -> str:
        return str(self.user.id)


def hash_api_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return value.strip()


def _active_user(user_id: str) -> User:
    try:
        user = User.get(user_id)
    except User.DoesNotExist as e:
        raise Unauthorized("Could not validate credentials") from e
    if not user.is_active:
        raise Unauthorized("Account is disabled")
    return user


def _from_api_token(secret: str) -> Caller:
    try:
        token = ApiToken.get(hash_api_token(secret))
    except ApiToken.DoesNotExist as e:
        raise Unauthorized("Could not validate credentials") from e
    if token.expires_at is not None and token.expires_at < time.time():
        raise Unauthorized("Token has expired")
    return Caller(user=_active_user(token.user_id), via_api_token=True)


def _from_access_token(token: str) -> Caller:
    claims = decode_access_token(get_settings(), token)
    user = _active_user(claims.user_id)
    if claims.generation != int(user.token_generation or 0):
        raise Unauthorized("Token has been revoked")
    return Caller(user=user)


def authenticate(authorization: str | None, *, required: bool) -> Caller | None:
    token = _bearer(authorization)
    if token is None:
        if required:
            raise Unauthorized()
        return None
    if token.startswith(API_TOKEN_PREFIX):
        return _from_api_token(token)
    return _from_access_token(token)
