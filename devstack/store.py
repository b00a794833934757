"""The embedded AWS store: moto server made correct under concurrent writers, bounded, durable.

`python -m devstack.store --port P [--state-dir DIR] [--save-every S]` runs moto's server
(DynamoDB, S3, SQS, CloudFormation, ...) with four changes, applied here rather than by forking
moto (issue 11 measured each problem on moto 5.2.5):

- **Serialisable DynamoDB.** Every DynamoDB request runs under one lock, so a conditional write
  checks and writes atomically with respect to every other write. A failed TransactWriteItems
  undoes only the items it wrote, instead of restoring a deep copy of every table it named
  (moto's own rollback puts back whole tables without a lock, wiping the items other writers
  committed meanwhile, and costs time in proportion to the table).
- **Bounded memory.** moto keeps every model object it ever created in a class-level list for
  its dashboard (`InstanceTrackerMeta`); with the deep copies above that grew ~4 MB per
  transaction and was never freed. Tracking is switched off.
- **Snapshots.** With `--state-dir`, the state of the services (all accounts and regions) is
  restored from `DIR/store.pickle` at start and written back every `--save-every` seconds when
  something changed, on SIGTERM, and on `POST /_a6hub/store/save`. A snapshot is taken under an
  exclusive lock (no request half-applied), written to a temporary file, fsynced and renamed
  over the old one, so a crash leaves either the previous snapshot or the new one.

- **Waits for a write.** `GET /_a6hub/store/changes` answers as soon as a DynamoDB table, or
  one of its items, is written after a given time (`Writes`; client: devstack/changes.py), so
  the API's long poll and the stream pusher wait for the write rather than poll. AWS has no
  such call; there both poll.

It also serves calls for less CPU (routing read once, a plain serializer for DynamoDB's item
answers, Query over the span its key condition selects, cheap index projections, SQS sends and
receives that do not count the queue or build datetimes per message): each patch below says what
it measured; tests/devstack/test_store_answers.py compares the answers with moto's own server.

SIGINT is ignored: `python -m devstack run` stops the store last, with SIGTERM, after the API
and the runner (Ctrl-C in a terminal signals the whole process group at once). If the process
that started the store dies, the store saves and exits.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import io
import json
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

SNAPSHOT_NAME = "store.pickle"
CONTROL_PATH = "/_a6hub/store"
FORMAT = 1
# Services whose state a snapshot keeps (those a6hub's templates and code use).
SERVICES = ("dynamodb", "s3", "sqs", "cloudformation", "secretsmanager", "ssm", "iam", "sts",
            "sns", "logs", "events")
# Requests that change nothing worth saving (reads); anything else marks the state dirty.
_READ_TARGETS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "Describe",
                 "List", "ReceiveMessage", "GetQueue")


class ReadWriteLock:
    """Many requests at once (shared) or one snapshot (exclusive); a waiting snapshot goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


DYNAMODB_LOCK = threading.RLock()
_patched = False


def item_key(key: dict[str, Any]) -> str:
    """A DynamoDB key ({"id": {"N": "7"}, ...}) as one string, the same however its numbers are
    spelled ("7", "7.0") and its attributes ordered."""
    from decimal import Decimal, InvalidOperation

    def value(typed: Any) -> Any:
        if isinstance(typed, dict) and set(typed) == {"N"}:
            try:
                return {"N": str(Decimal(str(typed["N"])).normalize())}
            except InvalidOperation:
                return typed
        return typed

    return json.dumps({name: value(v) for name, v in key.items()}, sort_keys=True)


