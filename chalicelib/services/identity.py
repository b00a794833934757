"""Who is calling: resolves an Authorization header (JWT or personal API token) to a Caller."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from chalicelib.auth.access_tokens import decode_access_token
from chalicelib.config import get_settings
from chalicelib.errors import Unauthorized
from chalicelib.models.accounts import ApiToken, User

API_TOKEN_PREFIX = "a6p_"  # noqa: S105 - marks personal tokens, not a secret


class Caller:
    """The authenticated caller.

    A caller from an access token is checked against their user record (active, not revoked)
    on first use of `user` or `id`, or by `projects.authorize`, which fetches the record in the
    same BatchGetItem as the project: one round trip instead of two on the common read path.
    Nothing reads the caller's identity before that check; `claimed_id` (from a token whose
    signature is verified) only names which record to fetch, and what to log.
    """

    def __init__(self, user: User | None = None, via_api_token: bool = False, *,
                 claimed_id: int | None = None,
                 verify: Callable[[User | None], User] | None = None) -> None:
        if user is None and (claimed_id is None or verify is None):
            raise ValueError("a Caller needs a user record, or a claimed id and a verifier")
        self._user = user
        self._verify = verify
        self.via_api_token = via_api_token
        self.claimed_id = int(user.id if user is not None else claimed_id or 0)

    @property
    def verified(self) -> bool:
        return self._user is not None

    def accept(self, record: User | None) -> User:
        """Check the caller's user record as fetched (None: it does not exist); raises Unauthorized."""
        if self._user is None:
            assert self._verify is not None
            self._user = self._verify(record)
        return self._user

    @property
    def user(self) -> User:
        if self._user is None:
            return self.accept(_fetch_user(self.claimed_id))
        return self._user

    @property
    def id(self) -> int:
        return int(self.user.id)


def hash_api_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return value.strip()


def _fetch_user(user_id: int) -> User | None:
    try:
        return User.get(user_id)
    except User.DoesNotExist:
        return None


def _check_active(user: User | None) -> User:
    if user is None:
        raise Unauthorized("Could not validate credentials")
    if not user.is_active:
        raise Unauthorized("Account is disabled")
    return user


def _active_user(user_id: int) -> User:
    return _check_active(_fetch_user(user_id))


def _from_api_token(secret: str) -> Caller:
    try:
        token = ApiToken.get(hash_api_token(secret))
    except ApiToken.DoesNotExist as e:
        raise Unauthorized("Could not validate credentials") from e
    if token.expires_at is not None and token.expires_at < time.time():
        raise Unauthorized("Token has expired")
    return Caller(user=_active_user(token.user_id), via_api_token=True)


def _from_access_token(token: str, lazy: bool) -> Caller:
    claims = decode_access_token(get_settings(), token)

    def verify(record: User | None) -> User:
        user = _check_active(record)
        if claims.generation != int(user.token_generation or 0):
            raise Unauthorized("Token has been revoked")
        return user

    caller = Caller(claimed_id=claims.user_id, verify=verify)
    if not lazy:
        caller.accept(_fetch_user(claims.user_id))
    return caller


def authenticate(authorization: str | None, *, required: bool, lazy: bool = False) -> Caller | None:
    """Resolve the header to a caller. `lazy`: an access token's user record is checked on first
    use (see Caller) rather than now; read routes use it so the check rides with the project."""
    token = _bearer(authorization)
    if token is None:
        if required:
            raise Unauthorized()
        return None
    if token.startswith(API_TOKEN_PREFIX):
        return _from_api_token(token)
    return _from_access_token(token, lazy)
