"""Cache hits served when a pipeline starts its jobs: no queue, no runner, the job born completed.

The key is the one the runner computes (cache.py), over the commit's tree read from the git
store, with the tool versions the runners last published (`publish_toolchain`, once per runner
process, an item `toolchain` of the jobcache table). A job whose key a completed run of the
project stored is created `completed` with that run's steps, summary and artifact list, and
`summary.cache = {hit: true, job_id, project_id, key, served: "pipeline", stored_as}`: its log
and artifacts are the run's own objects (`stored_as = {project_id, job_id, attempt}`, resolved by
`storage.job_stored_as` wherever a job's bytes are read), not copies. Both jobs belong to one
project (cache.scoped) or, for a fork, the run belongs to the project it was forked from
(forks.py); job bytes are deleted only with their project, so the bytes live as long as the
hit unless a fork's source is deleted (services/jobs.stored_as: a 404 then); a hit adds
nothing to the project's artifact storage.

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
from chalicelib.services.pipelines import forks

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
    project_id: int = 0  # the project of the run (a fork's hit may be its source's run)




Published = dict[str, str] | None
Fork = Any  # models.projects.Project | None, or a function returning it (see find_hits)


def find_hits(project_id: int, wanted: dict[str, tuple[str, dict[str, Any]]],
              published: Published | Callable[[], Published],
              tree: TreeReader, fork: Fork = None) -> dict[str, Hit]:
    """The cached runs of the project for the entries `wanted` ({name: (job type, resolved
    config)}, entries with no_cache left out by the caller), by name. `published`: the tool
    versions, or a function waiting for them (called once the files each job reads are known:
    a read of them in flight overlaps that work). The keys are computed here (CPU only); the
    lookups are one BatchGetItem of their jobcache items (per 100), and one
    of the runs named by items without their result. `fork`: the project (models.projects
    .Project, or a function returning it, called when the keys are known), when it may read the
    cache of the project it was forked from (forks.py): a key it misses is looked up there in
    the same BatchGetItem. Never raises: an error is logged and
    costs only the hits."""
    if published is None or not wanted:
        return {}
    try:
        return _find_hits(project_id, wanted, published, tree, fork)
    except Exception:  # noqa: BLE001 - a miss costs only the runner's turn
        logger.exception("server-side cache lookup failed", extra={"project_id": project_id})
        return {}


def _find_hits(project_id: int, wanted: dict[str, tuple[str, dict[str, Any]]],
               published: Published | Callable[[], Published],
               tree: TreeReader, fork: Fork = None) -> dict[str, Hit]:
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
    if not keyed:
        return {}
    project = fork() if callable(fork) else fork
    runs = _completed_runs(project_id, {key for key, _ in keyed.values()},
                           forks.source_of(project))
    hits: dict[str, Hit] = {}
    for name, (key, reads) in keyed.items():
        if key not in runs:
            continue
        run_project, job_id, result = runs[key]
        inputs = [{"path": p, "file_id": None, "blob": tree.blobs[p].decode(),
                   "sha256": hashlib.sha256(data).hexdigest(), "version": 0,
                   "size_bytes": len(data)}
                  for p in reads["files"] if (data := tree.read(p)) is not None]
        hits[name] = Hit(key, job_id, result, inputs, run_project)
    return hits


def _completed_runs(project_id: int, found_keys: set[str],
                    source: forks.Source | None = None,
                    ) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """The completed runs stored under `found_keys`, by key, as (project id, job id, result):
    the project's own, else (`source`: a fork's) its source's while the fork's owner can read
    it. One BatchGetItem of the jobcache items, both projects' keys and the source's access
    items (per 100 keys); the runs of items without their result are read in one more (items
    the runner wrote before its run's completion was recorded, or older ones)."""
    projects = [project_id] + ([source.project_id] if source is not None else [])
    wanted: list[Any] = list(source.access_keys()) if source is not None else []
    wanted += [JobCache(keys.scoped(p, key)) for key in sorted(found_keys) for p in projects]
    fetched: list[Any] = []
    for start in range(0, len(wanted), BATCH_GET_KEYS):
        fetched += fetch_many(*wanted[start:start + BATCH_GET_KEYS])
    if source is not None:
        access, fetched = fetched[:2], fetched[2:]
        if not source.readable(*access):
            projects = [project_id]
    return _results(fetched, projects)


def _results(fetched: list[Any], projects: list[int]) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """The runs of the fetched jobcache items of `projects` by key (the first item of a key
    wins), reading those of items without their result."""
    found: dict[str, tuple[int, int, dict[str, Any]]] = {}
    job_of: dict[str, tuple[int, int]] = {}
    for item in fetched:  # the project's own item of a key comes first: it wins
        if item is None or int(item.project_id) not in projects:
            continue
        item_project, key = int(item.project_id), str(item.key).split(":", 1)[1]
        if key in found or key in job_of or str(item.key) != keys.scoped(item_project, key):
            continue
        if item.result:  # written once the run's completion was recorded
            found[key] = item_project, int(item.job_id), dict(item.result)
        else:
            job_of[key] = item_project, int(item.job_id)
    run_ids = sorted(set(job_of.values()))
    runs: dict[tuple[int, int], Job] = {}
    for start in range(0, len(run_ids), BATCH_GET_KEYS):
        for job in fetch_many(*(Job(p, j) for p, j in run_ids[start:start + BATCH_GET_KEYS])):
            if job is not None and job.status == COMPLETED:
                runs[int(job.project_id), int(job.id)] = job
    found.update({key: (*run, keys.result_of(runs[run]))
                  for key, run in job_of.items() if run in runs})
    return found


def cached_job(pipeline: Pipeline, entry: dict[str, Any], config: dict[str, Any], hit: Hit,
               job_id: int) -> Job:
    """The job of `entry`, completed from `hit`'s run, unsaved (the caller writes it, on the
    condition that its id is new)."""
    r = hit.result
    summary = dict(r.get("summary") or {})
    source = hit.project_id or pipeline.project_id
    summary["cache"] = {"hit": True, "key": hit.key, "job_id": hit.job_id,
                        "project_id": source, "served": "pipeline",
                        "stored_as": {"project_id": source, "job_id": hit.job_id,
                                      "attempt": int(r["attempts"])}}
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
