"""Forks: a new project owned by the caller with the full history of one they can read.

Copying a history costs one S3 copy per object (and a walk of the history to find them): about
40 ms an object on the emulator, so a fork near MAX_FORK_OBJECTS would take minutes, far past
API Gateway's 29 s. So a fork runs like an import (`imports.py`): POST .../fork authorises,
creates the project marked `importing` (import_status; its `forked_from` says where from) and
queues a job of type `fork` on it, answering 202. The runner (`runner/importer.py`) calls
`copy_into`: it walks what the source's refs reach (a snapshot taken when the job runs), copies
those objects server-side in batches, then the refs, then fills the files table, and marks the
project `completed` (or `failed`, with the reason on the job).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from chalicelib import hooks, storage
from chalicelib.errors import TooManyRequests
from chalicelib.models.git import GitRef
from chalicelib.models.projects import Project
from chalicelib.schemas.git import ForkRequest
from chalicelib.schemas.projects import ProjectCreate, ProjectPublic, Visibility
from chalicelib.services import projects, ratelimit
from chalicelib.services.git import imports, quota
from chalicelib.services.git.store import DEFAULT_BRANCH, io_pool, objects_prefix, open_repo
from chalicelib.services.git.sync import sync_files
from chalicelib.services.identity import Caller

JOB_TYPE = imports.FORK_JOB_TYPE
MAX_FORK_OBJECTS = 5_000  # one job: ~16 server-side copies at a time, ~40 ms each on S3
FORKS_PER_HOUR = 30  # per user: each queues a runner job of up to MAX_FORK_OBJECTS copies
_BATCH = 256  # objects copied between two looks at the cancel flag / progress lines


def fork_project(caller: Caller, project_id: int, data: ForkRequest) -> ProjectPublic:
    """Create the fork (marked importing) and queue its copy job; the project, for a 202.

    Errors: 404 when the caller cannot read the source, 429 (Retry-After) past FORKS_PER_HOUR,
    503 when the job queue is unavailable (the project then shows `failed`).
    """
    source = projects.authorize(caller, project_id, "read").project
    _take_one_fork(caller)
    # A collaborator may keep a copy, not publish what the owner kept private: the fork
    # records its private origin, and create_project (and every later visibility change)
    # lets only that project's owner make it public.
    created = projects.create_project(caller, ProjectCreate(
        name=data.name or source.name,
        description=data.description if data.description is not None else source.description,
        visibility=cast(Visibility, data.visibility or source.visibility)), fork_of=source)
    return imports.queue_fill_job(caller, created, JOB_TYPE, {"source": source.id})


def _take_one_fork(caller: Caller) -> None:
    wait = ratelimit.acquire([ratelimit.Window(f"fork#user#{caller.id}", FORKS_PER_HOUR, 3600)])
    if wait:
        raise TooManyRequests(f"at most {FORKS_PER_HOUR} forks per hour; try again in {wait} s",
                              retry_after=wait)


class ForkFailed(Exception):
    """The fork cannot succeed; the message is what the user reads on the job."""


class ForkCancelled(Exception):
    """The job was cancelled while copying."""


@dataclass
class Forked:
    objects: int
    refs: int
    seconds_walk: float
    seconds_copy: float


def copy_into(target_id: int, source_id: int, say: Callable[[str], None],
              cancelled: threading.Event) -> Forked:
    """The runner's half of a fork: copy what the source's refs reach into `target_id`.

    Idempotent (objects are content-addressed, refs are written as the source has them), so a
    retried job redoes it safely. Raises ForkFailed (source gone, history over
    MAX_FORK_OBJECTS, fork already written to) or ForkCancelled; storage errors propagate.
    """
    try:
        source = Project.get(source_id)
    except Project.DoesNotExist:
        raise ForkFailed(f"the source project {source_id} no longer exists") from None
    try:  # what the source counted: at least what the copy stores (a retry counts it again)
        quota.reserve(target_id, int(source.git_bytes or 0))
    except quota.GitQuotaExceeded as e:
        raise ForkFailed(e.detail) from None
    started = time.monotonic()
    refs, shas = _reachable(source_id)
    walked = time.monotonic()
    say(f"copying {len(shas)} objects and {len(refs)} refs from project {source_id}")
    _copy_repository(source_id, target_id, refs, shas, say, cancelled)
    return Forked(objects=len(shas), refs=len(refs), seconds_walk=walked - started,
                  seconds_copy=time.monotonic() - walked)


def _reachable(source_id: int) -> tuple[list[GitRef], list[bytes]]:
    """The source's refs and the objects they reach (what a clone would get).

    Whatever else its store holds (history of deleted branches, objects stored before pushes
    were checked whole) stays behind. Raises ForkFailed past MAX_FORK_OBJECTS.
    """
    from dulwich.object_store import MissingObjectFinder
    from dulwich.objects import ObjectID

    refs = list(GitRef.query(source_id, consistent_read=True))
    wanted = sorted({ObjectID(r.target.encode()) for r in refs})
    shas: list[bytes] = []
    for sha, _ in MissingObjectFinder(open_repo(source_id).object_store, [], wanted):
        shas.append(sha)
        if len(shas) > MAX_FORK_OBJECTS:
            raise ForkFailed(f"the project's history holds more than {MAX_FORK_OBJECTS} "
                             "objects: too large to fork")
    return refs, shas


def _copy_repository(source_id: int, target_id: int, refs: list[GitRef], shas: list[bytes],
                     say: Callable[[str], None], cancelled: threading.Event) -> None:
    """Copy the reachable objects (server-side, in batches), then the refs, then the files."""
    source_prefix, target_prefix = objects_prefix(source_id), objects_prefix(target_id)

    def copy(sha: bytes) -> None:
        storage.copy_key(source_prefix + sha.decode(), target_prefix + sha.decode())

    for start in range(0, len(shas), _BATCH):
        if cancelled.is_set():
            raise ForkCancelled()
        list(io_pool().map(copy, shas[start:start + _BATCH]))
        if start + _BATCH < len(shas):
            say(f"copied {start + _BATCH} of {len(shas)} objects")
    mine = {r.ref: r.target for r in GitRef.query(target_id, consistent_read=True)}
    if any(mine.get(r.ref, r.target) != r.target for r in refs):
        raise ForkFailed("the fork's refs were written to while it was being copied")
    with GitRef.batch_write() as batch:
        for ref in refs:
            batch.save(GitRef(target_id, ref.ref, target=ref.target, updated_at=ref.updated_at))
    repo = open_repo(target_id)
    head = repo.head_commit()
    if head is not None:
        commit = repo.object_store[head]
        sync_files(repo, None, commit.tree)  # type: ignore[attr-defined]
        # The fork's main is a new commit on main, as an import's is (the store announces those
        # itself; these refs were batch-written). A retried job whose refs were already written
        # does not start a second pipeline for the same head.
        if mine.get(DEFAULT_BRANCH.decode()) != head.decode("ascii"):
            hooks.main_moved(target_id, head)
