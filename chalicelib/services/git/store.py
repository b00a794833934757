"""A project's git repository: objects in S3, refs in DynamoDB, nothing on local disk.

Objects are stored loose, one S3 object per git object, at `git/<project_id>/objects/<sha>`
(every S3 call through `chalicelib.storage`),
in git's own loose format (zlib of "<type> <size>\\0<body>"). Objects are immutable and
content-addressed, so writes need no coordination and a process may cache them freely
(keyed by project as well as sha, so one project can never read another's objects through
the cache, e.g. as the base of a delta in a pushed thin pack).

New objects (from a pushed pack or an API commit) are first held in memory by the store;
`flush()` uploads them in parallel. Callers flush before they move a ref, so a ref never
points at an object that is not in S3, and a refused push leaves nothing behind.

Refs are items of the gitrefs table; moving one is a conditional write on its current
target (compare-and-swap). HEAD is not stored: it is always `ref: refs/heads/main`.
"""

from __future__ import annotations

import functools
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from io import BytesIO
from typing import Any

from dulwich.config import ConfigFile, StackedConfig
from dulwich.object_store import MemoryObjectStore, PackInputTooLarge
from dulwich.objects import Commit, ObjectID, ShaFile, Tree, sha_to_hex
from dulwich.refs import SYMREF, Ref, RefsContainer
from dulwich.repo import BaseRepo
from dulwich.server import Backend, BackendRepo
from pynamodb.exceptions import DeleteError, PutError

from chalicelib import hooks, storage
from chalicelib.config import get_settings
from chalicelib.models.base import condition_failed, utcnow_iso
from chalicelib.models.git import GitRef

DEFAULT_BRANCH = Ref(b"refs/heads/main")
HEAD = Ref(b"HEAD")
ZERO_SHA = b"0" * 40
_CACHE_BYTES = 64 * 1024 * 1024
_PARALLEL = 16


def objects_prefix(project_id: int) -> str:
    return f"git/{project_id}/objects/"


def git_prefix(project_id: int) -> str:
    return f"git/{project_id}/"


