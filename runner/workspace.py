"""A job's working directory: the project's files materialised under workdir/src, outputs uploaded."""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib import storage
from chalicelib.models.files import File
from chalicelib.services import job_quotas
from chalicelib.services.paths import MAX_PATH_DEPTH
from runner import fstree

logger = logging.getLogger(__name__)

FETCH_THREADS = 8
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class MaterialiseError(RuntimeError):
    """The project's files could not be copied into the workdir."""


class ArtifactLike(Protocol):
    name: str
    path: Path
    kind: str
    mime: str


@contextmanager
def workdir() -> Iterator[Path]:
    """A fresh directory for one job, removed afterwards whatever happened."""
    path = Path(tempfile.mkdtemp(prefix="a6hub-job-"))
    try:
        yield path
    finally:
        try:
            fstree.remove_tree(path)
        except OSError as e:  # a leftover must not turn a finished job into a runner error
            logger.warning("job workdir %s not fully removed: %s", path, e)


def _target(src: Path, filepath: str) -> Path:
    # Paths were validated on write; checked again because they become host paths here.
    if filepath.count("/") >= MAX_PATH_DEPTH:  # stored before the limit, or an unchecked commit
        raise MaterialiseError(f"file path {filepath[:100]!r}... is deeper than "
                               f"{MAX_PATH_DEPTH} levels")
    target = (src / filepath).resolve()
    if not filepath or filepath.startswith("/") or not target.is_relative_to(src.resolve()):
        raise MaterialiseError(f"file path {filepath!r} leaves the project directory")
    return target


def _fetch(record: File) -> bytes:
    try:
        return storage.get_bytes(record.s3_key)
    except ClientError as e:
        # Without s3:ListBucket (the runner's role has none) S3 answers a missing key with 403.
        if e.response.get("Error", {}).get("Code") not in {"NoSuchKey", "AccessDenied", "404", "403"}:
            raise
    # The file was rewritten between the Query and the GET: read its current version.
    fresh = File.get(record.project_id, record.id, consistent_read=True)
    record.s3_key, record.sha256, record.version = fresh.s3_key, fresh.sha256, fresh.version
    return storage.get_bytes(record.s3_key)


def fetch_project(project_id: int) -> list[tuple[File, bytes]]:
    """Every file of the project with its body: one Query, then the GETs side by side."""
    records = list(File.query(project_id, consistent_read=True))
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        return list(zip(records, pool.map(_fetch, records), strict=True))


def write_files(src: Path, fetched: list[tuple[File, bytes]]) -> list[dict[str, Any]]:
    """Write fetched files under `src`; returns what was written (path, sha256, version)."""
    src.mkdir(parents=True, exist_ok=True)
    targets = [_target(src, record.filepath) for record, _ in fetched]  # refuse before writing
    inputs: list[dict[str, Any]] = []
    for target, (record, data) in zip(targets, fetched, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        blob = str(record.s3_key or "")
        inputs.append({"path": record.filepath, "file_id": record.id or None,
                       "blob": blob.split(":", 1)[1] if blob.startswith("git-blob:") else None,
                       "sha256": hashlib.sha256(data).hexdigest(),
                       "version": int(record.version or 0), "size_bytes": len(data)})
    inputs.sort(key=lambda i: str(i["path"]))
    return inputs


def materialise(project_id: int, src: Path) -> list[dict[str, Any]]:
    return write_files(src, fetch_project(project_id))


def _uploadable(root: Path, artifact: ArtifactLike) -> bool:
    # Tools wrote out/ from inside the sandbox: a symlink there could name a runner file.
    path = Path(artifact.path)
    return (bool(_ARTIFACT_NAME.match(artifact.name)) and not path.is_symlink()
            and path.is_file() and path.resolve().is_relative_to(root.resolve()))


def upload_artifacts(project_id: int, job_id: int, attempt: int, root: Path,
                     artifacts: list[ArtifactLike],
                     note: Callable[[str], None]) -> list[dict[str, Any]]:
    """Upload each artifact under jobs/<project>/<job>/artifacts/; `note` reports skipped ones."""
    stored: list[dict[str, Any]] = []
    for artifact in artifacts:
        path = Path(artifact.path)
        if not _uploadable(root, artifact):
            note(f"artifact {artifact.name!r} skipped (bad name, missing, or outside the job)")
            continue
        size = path.stat().st_size
        if not job_quotas.reserve_artifact_bytes(project_id, size):
            note(f"artifact {artifact.name!r} skipped: the project's artifact storage quota is "
                 "used up")
            continue
        key = storage.job_artifact_key(project_id, job_id, attempt, artifact.name)
        storage.upload_file(key, path, artifact.mime)
        stored.append({"name": artifact.name, "kind": artifact.kind,
                       "size_bytes": path.stat().st_size, "mime_type": artifact.mime})
    return stored
