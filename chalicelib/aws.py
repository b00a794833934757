"""AWS clients built lazily from boto3's standard configuration (AWS_ENDPOINT_URL_* etc.), all
from one botocore session per process.

A botocore session owns a loader that parses each service's model (DynamoDB's: ~75 ms of CPU on
this machine) once and caches it; a client made from a new session pays that again. So every
client of the process is made from one session here: the `client(service)` clients, PynamoDB's
per-model-class connections (`share_session`, called by chalicelib.models.base.Model) and the
transaction connection. Measured by `python -m bench.coldstart`.

botocore sessions are not safe to make clients from on several threads at once
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients),
so every client is made holding `_session_lock`; the clients themselves are thread-safe.
Credentials, region and endpoint are resolved as a fresh boto3 session resolves them (the
environment, then the config files); the session caches the credentials it resolved, so
`reset_clients()` also drops the session and the next client resolves them again.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

# False only in bench.coldstart's baseline: a new session per client, as before the sharing.
SHARE_SESSION = True

_lock = threading.Lock()  # the `_clients` dict
_session_lock = threading.Lock()  # the shared session: making it, and making clients from it
_clients: dict[str, Any] = {}
_session: boto3.session.Session | None = None

# Path-style addressing so MinIO and emulators work the same as AWS.
_S3_CONFIG = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
_DEFAULT_CONFIG = Config(retries={"mode": "standard"})


def _shared() -> boto3.session.Session:
    """The process's boto3 session (and through it its botocore session); call holding
    `_session_lock`."""
    global _session
    if _session is None or not SHARE_SESSION:
        _session = boto3.session.Session()
    return _session


def make_client(service: str, **kwargs: Any) -> Any:
    """A new boto3 client of `service` from the shared session (`kwargs` as for
    boto3.session.Session.client: config, endpoint_url, ...), made holding the session's lock.
    For clients kept by their caller; `client(service)` is the process-wide one."""
    with _session_lock:
        return _shared().client(service, **kwargs)


def share_session(connection: Any) -> Any:
    """Make the botocore client of `connection` (a pynamodb.connection.Connection) from the
    shared session if it has none yet; returns `connection`.

    PynamoDB makes a connection's client on first use from `connection.session`, a botocore
    session of its own per connection and thread (`_local.session`). The shared one is put
    there only while the client is made, holding the lock, then taken away again: a client
    PynamoDB remakes later by itself (it does when a client's credentials came back empty) is
    made from a session of its own as before, never from the shared one without the lock.
    """
    if connection._client is not None or not SHARE_SESSION:
        return connection
    with _session_lock:
        if connection._client is None:
            connection._local.session = _shared()._session
            try:
                _ = connection.client
            finally:
                connection._local.session = None
    return connection


def client(service: str) -> Any:
    """Return the process-wide client for `service`, creating it on first use."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            config = _S3_CONFIG if service == "s3" else _DEFAULT_CONFIG
            _clients[service] = make_client(service, config=config)
        return _clients[service]


def set_client(service: str, value: Any) -> None:
    """Inject a client (tests that need a failing or differently-pointed client)."""
    with _lock:
        _clients[service] = value


def reset_clients() -> None:
    """Forget the process-wide clients and the shared session: the next ones are made from a new
    session, which reads credentials, region and endpoints from the environment again. PynamoDB
    models keep the clients they have."""
    global _session
    with _lock, _session_lock:
        _clients.clear()
        _session = None