class _ObjectCache:
    """Process-wide LRU of raw objects, bounded in bytes; safe because objects never change."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[tuple[int, bytes], tuple[int, bytes]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: tuple[int, bytes]) -> tuple[int, bytes] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[int, bytes], value: tuple[int, bytes]) -> None:
        size = len(value[1])
        if size > self._max // 8:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += size
            while self._bytes > self._max:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= len(old)


_cache = _ObjectCache(_CACHE_BYTES)


@lru_cache(maxsize=1)
def io_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_PARALLEL, thread_name_prefix="git-s3")


_inflight: dict[tuple[int, bytes], Future[tuple[int, bytes] | None]] = {}
_inflight_lock = threading.Lock()


def _forget(key: tuple[int, bytes], _: object = None) -> None:
    with _inflight_lock:
        _inflight.pop(key, None)


def _hex(sha: bytes) -> ObjectID:
    return ObjectID(sha) if len(sha) == 40 else sha_to_hex(sha)  # type: ignore[arg-type]


class S3ObjectStore(MemoryObjectStore):
    """MemoryObjectStore whose memory is only the write buffer; reads fall through to S3.

    Reusing MemoryObjectStore keeps dulwich's own pack ingestion (add_pack, add_thin_pack:
    checksum verification, delta resolution against objects already stored).
    """

    def __init__(self, project_id: int) -> None:
        super().__init__()
        self.project_id = project_id
        self._prefix = objects_prefix(project_id)
        self._pending_bytes = 0
        self._known: dict[bytes, bool] = {}  # existence looked up during this request
        # A small pack can inflate to far more (zlib): cap what one request may hold in memory
        # (checked against the sizes a pack declares before it is inflated, and again as
        # objects arrive).
        settings = get_settings()
        self.max_pending_bytes = settings.max_project_bytes + settings.max_request_bytes

    # -- reads ---------------------------------------------------------------------------
    def _key(self, sha: bytes) -> str:
        return self._prefix + sha.decode("ascii")

    def _fetch(self, sha: bytes) -> tuple[int, bytes] | None:
        key = (self.project_id, sha)
        cached = _cache.get(key)
        if cached is not None:
            return cached
        with _inflight_lock:
            running = _inflight.get(key)
        if running is not None:
            return running.result()
        return self._download(sha)

    def _download(self, sha: bytes) -> tuple[int, bytes] | None:
        raw = storage.get_bytes_or_none(self._key(sha))
        if raw is None:
            return None
        obj = ShaFile.from_file(BytesIO(raw), sha=sha)  # type: ignore[arg-type]
        value = (obj.type_num, obj.as_raw_string())
        _cache.put((self.project_id, sha), value)
        self._read_ahead(obj)
        return value

    def _read_ahead(self, obj: ShaFile) -> None:
        """Start loading what a walk reads next (a commit's tree, a tree's subtrees).

        A clone walks commits and trees one object at a time; loading their trees in the
        background turns most of those sequential round trips into parallel ones.
        """
        if isinstance(obj, Commit):
            wanted = [obj.tree]
        elif isinstance(obj, Tree):
            wanted = [e.sha for e in obj.iteritems() if stat.S_ISDIR(e.mode)]
        else:
            return
        for sha in wanted:
            key = (self.project_id, bytes(sha))
            if _cache.get(key) is not None:
                continue
            with _inflight_lock:
                if key in _inflight:
                    continue
                future = io_pool().submit(self._download, bytes(sha))
                _inflight[key] = future
            future.add_done_callback(functools.partial(_forget, key))

    def prefetch(self, shas: Iterable[bytes]) -> None:
        """Load many objects into the cache in parallel (clones read hundreds at once)."""
        todo = [_hex(s) for s in shas]
        todo = [s for s in todo if s not in self._data and _cache.get((self.project_id, s)) is None]
        if len(todo) > 1:
            list(io_pool().map(self._fetch, todo))

    def know_existence(self, shas: Iterable[bytes]) -> None:
        """Look up whether each object exists, side by side, for `contains_loose` to answer
        from memory for the rest of this request (git negotiation asks about many at once)."""
        todo = [_hex(s) for s in shas if len(s) == 40]
        todo = [s for s in todo if s not in self._known]
        found = list(io_pool().map(self._exists, todo))
        self._known.update(zip(todo, found, strict=True))

    def contains_loose(self, sha: Any) -> bool:
        hexsha = _hex(sha)
        if hexsha in self._data or _cache.get((self.project_id, hexsha)) is not None:
            return True
        known = self._known.get(hexsha)
        if known is None:
            known = self._known[hexsha] = self._exists(hexsha)
        return known

    def _exists(self, hexsha: bytes) -> bool:
        if hexsha in self._data or _cache.get((self.project_id, hexsha)) is not None:
            return True
        return storage.object_size(self._key(hexsha)) is not None

    def get_raw(self, name: Any) -> tuple[int, bytes]:
        hexsha = _hex(name)
        pending = self._data.get(hexsha)
        if pending is not None:
            return pending.type_num, pending.as_raw_string()
        found = self._fetch(hexsha)
        if found is None:
            raise KeyError(hexsha)
        return found

    def __getitem__(self, name: Any) -> ShaFile:
        hexsha = _hex(name)
        pending = self._data.get(hexsha)
        if pending is not None:
            return pending.copy()
        type_num, raw = self.get_raw(hexsha)
        return ShaFile.from_raw_string(type_num, raw, sha=hexsha)

    def iter_unpacked_subset(self, shas: Iterable[Any], **kwargs: Any) -> Iterator[Any]:
        wanted = list(shas)
        self.prefetch(wanted)
        return super().iter_unpacked_subset(wanted, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        seen = set(self._data)
        yield from self._data
        for key in storage.list_keys(self._prefix):
            sha = key[len(self._prefix):].encode("ascii")
            if sha not in seen:
                yield sha

    def ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` stored object ids starting with `prefix` (hex; one S3 List call)."""
        return [key[len(self._prefix):] for key in storage.list_keys(self._prefix + prefix, limit)]

    # -- writes --------------------------------------------------------------------------
    def add_thin_pack(self, read_all: Any, read_some: Any, progress: Any = None, *,
                      max_input_size: int | None = None) -> None:
        """dulwich's add_thin_pack, after `pack.check_pack` accepted the declared sizes.

        The pack is read whole first (at most `max_input_size` bytes, or the request limit):
        it is already in memory as the request body, and the check must see every header before
        dulwich inflates anything. Raises PackRefused (or PackInputTooLarge).
        """
        from chalicelib.services.git import pack as gitpack

        settings = get_settings()
        limit = max_input_size or settings.max_request_bytes
        read = read_some or read_all
        chunks: list[bytes] = []
        received = 0
        while True:
            chunk = read(65536)
            if not chunk:
                break
            received += len(chunk)
            if received > limit:
                raise PackInputTooLarge(f"the pack is larger than {limit} bytes")
            chunks.append(chunk)
        pack = b"".join(chunks)
        del chunks
        gitpack.check_pack(pack, max_object_bytes=max_object_bytes(),
                           max_total_bytes=self.max_pending_bytes - self._pending_bytes)
        super().add_thin_pack(BytesIO(pack).read, None, progress)

    def add_object(self, obj: ShaFile) -> None:
        self._pending_bytes += obj.raw_length()
        if self._pending_bytes > self.max_pending_bytes:
            self._data.clear()
            raise PackInputTooLarge(
                f"the pushed objects inflate to more than {self.max_pending_bytes} bytes")
        super().add_object(obj)

    @property
    def pending(self) -> list[ShaFile]:
        return list(self._data.values())

    def pending_object(self, sha: bytes) -> ShaFile | None:
        """The buffered (not yet stored) object `sha`, or None."""
        return self._data.get(_hex(sha))

    def flush(self, keep: set[bytes] | None = None) -> int:
        """Upload buffered objects to S3 (in parallel); afterwards they read from S3.

        `keep`: only these (the objects a check reached from accepted refs); the rest are
        dropped. Returns how many were dropped. Raises quota.GitQuotaExceeded (413, nothing
        stored) when they would take the project past its git storage quota.
        """
        from chalicelib.services.git import quota

        objects = [o for o in self._data.values() if keep is None or o.id in keep]
        dropped = len(self._data) - len(objects)
        if not objects:
            self.discard()
            return dropped
        stored = [(o, o.as_legacy_object()) for o in objects]
        try:
            quota.reserve(self.project_id, sum(len(data) for _, data in stored))
        except quota.GitQuotaExceeded:
            self.discard()
            raise

        def upload(item: tuple[ShaFile, bytes]) -> None:
            obj, data = item
            storage.put_bytes(self._key(obj.id), data, "application/x-git-loose-object")
            _cache.put((self.project_id, obj.id), (obj.type_num, obj.as_raw_string()))

        list(io_pool().map(upload, stored))
        self.discard()
        return dropped

    def discard(self) -> None:
        self._data.clear()
        self._pending_bytes = 0