class Writes:
    """When each DynamoDB item and table was last written, on CLOCK_MONOTONIC (one clock for
    every process of this machine), and a wait for the next write.

    This is what lets a local reader wait for a change instead of polling (the API's long poll,
    devstack/changes.py; the stream pusher, devstack/events.py). DynamoDB has no such call: in
    AWS those readers poll. Items are remembered up to MAX_ITEMS, least recently written
    forgotten first; asked about a forgotten item, `wait` answers "written" at once whenever
    anything forgotten was written after `since` (a spurious wake, never a missed one)."""

    MAX_ITEMS = 100_000

    def __init__(self) -> None:
        from collections import OrderedDict

        self._cond = threading.Condition()
        self._tables: dict[str, float] = {}
        self._items: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._forgotten = float("-inf")

    def wrote(self, writes: Iterable[tuple[str, str | None]]) -> None:
        """Record writes now: (table, item_key(...)), or (table, None) for the table itself."""
        now = time.monotonic()
        with self._cond:
            for table, key in writes:
                self._tables[table] = now
                if key is not None:
                    self._items[(table, key)] = now
                    self._items.move_to_end((table, key))
            while len(self._items) > self.MAX_ITEMS:
                _, at = self._items.popitem(last=False)
                self._forgotten = max(self._forgotten, at)
            self._cond.notify_all()

    def _written(self, targets: list[tuple[str, str | None]], since: float) -> bool:
        for table, key in targets:
            if key is None:
                at = self._tables.get(table, float("-inf"))
            else:
                at = self._items.get((table, key), self._forgotten)
            if at >= since:
                return True
        return False

    def wait(self, targets: list[tuple[str, str | None]], since: float, timeout: float) -> bool:
        """Whether any target (a table, or one of its items) was written at or after `since`
        (time.monotonic() seconds), waiting up to `timeout` seconds for it."""
        with self._cond:
            return self._cond.wait_for(lambda: self._written(targets, since), timeout)


WRITES = Writes()
# Read-only DynamoDB actions (no write to note); anything else names the tables it may change.
_DYNAMODB_READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "Describe",
                   "List", "ExecuteStatement")


def _note_writes(handler: Any) -> None:
    """Note in WRITES the items (and tables) a DynamoDB request may have written, once it ran
    (whether it succeeded or not: a refused write only wakes a waiter for nothing)."""
    try:
        action = handler._get_action()
        body = handler.body
        if action.startswith(_DYNAMODB_READS) or not isinstance(body, dict):
            return
        WRITES.wrote(_written_keys(handler.dynamodb_backend, action, body))
    except Exception:  # noqa: BLE001, S110 - noting is best effort; the request has its answer
        pass


def _batch_write_ops(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    ops = []
    for table, requests in (body.get("RequestItems") or {}).items():
        for request in requests:
            if "PutRequest" in request:
                ops.append(("Put", {"TableName": table, **request["PutRequest"]}))
            if "DeleteRequest" in request:
                ops.append(("Delete", {"TableName": table, **request["DeleteRequest"]}))
    return ops


def _written_keys(backend: Any, action: str, body: dict[str, Any]
                  ) -> list[tuple[str, str | None]]:
    def keyed(op_type: str, op: dict[str, Any]) -> tuple[str, str | None] | None:
        found = _key_of(backend, op_type, op)
        if found is None:
            name = op.get("TableName")
            return (str(name), None) if name else None
        return found[0], item_key(found[1])

    ops: list[tuple[str, dict[str, Any]]] = []
    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        ops.append((action[:-4], body))
    elif action == "TransactWriteItems":
        for entry in body.get("TransactItems") or []:
            ops += [(t, op) for t, op in entry.items() if t in ("Put", "Update", "Delete")]
    elif action == "BatchWriteItem":
        ops += _batch_write_ops(body)
    elif body.get("TableName"):
        return [(str(body["TableName"]), None)]
    return [w for w in (keyed(t, op) for t, op in ops) if w is not None]


def patch_moto() -> None:
    """Apply the lock, the per-item rollback and the tracking switch-off to the loaded moto."""
    global _patched
    if _patched:
        return
    _patched = True
    from moto.core import common_models

    def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    common_models.BaseModel.__new__ = staticmethod(untracked_new)  # type: ignore[method-assign]

    from moto.dynamodb import models as ddb_models
    from moto.dynamodb import responses as ddb_responses

    original_call = ddb_responses.DynamoHandler.call_action

    def locked_call(self: Any) -> Any:
        with DYNAMODB_LOCK:
            try:
                return original_call(self)
            finally:
                _note_writes(self)

    ddb_responses.DynamoHandler.call_action = locked_call  # type: ignore[method-assign]

    # moto's transaction deep-copies each table it names and restores the copy on failure.
    # Within the transaction a "copy" of a table is the table itself (restoring it is then a
    # no-op) and the rollback below undoes exactly the items the transaction touched.
    class TablesNotCopied:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, ddb_models.Table) else copy.deepcopy(value, memo)

    ddb_models.copy = TablesNotCopied  # type: ignore[assignment]
    original_transact = ddb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with DYNAMODB_LOCK:
            before = _items_before(self, transact_items)
            try:
                original_transact(self, transact_items)
            except Exception:
                _restore_items(self, before)
                raise

    ddb_models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _patch_query()
    _patch_sqs_retention()
    _patch_routing()
    _patch_dynamodb_serializer()


