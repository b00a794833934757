"""Delete finished jobs' queue messages in batches: one DeleteMessageBatch for up to ten slots.

A runner with N slots deletes one message per job; each delete is a round trip to SQS (and a
request the local emulator serves). The job's record is already final when its message is
deleted, so nothing waits for the delete except the queue's own bookkeeping: a slot hands its
receipt here and is free at once, and a background thread sends what has gathered, ten at a
time (SQS's batch limit), after at most `linger_seconds`.

A delete that fails (the batch call raises, or SQS lists the entry under `Failed`) is logged
and left: the message becomes visible again after its visibility timeout, the next runner
finds its job ended and deletes it then (worker.py's `_unclaimable`). That costs one receive,
never a second run.

IAM: DeleteMessageBatch is authorised by the `sqs:DeleteMessage` permission, which the runner's
role already has ("You cannot set permissions explicitly for ... DeleteMessageBatch ...";
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api.html).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.logs import SERVICE

logger = Logger(service=SERVICE, child=True)

BATCH_LIMIT = 10  # SQS: at most ten entries per DeleteMessageBatch


def delete_batch(queue_url: str, receipts: list[str]) -> list[str]:
    """One DeleteMessageBatch for up to ten receipts; returns the receipts SQS did not delete
    (each logged with SQS's reason). Raises BotoCoreError/ClientError when the call fails."""
    entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)]
    answer = client("sqs").delete_message_batch(QueueUrl=queue_url, Entries=entries)
    failed = []
    for entry in answer.get("Failed", []):
        receipt = receipts[int(entry["Id"])]
        failed.append(receipt)
        logger.warning("queue message not deleted; it comes back after its visibility timeout "
                       "and is dropped then", extra={"code": entry.get("Code"),
                                                     "reason": entry.get("Message")})
    return failed


class BatchDeleter:
    """Gathers receipts from the runner's slots and deletes them ten at a time.

    `delete(receipt)` returns at once; `flush()` blocks until everything handed in so far has
    been sent; `close()` flushes and stops the thread. `send` (tests) replaces `delete_batch`.
    """

    def __init__(self, queue_url: str, linger_seconds: float = 0.02,
                 send: Callable[[str, list[str]], list[str]] | None = None) -> None:
        self.queue_url = queue_url
        self.linger_seconds = linger_seconds
        self._send = send or delete_batch
        self._cond = threading.Condition()
        self._waiting: list[str] = []
        self._sending = 0  # receipts taken from _waiting whose batch call has not returned
        self._closed = False
        self._flushing = 0  # callers in flush(): send what has gathered without lingering
        self._thread = threading.Thread(target=self._run, name="deletes", daemon=True)
        self._thread.start()

    def delete(self, receipt: str) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("BatchDeleter is closed")
            self._waiting.append(receipt)
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every receipt handed in so far was sent; False on timeout."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._waiting and not self._sending,
                                           timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:
                    return  # closed and nothing left
                # Give the other slots a moment to finish too, unless a batch is already full.
                self._cond.wait_for(lambda: (len(self._waiting) >= BATCH_LIMIT or self._closed
                                             or self._flushing > 0), self.linger_seconds)
                batch = self._waiting[:BATCH_LIMIT]
                del self._waiting[:BATCH_LIMIT]
                self._sending = len(batch)
            try:
                self._send(self.queue_url, batch)
            except (BotoCoreError, ClientError) as e:
                logger.warning(f"deleting {len(batch)} queue messages failed; they come back "
                               "after their visibility timeout and are dropped then",
                               extra={"error": str(e)})
            except Exception:  # noqa: BLE001 - the thread must outlive one bad batch
                logger.exception("deleting queue messages failed")
            finally:
                with self._cond:
                    self._sending = 0
                    self._cond.notify_all()