class DynamoRefs(RefsContainer):
    """Refs of one project, read once per request (one Query) and moved by conditional writes."""

    def __init__(self, project_id: int) -> None:
        super().__init__()
        self.project_id = project_id
        self._refs: dict[bytes, bytes] | None = None

    def _snapshot(self) -> dict[bytes, bytes]:
        if self._refs is None:
            # Names and targets only: every git request reads all refs (up to 200), and the
            # emulator's cost is per attribute returned (~1 ms an item: 853 ms at 199 refs).
            self._refs = {r.ref.encode(): r.target.encode()
                          for r in GitRef.query(self.project_id, consistent_read=True,
                                                attributes_to_get=["ref", "target"])}
        return self._refs

    def refresh(self) -> None:
        self._refs = None

    def targets(self) -> set[bytes]:
        """Every object a ref points at (HEAD aside)."""
        return set(self._snapshot().values())

    def allkeys(self) -> set[Any]:
        return {HEAD, *self._snapshot()}

    def get_packed_refs(self) -> dict[Any, Any]:
        return {}

    def get_peeled(self, name: Any) -> Any:
        return None

    def read_loose_ref(self, name: Any) -> bytes | None:
        if name == HEAD:
            return SYMREF + DEFAULT_BRANCH
        return self._snapshot().get(bytes(name))

    def _target(self, name: bytes) -> bytes:
        return DEFAULT_BRANCH if name == HEAD else name

    def set_if_equals(self, name: Any, old_ref: Any, new_ref: Any, committer: Any = None,
                      timestamp: Any = None, timezone: Any = None, message: Any = None) -> bool:
        ref = self._target(bytes(name))
        item = GitRef(self.project_id, ref.decode(), target=new_ref.decode("ascii"),
                      updated_at=utcnow_iso())
        if old_ref is None:
            condition = None
        elif old_ref == ZERO_SHA:
            condition = GitRef.ref.does_not_exist()
        else:
            condition = GitRef.target == old_ref.decode("ascii")
        try:
            item.save(condition=condition)
        except PutError as e:
            if condition_failed(e):
                self.refresh()
                return False
            raise
        self._snapshot()[ref] = bytes(new_ref)
        if ref == DEFAULT_BRANCH:  # every new commit on main (push, edit, restore, import)
            hooks.main_moved(self.project_id, bytes(new_ref))
        return True

    def add_if_new(self, name: Any, ref: Any, committer: Any = None, timestamp: Any = None,
                   timezone: Any = None, message: Any = None) -> bool:
        return self.set_if_equals(name, ZERO_SHA, ref)

    def remove_if_equals(self, name: Any, old_ref: Any, committer: Any = None,
                         timestamp: Any = None, timezone: Any = None,
                         message: Any = None) -> bool:
        ref = self._target(bytes(name))
        condition = None if old_ref is None else GitRef.target == old_ref.decode("ascii")
        try:
            GitRef(self.project_id, ref.decode()).delete(condition=condition)
        except DeleteError as e:
            if condition_failed(e):
                self.refresh()
                return False
            raise
        self._snapshot().pop(ref, None)
        return True

    def set_symbolic_ref(self, name: Any, other: Any, committer: Any = None,
                         timestamp: Any = None, timezone: Any = None,
                         message: Any = None) -> None:
        raise NotImplementedError("HEAD always points at refs/heads/main")


