"""AWS clients built lazily from boto3's standard configuration (AWS_ENDPOINT_URL_* etc.)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()
_clients: dict[str, Any] = {}

# Path-style addressing so MinIO and emulators work the same as AWS.
_S3_CONFIG = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
_DEFAULT_CONFIG = Config(retries={"mode": "standard"})


def client(service: str) -> Any:
    """Return the process-wide client for `service`, creating it on first use."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            config = _S3_CONFIG if service == "s3" else _DEFAULT_CONFIG
            _clients[service] = boto3.session.Session().client(service, config=config)
        return _clients[service]


def set_client(service: str, value: Any) -> None:
    """Inject a client (tests that need a failing or differently-pointed client)."""
    with _lock:
        _clients[service] = value


def reset_clients() -> None:
    with _lock:
        _clients.clear()
