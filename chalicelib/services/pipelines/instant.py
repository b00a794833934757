"""Cache hits served when a pipeline starts its jobs: no queue, no runner, the job born completed.

The key is the one the runner computes (cache.py), over the commit's tree read from the git
store, with the tool versions the runners last published (`publish_toolchain`, once per runner
process, an item `toolchain` of the jobcache table). A job whose key a completed run of the
project stored is created `completed` with that run's steps, summary and artifact list, and
`summary.cache = {hit: true, job_id, project_id, key, served: "pipeline", stored_as}`: its log
and artifacts are the run's own objects (`stored_as = {job_id, attempt}`, resolved by
`storage.job_stored_as` wherever a job's bytes are read), not copies. Both jobs belong to one
project (cache.scoped) and job bytes are deleted only with their project, so the bytes live as
long as the hit; a hit adds nothing to the project's artifact storage.

The lookups are batched (`find_hits`: one BatchGetItem for every key of a pipeline; the cache
items hold their runs' results, stored when the run's end was recorded) and the hit jobs are
built unsaved (`cached_job`) for the caller to write in one transaction with its pipeline.
Anything else (no published versions, a miss, an unplannable
job) queues the job as usual, and the runner looks the key up again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.logs import SERVICE
from chalicelib.models.base import fetch_many, utcnow_iso
from chalicelib.models.jobs import COMPLETED, Job
from chalicelib.models.pipelines import JobCache, Pipeline
from chalicelib.services.pipelines import cache as keys

logger = Logger(service=SERVICE, child=True)

TOOLCHAIN = "toolchain"
MAX_READ_BYTES = 8 * 1024 * 1024  # a tree whose HDL files hold more is left to the runner
BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit


def publish_toolchain(versions: dict[str, str]) -> None:
    """Record the tool versions a runner runs with (the newest runner's win)."""
    JobCache(TOOLCHAIN, project_id=0, job_id=0, created_at=utcnow_iso(),
             versions=dict(sorted(versions.items()))).save()


def toolchain_key() -> JobCache:
    """The key of the `toolchain` item, for a BatchGetItem with other items (fetch_many)."""
    return JobCache(TOOLCHAIN)


def toolchain_of(item: JobCache | None) -> dict[str, str] | None:
    """The published tool versions a fetched `toolchain` item holds (None: none published)."""
    return (dict(item.versions or {}) or None) if item is not None else None


def toolchain() -> dict[str, str] | None:
    """The tool versions runners last published (None: none yet)."""
    try:
        return toolchain_of(JobCache.get(TOOLCHAIN))
    except JobCache.DoesNotExist:
        return None


class TreeReader:
    """The files of one commit's tree, read from the git store on first use and kept."""

    def __init__(self, store: Any, tree: Any) -> None:
        self.store = store
        self.blobs = {entry.path.decode("utf-8", "replace"): entry.sha
                      for entry in store.iter_tree_contents(tree.id)}
        self.read_bytes = 0
        self.cache: dict[str, bytes | None] = {}
        self._paths: list[str] | None = None
        self.models: dict[Any, Any] = {}  # parsed project models by parse options (cache.py)

    @property
    def paths(self) -> list[str]:
        if self._paths is None:
            self._paths = sorted(self.blobs)
        return self._paths

    def read(self, path: str) -> bytes | None:
        if path not in self.cache:
            sha = self.blobs.get(path)
            data = bytes(self.store[sha].data) if sha is not None else None
            self.read_bytes += len(data or b"")
            if self.read_bytes > MAX_READ_BYTES:
                raise MemoryError("tree too large to key on the server")
            self.cache[path] = data
        return self.cache[path]


@dataclass(frozen=True)
class Hit:
    """A completed run of the project whose key equals an entry's: what its job is built from
    (`result` as cache.result_of gives it)."""

    key: str
    job_id: int
    result: dict[str, Any]
    inputs: list[dict[str, Any]]




Published = dict[str, str] | None


def find_hits(project_id: int, wanted: dict[str, tuple[str, dict[str, Any]]],
              published: Published | Callable[[], Published],
              tree: TreeReader) -> dict[str, Hit]:
    """The cached runs of the project for the entries `wanted` ({name: (job type, resolved
    config)}, entries with no_cache left out by the caller), by name. `published`: the tool
    versions, or a function waiting for them (called once the files each job reads are known:
    a read of them in flight overlaps that work). The keys are computed here (CPU only); the
    lookups are one BatchGetItem of their jobcache items (per 100), and one
    of the runs named by items without their result. Never raises: an error is logged and
    costs only the hits."""
    if published is None or not wanted:
        return {}
    try:
        return _find_hits(project_id, wanted, published, tree)
    except Exception:  # noqa: BLE001 - a miss costs only the runner's turn
        logger.exception("server-side cache lookup failed", extra={"project_id": project_id})
        return {}


def _find_hits(project_id: int, wanted: dict[str, tuple[str, dict[str, Any]]],
               published: Published | Callable[[], Published],
               tree: TreeReader) -> dict[str, Hit]:
    reads_of: dict[str, dict[str, Any]] = {}
    for name, (job_type, config) in wanted.items():
        if keys.tools_of(job_type, config) is not None:
            reads = keys.files_read(job_type, config, tree.paths, tree.read, tree.models)
            if reads is not None:
                reads_of[name] = reads
    versions = published() if callable(published) else published
    if versions is None:
        return {}
    keyed: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, reads in reads_of.items():
        job_type, config = wanted[name]
        names = keys.tools_of(job_type, config) or []
        if all(n in versions for n in names):
            keyed[name] = (keys.key_of(job_type, config, {n: versions[n] for n in names}, reads,
                                       tree.read), reads)
    runs = _completed_runs(project_id, {key for key, _ in keyed.values()})
    hits: dict[str, Hit] = {}
    for name, (key, reads) in keyed.items():
        if key not in runs:
            continue
        job_id, result = runs[key]
        inputs = [{"path": p, "file_id": None, "blob": tree.blobs[p].decode(),
                   "sha256": hashlib.sha256(data).hexdigest(), "version": 0,
                   "size_bytes": len(data)}
                  for p in reads["files"] if (data := tree.read(p)) is not None]
        hits[name] = Hit(key, job_id, result, inputs)
    return hits


def _completed_runs(project_id: int,
                    found_keys: set[str]) -> dict[str, tuple[int, dict[str, Any]]]:
    """The project's completed runs stored under `found_keys`, by key: one BatchGetItem of the
    jobcache items (per 100 keys); the runs of items without their result are read in one
    more (items the runner wrote before its run's completion was recorded, or older ones)."""
    scoped = sorted(keys.scoped(project_id, key) for key in found_keys)
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    job_of: dict[str, int] = {}
    for start in range(0, len(scoped), BATCH_GET_KEYS):
        for item in fetch_many(*(JobCache(k) for k in scoped[start:start + BATCH_GET_KEYS])):
            if item is None or item.project_id != project_id:
                continue
            key = str(item.key).split(":", 1)[1]
            if item.result:  # written once the run's completion was recorded
                found[key] = int(item.job_id), dict(item.result)
            else:
                job_of[key] = int(item.job_id)
    run_ids = sorted(set(job_of.values()))
    runs: dict[int, Job] = {}
    for start in range(0, len(run_ids), BATCH_GET_KEYS):
        for job in fetch_many(*(Job(project_id, j) for j in run_ids[start:start + BATCH_GET_KEYS])):
            if job is not None and job.status == COMPLETED:
                runs[job.id] = job
    found.update({key: (job_id, keys.result_of(runs[job_id]))
                  for key, job_id in job_of.items() if job_id in runs})
    return found


def cached_job(pipeline: Pipeline, entry: dict[str, Any], config: dict[str, Any], hit: Hit,
               job_id: int) -> Job:
    """The job of `entry`, completed from `hit`'s run, unsaved (the caller writes it, on the
    condition that its id is new)."""
    r = hit.result
    summary = dict(r.get("summary") or {})
    summary["cache"] = {"hit": True, "key": hit.key, "job_id": hit.job_id,
                        "project_id": pipeline.project_id, "served": "pipeline",
                        "stored_as": {"job_id": hit.job_id, "attempt": int(r["attempts"])}}
    now = utcnow_iso()
    return Job(pipeline.project_id, job_id, job_type=str(entry["job_type"]), status=COMPLETED,
               config=config, commit=pipeline.commit, commit_pinned=True,
               created_by=pipeline.created_by, created_at=now, started_at=now, completed_at=now,
               duration_s=0, attempts=1, exit_code=r.get("exit_code"), inputs=hit.inputs,
               steps=list(r.get("steps") or []), tool_versions=dict(r.get("tool_versions") or {}),
               artifacts=[dict(a) for a in r.get("artifacts") or []], summary=summary,
               log_bytes=int(r.get("log_bytes") or 0),
               log_truncated=bool(r.get("log_truncated")),
               pipeline_id=pipeline.id, pipeline_job=str(entry["name"]))