def _patch_sqs_retention() -> None:
    """ReceiveMessage checks each message it hands out against the queue's retention period by
    building the queue's whole attribute map, whose ApproximateNumberOf* counts walk every
    message (each asking the clock whether it is visible): O(queue) per message received. With
    120 jobs queued that was 8 % of the emulator's CPU (py-spy). Read the one attribute."""
    from moto.core.utils import unix_time
    from moto.sqs import models as sqs_models

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str,
                                                   message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period)
    _patch_sqs_send()
    _patch_sqs_clock()


def _patch_sqs_clock() -> None:
    """SQS asks the clock whether each message is visible and whether it is delayed, on every
    ReceiveMessage for every message held (`Queue.messages`); moto's `unix_time()` builds two
    datetimes and subtracts them (and imports `datetime.UTC`) for each question: 80 % of the
    store's CPU in SendMessage and most of ReceiveMessage's with a deep queue (py-spy). The
    current time in seconds since the epoch is `time.time()`; given a datetime, moto's own
    conversion still runs."""
    from moto.core import utils as core_utils
    from moto.sqs import models as sqs_models

    convert = core_utils.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else convert(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = unix_time_millis


_SENDING = threading.local()


def _patch_sqs_send() -> None:
    """SendMessage reads the queue's attribute map (for ContentBasedDeduplication, three times
    on a FIFO queue) and building that map counts every message of the queue, asking the clock
    about each (ApproximateNumberOf*): O(queue) per message sent, 27-35 ms of the store's CPU per
    SendMessage with a few thousand messages held (scratch ops bench), which is what a burst of
    submissions builds. While a message is sent the map is built without the three counts (the
    send path reads no count); GetQueueAttributes still gets them."""
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs import models as sqs_models

    counted = frozenset({"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                         "ApproximateNumberOfMessagesNotVisible"})
    full = sqs_models.Queue.attributes
    original_send = sqs_models.SQSBackend.send_message

    def attributes(self: Any) -> dict[str, Any]:
        if not getattr(_SENDING, "on", False):
            return full.fget(self)  # type: ignore[attr-defined]
        names = [a for a in self.BASE_ATTRIBUTES if a not in counted]
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        if self.kms_master_key_id:
            names += self.KMS_ATTRIBUTES
        result = {name: getattr(self, camelcase_to_underscores(name)) for name in names}
        if self.policy:
            result["Policy"] = self.policy
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy)
        return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _SENDING.on = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            _SENDING.on = False

    sqs_models.Queue.attributes = property(attributes)  # type: ignore[assignment, method-assign]
    sqs_models.SQSBackend.send_message = send_message  # type: ignore[method-assign]


def _patch_routing() -> None:
    """Routing answers that cannot change while the server runs are computed once.

    - moto looks a request's host up in `list_of_moto_modules()`, which lists moto's package
      directory and stats every entry (~250 `isdir` calls) on every request, under the
      dispatcher's global lock: 7 % of the store's CPU serving GetItem (py-spy). The package
      does not change at run time; the list is read once.
    - `BaseResponse.call_action` finds the action's method with `inspect.getmembers` on the
      handler class on every request (3 %); the names of a class's functions are cached per
      class (the patches above replace methods but add none).
    """
    import functools

    from moto import backends
    from moto.core import responses as core_responses

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    original = core_responses.method_names_from_class
    core_responses.method_names_from_class = functools.lru_cache(maxsize=None)(  # type: ignore[assignment]
        lambda clazz: frozenset(original(clazz)))


# DynamoDB operations whose answers are items and counts (no timestamps): the ones a6hub calls on
# every job, served by the plain serializer below.
_PLAIN_DYNAMODB_OPS = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
    "BatchWriteItem", "TransactGetItems", "TransactWriteItems"})


class _NotPlain(Exception):
    """The value needs moto's general serializer (an alias, a timestamp, a None, a non-dict)."""


