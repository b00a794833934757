"""A job's log streamed to S3 while the job runs: one object, rewritten whole when it grew."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from chalicelib import storage
from chalicelib.logs import SERVICE
from runner import calls

logger = Logger(service=SERVICE, child=True)

LOG_MIME = "text/plain; charset=utf-8"


class LogStream:
    """Collects output up to `cap_bytes`, flushing to S3 every `flush_seconds` from a thread.

    Rewriting one object keeps reads to a single ranged GET (`?offset=`) and costs at most one
    PUT per interval; the cap bounds what each PUT carries. Past the cap a single marker line is
    kept and everything else dropped (`truncated`).

    `on_flush(size)` is told each periodic flush's size (the runner records it on the job, which
    is what makes live updates push the new lines); not the last flush, which the job's result
    carries.
    """

    def __init__(self, key: str, cap_bytes: int, flush_seconds: float,
                 on_flush: Callable[[int], None] | None = None) -> None:
        self.key = key
        self.on_flush = on_flush
        self.cap_bytes = cap_bytes
        self.flush_seconds = flush_seconds
        self.truncated = False
        self._buffer = bytearray()
        self._flushed = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # The flusher's PUTs count as the job's AWS calls (runner/calls.py), like the caller's.
        self._thread = threading.Thread(target=calls.bound(self._run, calls.current()),
                                        name="log-flush", daemon=True)

    def start(self) -> LogStream:
        self._thread.start()
        return self

    @property
    def size(self) -> int:
        return len(self._buffer)

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self.truncated:
                return
            room = self.cap_bytes - len(self._buffer)
            if len(chunk) <= room:
                self._buffer += chunk
                return
            self._buffer += chunk[:max(room, 0)]
            self._buffer += f"\n[a6hub] log truncated at {self.cap_bytes} bytes\n".encode()
            self.truncated = True

    def line(self, text: str) -> None:
        """The runner's own lines, marked so they never pass for tool output."""
        self.write(f"[a6hub] {text}\n".encode())

    def flush(self, report: bool = False) -> None:
        with self._lock:
            if len(self._buffer) == self._flushed:
                return
            body = bytes(self._buffer)
        storage.put_bytes(self.key, body, LOG_MIME)
        self._flushed = len(body)
        if report and self.on_flush is not None:
            self.on_flush(len(body))

    def _run(self) -> None:
        while not self._closed.wait(self.flush_seconds):
            try:
                self.flush(report=True)
            except (BotoCoreError, ClientError, PynamoDBException) as e:  # the next tick retries
                logger.warning("log flush failed", extra={"key": self.key, "error": str(e)})

    def abandon(self) -> None:
        """Stop flushing without a last write: the job is someone else's now (same key)."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join()

    def close(self) -> None:
        """Stop the flusher and write what is left (raises if that last write fails)."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()