class ProjectRepo(BaseRepo):
    """A bare repository with no named files, hooks or config of its own."""

    def __init__(self, project_id: int) -> None:
        self.project_id = project_id
        super().__init__(S3ObjectStore(project_id), DynamoRefs(project_id))
        self.bare = True
        self.object_store: S3ObjectStore
        self.refs: DynamoRefs

    def get_config(self) -> ConfigFile:
        return ConfigFile()

    def get_config_stack(self) -> StackedConfig:
        # Never read ~/.gitconfig or /etc/gitconfig of the machine serving the request.
        return StackedConfig([ConfigFile()])

    def get_shallow(self) -> set[Any]:
        return set()

    def update_shallow(self, new_shallow: Any, new_unshallow: Any) -> None:
        return None  # stateless: the client sends its shallow boundary on every request

    def get_named_file(self, path: str, basedir: str | None = None) -> None:
        return None

    def get_description(self) -> None:
        return None

    def head_commit(self) -> bytes | None:
        """The commit id of the default branch, or None while the repository is empty."""
        return self.refs.read_loose_ref(DEFAULT_BRANCH)


class ProjectBackend(Backend):
    """dulwich server backend serving exactly one, already authorised, repository."""

    def __init__(self, repo: ProjectRepo) -> None:
        self.repo = repo

    def open_repository(self, path: str) -> BackendRepo:
        return self.repo  # type: ignore[return-value]


def max_object_bytes() -> int:
    """The largest object a pack may declare: twice what the push rules allow (a file at the
    size limit, or a tree of the most files a project may have at ~300 bytes an entry), so
    that a file a little over the limit is refused by the push rules, which name its path."""
    settings = get_settings()
    return 2 * max(settings.max_file_bytes, 300 * settings.max_files_per_project)


def open_repo(project_id: int) -> ProjectRepo:
    return ProjectRepo(project_id)


def delete_refs(project_id: int) -> None:
    refs = list(GitRef.query(project_id))
    with GitRef.batch_write() as batch:
        for ref in refs:
            batch.delete(ref)


def blob_sha(data: bytes) -> bytes:
    """The git id of a blob holding `data`, without building the object."""
    from dulwich.objects import Blob

    return Blob.from_string(data).id
