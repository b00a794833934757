"""A job's files: the tree of the commit the job records, read from the project's git store (S3).

Every job runs from its commit (the files API commits before it answers, so main's head at
submit holds what the submitter saw). Reads the loose objects directly through `storage`
(bucket from the environment), so the runner needs none of the API's settings. Trees are read
level by level, blobs side by side.
"""

from __future__ import annotations

import stat
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO

from botocore.exceptions import ClientError
from dulwich.objects import Blob, Commit, ShaFile, Tree

from chalicelib import storage
from chalicelib.services.git.store import objects_prefix
from runner import calls

MAX_TREE_ENTRIES = 10_000  # far above the files-per-project limit pushes are held to
FETCH_THREADS = 8
CACHE_BYTES = 64 * 1024 * 1024  # git objects kept in memory across jobs (ObjectCache)


class MaterialiseError(RuntimeError):
    """The commit's files could not be read or written for the job (the job fails with it)."""


@dataclass(frozen=True)
class CommitFile:
    """One regular file of a commit: its path, its git blob id (hex) and its bytes."""

    path: str
    blob: str
    data: bytes


class ObjectCache:
    """Git objects already read, per project, least recently used out past `max_bytes`.

    A git object's key is the SHA-1 of its content, so a cached copy can never be stale: a job
    that runs a commit this runner has run before reads none of its objects again, and one that
    changed a file reads the new commit, the trees on the changed path and the new blob only.
    Keyed by (project, sha) so a project only ever gets objects read from its own store.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()
        self._bytes = 0

    def get(self, project_id: int, sha: bytes) -> bytes | None:
        with self._lock:
            raw = self._items.get((project_id, sha))
            if raw is not None:
                self._items.move_to_end((project_id, sha))
            return raw

    def put(self, project_id: int, sha: bytes, raw: bytes) -> None:
        if len(raw) > self.max_bytes // 4:
            return  # one huge blob must not flush everything else
        with self._lock:
            if (project_id, sha) in self._items:
                return
            self._items[(project_id, sha)] = raw
            self._bytes += len(raw)
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


OBJECTS = ObjectCache(CACHE_BYTES)


def _read(project_id: int, sha: bytes) -> ShaFile:
    raw = OBJECTS.get(project_id, sha)
    if raw is None:
        try:
            raw = storage.get_bytes(objects_prefix(project_id) + sha.decode("ascii"))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            raise MaterialiseError(f"git object {sha.decode()} is missing from the store") from e
        obj = ShaFile.from_file(BytesIO(raw))
        if obj.id != sha:  # only what hashes to its name is kept (and a corrupt object fails)
            raise MaterialiseError(f"git object {sha.decode()} does not match its name")
        OBJECTS.put(project_id, sha, raw)
        return obj
    return ShaFile.from_file(BytesIO(raw))


def _listing(project_id: int, tree_sha: bytes,
             pool: ThreadPoolExecutor) -> list[tuple[str, bytes]]:
    """(path, blob sha) of every regular file under the tree; symlinks and submodules skipped."""
    files: list[tuple[str, bytes]] = []
    level: list[tuple[str, bytes]] = [("", tree_sha)]
    while level:
        trees = list(pool.map(lambda item: _read(project_id, item[1]), level))
        following: list[tuple[str, bytes]] = []
        for (prefix, _), tree in zip(level, trees, strict=True):
            if not isinstance(tree, Tree):
                raise MaterialiseError(f"{tree.id.decode()} is not a tree")
            for entry in tree.iteritems():
                path = prefix + entry.path.decode("utf-8", "replace")
                if stat.S_ISDIR(entry.mode):
                    following.append((path + "/", entry.sha))
                elif stat.S_ISREG(entry.mode):
                    files.append((path, entry.sha))
        if len(files) + len(following) > MAX_TREE_ENTRIES:
            raise MaterialiseError(f"the commit holds more than {MAX_TREE_ENTRIES} entries")
        level = following
    return files


def fetch_commit(project_id: int, commit_sha: str) -> list[CommitFile]:
    """The commit's regular files (symlinks and submodules skipped), in tree order.

    Raises MaterialiseError when an object is missing or of the wrong type, or the tree holds
    more than MAX_TREE_ENTRIES entries; storage errors propagate (the job is retried).
    """
    # The pool's GETs count as the job's AWS calls when the caller's do (runner/calls.py).
    with ThreadPoolExecutor(max_workers=FETCH_THREADS, initializer=calls.adopt,
                            initargs=(calls.current(),)) as pool:
        commit = _read(project_id, commit_sha.encode("ascii"))
        if not isinstance(commit, Commit):
            raise MaterialiseError(f"{commit_sha} is not a commit")
        listing = _listing(project_id, commit.tree, pool)
        blobs = list(pool.map(lambda item: _read(project_id, item[1]), listing))
    files: list[CommitFile] = []
    for (path, sha), blob in zip(listing, blobs, strict=True):
        if not isinstance(blob, Blob):
            raise MaterialiseError(f"{path}: {sha.decode()} is not a blob")
        files.append(CommitFile(path=path, blob=sha.decode(), data=blob.as_raw_string()))
    return files
