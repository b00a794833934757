"""Count the AWS calls (DynamoDB, S3, SQS) made for one job, whichever thread makes them.

Every botocore client call goes through `BaseClient._make_api_call`; `install()` wraps it once
so that a call made on a thread that carries a `CallCount` (`counting(...)`, or `adopt(...)` for
a pool's worker threads) adds one to it under its operation name. Calls on other threads (the
queue's ReceiveMessage, shared by up to ten messages; the DLQ check) count nowhere. The runner
records the total on the job (`summary.runner.aws_calls`, with `aws_calls_by_op`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


class CallCount:
    """Calls per operation name ("UpdateItem", "GetObject", ...), safe to add to from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_op: Counter[str] = Counter()

    def add(self, operation: str, n: int = 1) -> None:
        with self._lock:
            self.by_op[operation] += n

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_op.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.by_op.items()))


def current() -> CallCount | None:
    """The count this thread adds to, if any."""
    return getattr(_local, "count", None)


def adopt(count: CallCount | None) -> None:
    """Make this thread add to `count` (a ThreadPoolExecutor `initializer`, a thread's start)."""
    _local.count = count


@contextmanager
def counting(count: CallCount | None) -> Iterator[None]:
    """Within the block, this thread's AWS calls add to `count`."""
    saved = current()
    _local.count = count
    try:
        yield
    finally:
        _local.count = saved


def bound(fn: Callable[..., Any], count: CallCount | None) -> Callable[..., Any]:
    """`fn` made to count into `count` on whatever thread runs it (for executor submits)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with counting(count):
            return fn(*args, **kwargs)

    return call


def install() -> None:
    """Wrap botocore's client call once per process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        original = BaseClient._make_api_call

        def _make_api_call(self: BaseClient, operation_name: str, api_params: Any) -> Any:
            count = current()
            if count is not None:
                count.add(operation_name)
            return original(self, operation_name, api_params)

        BaseClient._make_api_call = _make_api_call
        _installed = True