def _structure_aliases(shape: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(member names, every other key moto's attribute picker might look a member up under)."""
    from botocore import xform_name

    found = shape.__dict__.get("_a6hub_aliases")
    if found is None:
        members = frozenset(shape.members)
        aliases = set()
        for key, member in shape.members.items():
            aliases.update({xform_name(key), member.name, xform_name(member.name),
                            member.serialization.get("name", key)})
            if key.lower().startswith(shape.name.lower()):
                aliases.add(key[len(shape.name):])
        found = members, frozenset(aliases - members)
        shape.__dict__["_a6hub_aliases"] = found
    return found


def _plain(value: Any, shape: Any) -> Any:
    """`value` (plain dicts, lists, str, numbers, bytes) serialised for `shape` as moto's JSON
    serializer would, walking the output shape once without its per-member alias search; raises
    _NotPlain wherever that search or a conversion could give something else."""
    convert = _PLAIN_BY_TYPE.get(shape.type_name)
    if convert is None:
        raise _NotPlain  # timestamps, and anything unexpected
    return convert(value, shape)


def _plain_structure(value: Any, shape: Any) -> dict[str, Any]:
    if type(value) is not dict or shape.is_document_type:
        raise _NotPlain
    members, aliases = _structure_aliases(shape)
    out = {}
    for key, item in value.items():
        if key not in members or key in aliases:
            raise _NotPlain
        if item is not None:
            member = shape.members[key]
            if "name" in member.serialization:
                raise _NotPlain
            out[key] = _plain(item, member)
    return out


def _plain_map(value: Any, shape: Any) -> dict[str, Any]:
    if type(value) is not dict or None in value.values():
        raise _NotPlain
    return {k: _plain(v, shape.value) for k, v in value.items()}


def _plain_list(value: Any, shape: Any) -> list[Any]:
    if type(value) is not list or None in value:
        raise _NotPlain
    return [_plain(v, shape.member) for v in value]


def _plain_of(kind: type) -> Callable[[Any, Any], Any]:
    def convert(value: Any, shape: Any) -> Any:
        if type(value) is not kind:
            raise _NotPlain
        return value
    return convert


def _plain_blob(value: Any, shape: Any) -> str:
    if type(value) is not bytes:
        raise _NotPlain
    return base64.b64encode(value).decode()


_PLAIN_BY_TYPE: dict[str, Callable[[Any, Any], Any]] = {
    "structure": _plain_structure, "map": _plain_map, "list": _plain_list,
    "string": _plain_of(str), "boolean": _plain_of(bool), "blob": _plain_blob,
    "integer": lambda value, shape: int(value), "long": lambda value, shape: int(value),
    "float": lambda value, shape: float(value), "double": lambda value, shape: float(value)}


def _patch_dynamodb_serializer() -> None:
    """DynamoDB's item operations answer through a plain walk of the output shape.

    moto serialises every answer by walking the operation's output shape and, for each member
    of each structure (every attribute value of every item is one), trying up to a dozen alias
    keys with `botocore.xform_name`: 55-60 % of the store's CPU serving GetItem (py-spy). The
    results of the item operations are plain dicts in wire form already (`dynamo_to_dict`), so
    `_plain` looks each key up directly; it gives up (and moto's serializer runs) on anything
    where the alias search could pick another key, and on timestamps, None values, non-dicts.
    tests/test_store.py compares the answers with moto's own serializer's."""
    import json as json_module

    from botocore.model import OperationNotFoundError
    from moto import settings
    from moto.core.responses import get_service_model
    from moto.core.serialize import get_serializer_class
    from moto.dynamodb import responses as ddb_responses

    original = ddb_responses.DynamoHandler.serialized

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if (isinstance(result, Exception) or settings.PRETTIFY_RESPONSES
                or self.RESPONSE_KEY_PATH_TO_TRANSFORMER):
            return original(self, action_result)
        action = self._get_action()
        if action not in _PLAIN_DYNAMODB_OPS:
            return original(self, action_result)
        service_model = get_service_model(self.boto3_service_name)
        try:
            operation_model = service_model.operation_model(action)
        except OperationNotFoundError:
            return original(self, action_result)
        protocol = self.determine_response_protocol(service_model)
        output_shape = operation_model.output_shape
        if protocol != "json" or output_shape is None:
            return original(self, action_result)
        try:
            body = _plain(result, output_shape)
        except _NotPlain:
            return original(self, action_result)
        serializer = get_serializer_class(service_model.service_name, protocol)(
            operation_model=operation_model, pretty_print=False, value_picker=None)
        resp = serializer._create_default_response()
        resp["body"] = json_module.dumps(body)
        resp["headers"]["Content-Type"] = serializer._get_protocol_specific_content_type()  # type: ignore[attr-defined]
        headers = resp["headers"]
        headers.update(self.response_headers)
        return resp["status_code"], headers, resp["body"]

    ddb_responses.DynamoHandler.serialized = serialized  # type: ignore[method-assign]


def request_handler() -> type:
    """moto's request handler with keep-alive, without Nagle's delay, logging only 5xx.

    - Keep-alive. werkzeug's server ends every response with `Connection: close` ("Python's
      http.server ... doesn't know how to drain the stream before the next request line"), so
      every AWS call opened a TCP connection and the server started a thread for it: urllib3
      logged "Resetting dropped connection" on each call, and opening connections was 9 % of
      the runner's CPU (py-spy). Here a request with a Content-Length has its body read whole
      before the application runs (the stream is then drained by construction; moto reads
      bodies whole anyway) and its connection is kept; a chunked request still closes its.
    - http.server writes the status line and headers in one send and the body in another; with
      Nagle's algorithm on, the body waits for the client's ACK of the headers whenever the
      client delays it (up to 40 ms on Linux). `disable_nagle_algorithm` sets TCP_NODELAY.
    - werkzeug logs every request (a formatted line on stderr, the store's log): 7 % of the
      emulator's CPU under the runner bench (py-spy). 4xx answers are routine here
      (ConditionalCheckFailed, NoSuchKey), so only 5xx are logged.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class StoreRequestHandler(MotoRequestHandler):
        disable_nagle_algorithm = True
        keep_alive = False
        kept_rfile: Any = None  # the connection's stream while werkzeug's drain sees an empty one

        def make_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().make_environ()
            length = self.headers.get("Content-Length")
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            self.keep_alive = not chunked and (length is None or length.strip().isdigit())
            if self.keep_alive:
                environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)) if length else b"")
                # werkzeug "drains" the socket after the response (reads whatever arrives within
                # 10 ms, up to 10 MB): on a kept connection that would swallow the next request.
                # Until the next request line is read, its reads see the end of the stream.
                self.kept_rfile = self.rfile
                self.rfile = io.BytesIO()
            return environ

        def handle_one_request(self) -> None:
            kept = self.kept_rfile
            if kept is not None:
                self.rfile, self.kept_rfile = kept, None
            super().handle_one_request()

        def send_header(self, keyword: str, value: str) -> None:
            if self.keep_alive and keyword.lower() == "connection" and value.lower() == "close":
                return  # werkzeug's blanket close; the body above was read whole
            super().send_header(keyword, value)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if str(getattr(code, "value", code)).startswith("5"):
                super().log_request(code, size)

    return StoreRequestHandler


def _patch_query() -> None:
    """A Query reads only what it can match.

    - On the table's own key: moto's Table.query walks `all_items()`, which collects and sorts
      every item of the table on each call (O(n log n): ~200 ms at 10,000 items); DynamoDB's
      cost is the partition's. Under DYNAMODB_LOCK the table's `all_items` is narrowed to the
      partition for the one call, and, with a sort-key condition (and no legacy QueryFilter),
      to the partition's items that meet it: moto computes `Item.size()` (a walk of every
      attribute) for each item it looks at, matching or not, so a `BETWEEN` on a 200-item
      partition cost 15-20 ms of CPU. Real DynamoDB also counts only the items the key
      condition reads against the 1 MB page limit.
    - On an index: moto sorts the results by the index's and the table's keys (a total order)
      after the walk, so the walk does not need `all_items()`'s own sort of the whole table.
    """
    from moto.dynamodb.models import table as ddb_table

    original_query = ddb_table.Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name:
            partition = _unsorted_items(self)
        elif hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        else:
            found = self.items.get(hash_key)
            partition = ([] if found is None else
                         list(found.values()) if self.range_key_attr else [found])
            range_comparison = args[0] if args else kwargs.get("range_comparison")
            if range_comparison and len(args) > 4 and not _filter_kwargs(kwargs):
                partition = _key_range(partition, kwargs.get("range_key_conditions"),
                                       range_comparison, args[1], forward=args[4] is not False)
        with DYNAMODB_LOCK:
            self.all_items = lambda: partition
            try:
                return original_query(self, hash_key, *args, **kwargs)
            finally:
                del self.all_items

    ddb_table.Table.query = query  # type: ignore[method-assign]
    _patch_index_projection()


_QUERY_KEYWORDS = frozenset({"range_comparison", "range_objs", "limit", "exclusive_start_key",
                             "scan_index_forward", "projection_expressions", "index_name",
                             "consistent_read", "filter_expression", "hash_key_conditions",
                             "range_key_conditions"})


def _filter_kwargs(kwargs: dict[str, Any]) -> bool:
    """Whether a legacy QueryFilter came with the call (moto passes it as extra keywords)."""
    return any(k not in _QUERY_KEYWORDS for k in kwargs)


def _unsorted_items(table: Any) -> list[Any]:
    if not table.range_key_attr:
        return list(table.items.values())
    return [item for partition in table.items.values() for item in partition.values()]


def _key_range(partition: list[Any], conditions: Any, comparison: str, values: list[Any],
               forward: bool) -> list[Any]:
    """The part of `partition` moto's Table.query would look at for a sort-key condition: from
    the first item that meets it to the last (in sort-key order), plus the next item in the
    query's direction (at which moto stops with a LastEvaluatedKey when the page is full)."""
    ordered = sorted(partition, key=lambda item: item.range_key)
    meets = [n for n, item in enumerate(ordered) if _meets_range(item, conditions, comparison,
                                                                 values)]
    if not meets:
        return []
    first, last = meets[0], meets[-1]
    if forward:
        return ordered[first:last + 2]
    return ordered[max(first - 1, 0):last + 1]


def _meets_range(item: Any, conditions: Any, comparison: str, values: list[Any]) -> bool:
    """moto's own test of a table query's sort-key condition (Table.query, non-index branch)."""
    name = conditions[-1][0] if conditions else None
    if name and item.attrs.get(name):
        return bool(item.attrs[name].compare(comparison, values))
    return bool(item.range_key.compare(comparison, values))


def _patch_index_projection() -> None:
    """KEYS_ONLY and INCLUDE index answers copy the named top-level attributes.

    moto projects each result of an index query by turning the whole item into plain Python
    (boto3's TypeDeserializer, after a deep copy) once per projected attribute, then back:
    11 % of the store's CPU under the runner bench (py-spy; the jobs table's indexes are
    KEYS_ONLY). For top-level string and number attributes the projection is a copy of those
    attributes (numbers normalised by boto3's DYNAMODB_CONTEXT, as moto's round trip does);
    anything else (sets, binaries, maps, nested or list paths) takes moto's way."""
    from boto3.dynamodb.types import DYNAMODB_CONTEXT
    from moto.dynamodb.models import table as ddb_table
    from moto.dynamodb.models.dynamo_type import Item

    original_project = ddb_table.SecondaryIndex.project

    def project(self: Any, item: Any) -> Any:
        kind = (self.projection or {}).get("ProjectionType")
        if kind not in ("KEYS_ONLY", "INCLUDE"):
            return original_project(self, item)
        names = self.table_key_attrs + [key["AttributeName"] for key in self.schema]
        if kind == "INCLUDE":
            names = names + list(self.projection.get("NonKeyAttributes", []))
        attrs: dict[str, dict[str, str]] = {}
        for name in names:
            value = item.attrs.get(name)
            if value is None or name in attrs:
                continue
            if value.type == "S" and isinstance(value.value, str) and "[" not in name:
                attrs[name] = {"S": value.value}
            elif value.type == "N" and isinstance(value.value, str) and "[" not in name:
                attrs[name] = {"N": str(DYNAMODB_CONTEXT.create_decimal(value.value))}
            else:
                return original_project(self, item)
        return Item(hash_key=item.hash_key, range_key=item.range_key, attrs=attrs)

    ddb_table.SecondaryIndex.project = project  # type: ignore[method-assign]


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    name = str(op.get("TableName") or "")
    table = backend.tables.get(name) if name else None
    if table is None:
        return None
    if op_type != "Put":
        return name, dict(op.get("Key") or {})
    attrs = op.get("Item") or {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if any(n not in attrs for n in names):
        return None
    return name, {n: attrs[n] for n in names}


def _items_before(backend: Any, transact_items: list[dict[str, Any]]
                  ) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(table, key, the item's attributes or None) for every item a transaction may write."""
    before = []
    for entry in transact_items:
        if len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        if op_type not in ("Put", "Update", "Delete"):
            continue
        found = _key_of(backend, op_type, op)
        if found is None:
            continue
        name, key = found
        try:
            current = backend.get_item(name, key)
        except Exception:  # noqa: BLE001, S112 - a bad key: moto's own validation refuses it
            continue
        before.append((name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    return before


def _restore_items(backend: Any, before: list[tuple[str, dict[str, Any], dict[str, Any] | None]]
                   ) -> None:
    for name, key, attrs in reversed(before):
        if attrs is None:
            if backend.get_item(name, key) is not None:
                backend.delete_item(name, key)
        else:
            backend.put_item(name, attrs)


# -- snapshots ---------------------------------------------------------------------------------


def _loaded_services() -> list[str]:
    return [s for s in SERVICES if f"moto.{s}.models" in sys.modules]


def _backend(service: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)  # type: ignore[call-overload]


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class _StatePickler(pickle.Pickler):
    """Locks inside moto's models (queues, buckets) are saved as fresh, unlocked locks."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if isinstance(obj, _LOCK_TYPES[1]) else threading.Lock), ()
        return NotImplemented


def snapshot_bytes() -> bytes:
    """Pickle the loaded services' backends (call under the exclusive lock)."""
    import moto

    state = {s: dict(_backend(s)) for s in _loaded_services()}
    buffer = io.BytesIO()
    _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        {"format": FORMAT, "moto": moto.__version__, "saved_at": time.time(), "state": state})
    return buffer.getvalue()


def _snapshot_with_retries(attempts: int = 5) -> bytes:
    """A long poll (ReceiveMessage) runs outside the lock and may change a queue while it is
    pickled ("changed size during iteration"): take the snapshot again."""
    for attempt in range(attempts):
        try:
            return snapshot_bytes()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename over `path`, fsync the directory: old or new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotError(RuntimeError):
    """The snapshot exists but cannot be used (corrupt, or written by another moto version)."""


def restore(path: Path) -> dict[str, Any] | None:
    """Load `path` into the backends; returns a summary, or None if there is no snapshot."""
    import moto

    if not path.exists():
        return None
    try:
        with open(path, "rb") as f:
            saved = pickle.load(f)  # noqa: S301 - our own file, in our own state directory
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise SnapshotError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    if saved.get("format") != FORMAT or saved.get("moto") != moto.__version__:
        raise SnapshotError(f"{path} was written by moto {saved.get('moto')} (format "
                            f"{saved.get('format')}); this is moto {moto.__version__}")
    for service, accounts in saved["state"].items():
        live = _backend(service)
        live.clear()
        live.update(accounts)
    return {"path": str(path), "saved_at": saved["saved_at"], "bytes": path.stat().st_size,
            **summarise()}


def summarise() -> dict[str, int]:
    """Counts of what the store holds (for the start-up line and the status endpoint)."""
    counts = {"tables": 0, "items": 0, "buckets": 0, "objects": 0, "queues": 0, "messages": 0}
    for service, accounts in ((s, _backend(s)) for s in _loaded_services()):
        for regions in list(accounts.values()):
            for backend in list(regions.values()):
                _count(service, backend, counts)
    return counts


def _count(service: str, backend: Any, counts: dict[str, int]) -> None:
    if service == "dynamodb":
        for table in list(backend.tables.values()):
            counts["tables"] += 1
            counts["items"] += len(table)
    elif service == "s3":
        for bucket in list(backend.buckets.values()):
            counts["buckets"] += 1
            counts["objects"] += len(bucket.keys)
    elif service == "sqs":
        for queue in list(backend.queues.values()):
            counts["queues"] += 1
            counts["messages"] += len(queue._messages)


# -- the server ---------------------------------------------------------------------------------


class Store:
    """The WSGI application: moto behind the snapshot lock, plus the control endpoint."""

    def __init__(self, app: Callable[..., Iterable[bytes]], snapshot: Path | None,
                 restored: dict[str, Any] | None = None) -> None:
        self.app = app
        self.snapshot = snapshot
        self.restored = restored
        self.lock = ReadWriteLock()
        self.changes = 0  # requests that may have changed the state
        self.saved_changes = 0
        self.last_save: dict[str, Any] = {}
        self._save_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PATH):
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if "ReceiveMessage" in target:
            # A long poll may wait 20 s; it must not hold a snapshot up (and changes nothing
            # a restart needs: in-flight messages come back after their visibility timeout).
            return self.app(environ, start_response)
        with self.lock.shared():
            if not self._is_read(environ, target):
                self.changes += 1
            # Materialise the body inside the lock: moto builds whole responses anyway.
            return list(self.app(environ, start_response))

    @staticmethod
    def _is_read(environ: dict[str, Any], target: str) -> bool:
        if target:
            action = target.rsplit(".", 1)[-1]
            return action.startswith(_READ_TARGETS)
        return environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS")

    def save(self) -> dict[str, Any] | None:
        """Write a snapshot now if anything changed since the last one; returns what was saved."""
        if self.snapshot is None:
            return None
        with self._save_lock:
            with self.lock.exclusive():
                changes = self.changes
                if changes == self.saved_changes and self.snapshot.exists():
                    return None
                started = time.monotonic()
                data = _snapshot_with_retries()
                pickled = time.monotonic()
            write_atomically(self.snapshot, data)
            self.saved_changes = changes
            self.last_save = {"changes": changes, "bytes": len(data), "at": time.time(),
                              "locked_s": round(pickled - started, 4),
                              "total_s": round(time.monotonic() - started, 4)}
            return self.last_save

    def status(self) -> dict[str, Any]:
        return {"snapshot": str(self.snapshot) if self.snapshot else None,
                "restored": self.restored, "changes": self.changes,
                "saved_changes": self.saved_changes, "last_save": self.last_save}

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"].endswith("/changes"):
            return self._changes(environ, start_response)
        if environ.get("REQUEST_METHOD") == "POST" and environ["PATH_INFO"].endswith("/save"):
            self.save()
        return _json(start_response, "200 OK", self.status())

    @staticmethod
    def _changes(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """GET CONTROL_PATH/changes?table=T[&table=U...][&key=JSON]&since=S&timeout=W: answers
        {"written": true} as soon as table T (or U...; with `key`, T's item of that key) is
        written at or after S (time.monotonic() seconds), or {"written": false} after W seconds
        (at most MAX_CHANGES_WAIT). Outside the snapshot lock: it holds nothing while it waits."""
        from urllib.parse import parse_qs

        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            tables = query["table"]
            since = float(query["since"][0])
            timeout = min(MAX_CHANGES_WAIT, max(0.0, float(query.get("timeout", ["0"])[0])))
            key = query.get("key")
            if key and len(tables) != 1:
                raise ValueError("key needs exactly one table")
            targets: list[tuple[str, str | None]] = (
                [(tables[0], item_key(json.loads(key[0])))] if key else [(t, None) for t in tables])
        except (KeyError, ValueError, AttributeError, RecursionError) as e:  # RecursionError:
            # json.loads on a key nested ~1000 deep
            return _json(start_response, "400 Bad Request", {"detail": f"bad changes query: {e}"})
        return _json(start_response, "200 OK", {"written": WRITES.wait(targets, since, timeout)})


MAX_CHANGES_WAIT = 30.0


def _json(start_response: Callable[..., Any], status: str, value: Any) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _save_periodically(store: Store, every: float, stop: threading.Event, parent: int) -> None:
    """Save every `every` seconds, or five times the last snapshot's locked time if that is
    longer: requests wait while a snapshot is taken (~2 s for 10,000 files), and this keeps
    that under a sixth of the time."""
    while not stop.wait(max(every, 5 * float(store.last_save.get("locked_s", 0.0)))):
        try:
            store.save()
        except Exception as e:  # noqa: BLE001 - keep serving; the next tick tries again
            print(f"[a6hub store] snapshot failed: {type(e).__name__}: {e}", file=sys.stderr,
                  flush=True)
        if parent > 1 and os.getppid() != parent:
            print("[a6hub store] the process that started me is gone: saving and stopping",
                  file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.store")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", default=None, help="keep a snapshot here (default: none)")
    parser.add_argument("--save-every", type=float, default=2.0, help="seconds between saves")
    args = parser.parse_args(argv)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    patch_moto()
    snapshot = Path(args.state_dir) / SNAPSHOT_NAME if args.state_dir else None
    restored = None
    if snapshot is not None:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        try:
            restored = restore(snapshot)
        except SnapshotError as e:
            print(f"[a6hub store] {e}. Move it aside to keep it, or start empty "
                  "(python -m devstack reset).", file=sys.stderr, flush=True)
            return 2
        print("[a6hub store] " + json.dumps({"restored": restored} if restored else
                                            {"restored": None, "snapshot": str(snapshot)}),
              flush=True)
    store = Store(DomainDispatcherApplication(create_backend_app), snapshot, restored)
    server = make_server(args.host, args.port, store, threaded=True,
                         request_handler=request_handler())
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if snapshot is not None:
        threading.Thread(target=_save_periodically, args=(store, args.save_every, stop,
                                                          os.getppid()),
                         name="snapshot", daemon=True).start()
    print(f"[a6hub store] serving on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    if snapshot is not None:
        saved = store.save()
        print("[a6hub store] " + json.dumps({"final_save": saved or "unchanged",
                                             "snapshot": str(snapshot)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
