"""Password hashing with bcrypt.

bcrypt reads at most 72 bytes. Rather than silently ignore the rest (two passphrases sharing
their first 72 bytes would then be the same password) every password is first reduced with
SHA-256 and base64-encoded (44 bytes), the scheme passlib calls bcrypt_sha256.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

# A bcrypt hash of a random string, checked when the account does not exist so that a login
# for an unknown email costs the same time as one for a known email.
_DUMMY_HASH = b"$2b$12$i3bdLWjQOYrx8kX465kT1OwjElbfM72jnCPaPDLnSq44TzzOqt5l."


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        bcrypt.checkpw(_prehash(password), _DUMMY_HASH)
        return False
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except ValueError:
        return False
