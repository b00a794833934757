"""The environment the local stack runs with: emulator endpoint, resource names, the JWT key."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".local"

DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "A6HUB_STAGE": "local",
}


def jwt_secret(state_dir: Path = STATE_DIR) -> str:
    """The local signing key: generated once, kept in .local/ (never committed)."""
    path = state_dir / "jwt.key"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def apply(endpoint: str, outputs: dict[str, str] | None = None,
          secret: str | None = None) -> dict[str, str]:
    """Put the local settings into os.environ (keeping anything the caller set) and return them."""
    values = dict(DEFAULTS)
    values["AWS_ENDPOINT_URL"] = endpoint
    values["A6HUB_JWT_SECRET"] = secret if secret is not None else jwt_secret()
    if outputs:
        values["A6HUB_TABLE_PREFIX"] = outputs["TablePrefix"]
        values["A6HUB_BUCKET"] = outputs["BucketName"]
    for key, value in values.items():
        os.environ.setdefault(key, value)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    return {k: os.environ[k] for k in values}


@contextmanager
def settings_env(**values: str | int) -> Iterator[None]:
    """Set the A6HUB_* (or any) variables `values` in os.environ for the duration and drop the
    cached settings on entry and exit, so an app in this process reads them; restores (or removes)
    each variable afterwards. Servers already started keep the environment they started with."""
    from chalicelib.config import reload

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(value) for name, value in values.items()})
    reload()
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        reload()
