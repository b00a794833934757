"""JWT access tokens (RFC 8725): HS256 only, exp/iat/sub/iss/aud required and checked."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from chalicelib.config import Settings, signing_key
from chalicelib.errors import Unauthorized
from chalicelib.ids import parse_number_id

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "iss", "aud", "gen"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    issued_at: int
    generation: int  # the user's token generation when issued (see User.token_generation)


def issue_access_token(settings: Settings, user_id: int, generation: int = 0,
                       now: int | None = None) -> str:
    issued = int(time.time()) if now is None else now
    claims = {
        "sub": str(user_id),  # RFC 7519: `sub` is a string; the API names users by int
        "iat": issued,
        "exp": issued + settings.jwt_ttl_seconds,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "gen": generation,
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            signing_key(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": _REQUIRED},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as e:
        raise Unauthorized("Token has expired") from e
    except jwt.PyJWTError as e:
        raise Unauthorized("Could not validate credentials") from e
    sub, iat, gen = claims.get("sub"), claims.get("iat"), claims.get("gen")
    user_id = parse_number_id(sub) if isinstance(sub, str) else None
    if user_id is None or not isinstance(iat, int) or not isinstance(gen, int):
        raise Unauthorized("Could not validate credentials")
    return AccessClaims(user_id=user_id, issued_at=iat, generation=gen)
