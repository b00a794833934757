"""Cache hits served when a pipeline starts a job: no queue, no runner, the job born completed.

The key is the one the runner computes (cache.py), over the commit's tree read from the git
store, with the tool versions the runners last published (`publish_toolchain`, once per runner
process, an item `toolchain` of the jobcache table). A job whose key a completed run stored is
created `completed` with that run's steps, summary, log and artifacts (copied to its own keys)
and `summary.cache = {hit: true, job_id, project_id, key, served: "pipeline"}`: its server time
(created_at -> completed_at) is the copy's. Anything else (no published versions, a miss, an
unplannable job) queues the job as usual, and the runner looks the key up again.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib import storage
from chalicelib.logs import SERVICE
from chalicelib.models.base import id_taken, utcnow_iso
from chalicelib.models.jobs import COMPLETED, Job
from chalicelib.models.pipelines import JobCache, Pipeline
from chalicelib.services.pipelines import cache as keys

logger = Logger(service=SERVICE, child=True)

TOOLCHAIN = "toolchain"
MAX_READ_BYTES = 8 * 1024 * 1024  # a tree whose HDL files hold more is left to the runner


def publish_toolchain(versions: dict[str, str]) -> None:
    """Record the tool versions a runner runs with (the newest runner's win)."""
    JobCache(TOOLCHAIN, project_id=0, job_id=0, created_at=utcnow_iso(),
             versions=dict(sorted(versions.items()))).save()


def toolchain() -> dict[str, str] | None:
    try:
        item = JobCache.get(TOOLCHAIN)
    except JobCache.DoesNotExist:
        return None
    return dict(item.versions or {}) or None


class TreeReader:
    """The files of one commit's tree, read from the git store on first use and kept."""

    def __init__(self, store: Any, tree: Any) -> None:
        self.store = store
        self.blobs = {entry.path.decode("utf-8", "replace"): entry.sha
                      for entry in store.iter_tree_contents(tree.id)}
        self.read_bytes = 0
        self.cache: dict[str, bytes | None] = {}

    @property
    def paths(self) -> list[str]:
        return sorted(self.blobs)

    def read(self, path: str) -> bytes | None:
        if path not in self.cache:
            sha = self.blobs.get(path)
            data = bytes(self.store[sha].data) if sha is not None else None
            self.read_bytes += len(data or b"")
            if self.read_bytes > MAX_READ_BYTES:
                raise MemoryError("tree too large to key on the server")
            self.cache[path] = data
        return self.cache[path]


def try_hit(pipeline: Pipeline, entry: dict[str, Any], config: dict[str, Any],
            tree: TreeReader) -> Job | None:
    """The job created completed from a cached run, or None (then queue it as usual)."""
    if entry.get("no_cache"):
        return None
    try:
        return _hit(pipeline, entry, config, tree)
    except Exception:  # noqa: BLE001 - a miss costs only the runner's turn
        logger.exception("server-side cache lookup failed", extra={"pipeline_id": pipeline.id})
        return None


def _hit(pipeline: Pipeline, entry: dict[str, Any], config: dict[str, Any],
         tree: TreeReader) -> Job | None:
    from chalicelib.services.job_lifecycle import load

    job_type = str(entry["job_type"])
    names = keys.tools_of(job_type, config)
    published = toolchain()
    if names is None or published is None or not all(n in published for n in names):
        return None
    reads = keys.files_read(job_type, config, tree.paths, tree.read)
    if reads is None:
        return None
    key = keys.key_of(job_type, config, {n: published[n] for n in names}, reads, tree.read)
    found = keys.lookup(pipeline.project_id, key)
    source = load(*found) if found else None
    if source is None or source.status != COMPLETED:
        return None
    inputs = [{"path": p, "file_id": None, "blob": tree.blobs[p].decode(),
               "sha256": hashlib.sha256(data).hexdigest(), "version": 0,
               "size_bytes": len(data)}
              for p in reads["files"] if (data := tree.read(p)) is not None]
    return _completed_copy(pipeline, entry, config, source, key, inputs)


def _completed_copy(pipeline: Pipeline, entry: dict[str, Any], config: dict[str, Any],
                    source: Job, key: str, inputs: list[dict[str, Any]]) -> Job:
    from chalicelib.ids import with_new_id
    from chalicelib.services import job_quotas

    source_attempt = int(source.attempts or 1)
    summary = {k: v for k, v in dict(source.summary or {}).items() if k != "runner"}
    summary["cache"] = {"hit": True, "key": key, "job_id": source.id,
                        "project_id": source.project_id, "served": "pipeline"}

    def create(job_id: int) -> Job:
        now = utcnow_iso()
        artifacts = []
        for artifact in source.artifacts or []:
            if job_quotas.reserve_artifact_bytes(pipeline.project_id,
                                                 int(artifact.get("size_bytes") or 0)):
                storage.copy_object(
                    storage.job_artifact_key(source.project_id, source.id, source_attempt,
                                             str(artifact["name"])),
                    storage.job_artifact_key(pipeline.project_id, job_id, 1,
                                             str(artifact["name"])))
                artifacts.append(dict(artifact))
        log = (f"[a6hub] cache hit served when the pipeline started: the result of job "
               f"{source.id} (same files read, tools and config); no tool ran\n").encode()
        log += storage.get_bytes(storage.job_log_key(source.project_id, source.id,
                                                     source_attempt))
        storage.put_bytes(storage.job_log_key(pipeline.project_id, job_id, 1), log,
                          "text/plain; charset=utf-8")
        job = Job(pipeline.project_id, job_id, job_type=str(entry["job_type"]), status=COMPLETED,
                  config=config, commit=pipeline.commit, commit_pinned=True,
                  created_by=pipeline.created_by, created_at=now, started_at=now,
                  completed_at=utcnow_iso(), duration_s=0, attempts=1,
                  exit_code=source.exit_code, inputs=inputs, steps=list(source.steps or []),
                  tool_versions=dict(source.tool_versions or {}), artifacts=artifacts,
                  summary=summary, log_bytes=len(log), log_truncated=False,
                  pipeline_id=pipeline.id, pipeline_job=str(entry["name"]))
        job.save(condition=Job.id.does_not_exist())
        return job

    return with_new_id(create, id_taken)
