"""Waiting for a DynamoDB write on the local store instead of polling (devstack/store.py's
`CONTROL_PATH/changes`): the API's long poll and the stream pusher use it when they run
against the store.

AWS has no such call (DynamoDB answers reads, it does not notify a reader; its streams are read
by an event-source mapping that polls them), so in AWS the long poll keeps polling
(chalicelib/services/job_wait.py) and the pusher is Lambda's mapping. Locally the wait only
replaces a pause: a reader still reads the item itself after it, and waits at most as long as
it would have paused, so a wake that never came costs what the poll did.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

from devstack.bootstrap import endpoint
from devstack.store import CONTROL_PATH


class StoreChanges:
    """Client of the store's changes endpoint at `url` (one keep-alive connection per thread)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._local = threading.local()

    def _request(self, path: str, timeout: float) -> tuple[int, Any]:
        for attempt in range(2):  # a kept connection the store closed meanwhile: open another
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout + 5)
                self._local.connection = connection
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, json.loads(response.read() or b"null")
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def available(self) -> bool:
        """Whether the endpoint answers (the store; LocalStack or moto's own server do not)."""
        try:
            status, body = self._request(f"{CONTROL_PATH}/changes?table=-&since=0", 5)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        return status == 200 and isinstance(body, dict) and "written" in body

    def wait(self, tables: list[str], since: float, timeout: float,
             key: dict[str, Any] | None = None) -> bool:
        """Whether any of `tables` (with `key`: the one table's item of that key, in DynamoDB's
        wire form) was written at or after `since` (time.monotonic() seconds), waiting up to
        `timeout` seconds for it. Raises OSError when the store cannot be reached."""
        query: list[tuple[str, str]] = [("table", t) for t in tables]
        query += [("since", repr(since)), ("timeout", repr(max(0.0, timeout)))]
        if key is not None:
            query.append(("key", json.dumps(key)))
        status, body = self._request(f"{CONTROL_PATH}/changes?{urlencode(query)}", timeout)
        if status != 200:
            raise OSError(f"the store refused a changes wait ({status}): {body}")
        return bool(body["written"])


def store_changes() -> StoreChanges | None:
    """The changes client of the store that serves DynamoDB here, or None when DynamoDB is not
    served by our store (AWS, LocalStack, moto's own server)."""
    url = endpoint("dynamodb")
    if not url:
        return None
    changes = StoreChanges(url)
    return changes if changes.available() else None
