"""A job's files on the runner's disk: its commit's files written once into its stage's src/
(runner/jobdirs.py), its artifacts uploaded."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from chalicelib import storage
from chalicelib.models.files import File
from chalicelib.schemas.jobs import ArtifactPublic, InputFilePublic
from chalicelib.services import job_quotas
from chalicelib.services.paths import MAX_PATH_DEPTH
from runner.commit_tree import CommitFile, MaterialiseError

_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ArtifactLike(Protocol):
    name: str
    path: Path
    kind: str
    mime: str


def _target(src: Path, filepath: str) -> Path:
    # Paths were validated on write; checked again because they become host paths here.
    if filepath.count("/") >= MAX_PATH_DEPTH:  # stored before the limit, or an unchecked commit
        raise MaterialiseError(f"file path {filepath[:100]!r}... is deeper than "
                               f"{MAX_PATH_DEPTH} levels")
    target = (src / filepath).resolve()
    if not filepath or filepath.startswith("/") or not target.is_relative_to(src.resolve()):
        raise MaterialiseError(f"file path {filepath!r} leaves the project directory")
    return target


def files_table_rows(project_id: int) -> dict[str, tuple[int, int, str]]:
    """path -> (file id, version, sha256) of the files table now: one Query, bodies not read."""
    return {str(row.filepath): (int(row.id), int(row.version or 0), str(row.sha256))
            for row in File.query(project_id, consistent_read=True,
                                  attributes_to_get=["filepath", "id", "version", "sha256"])}


def write_files(src: Path, files: list[CommitFile],
                rows: dict[str, tuple[int, int, str]]) -> list[InputFilePublic]:
    """Write a commit's files into a job's stage (`src`, JobDirs.src: empty, the runner's);
    returns the job's inputs, sorted by path.

    Each input names its blob and sha256; `file_id` and `version` are those of the files-table
    row at that path when it holds the same bytes (`rows`, from files_table_rows), else null/0.
    Every path is checked before anything is written (MaterialiseError). Folders are made 0755
    and files 0644 whatever the umask (the sandbox uid reads them); a file is created new and
    never opened through a link.
    """
    targets = [_target(src, f.path) for f in files]  # refuse before writing
    root = src.resolve()
    inputs: list[InputFilePublic] = []
    for target, f in zip(targets, files, strict=True):
        _make_parents(root, target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, 0o644)
            out.write(f.data)
        digest = hashlib.sha256(f.data).hexdigest()
        file_id, version, row_digest = rows.get(f.path, (0, 0, ""))
        same = row_digest == digest
        inputs.append(InputFilePublic(path=f.path, file_id=file_id if same else None, blob=f.blob,
                                      sha256=digest, version=version if same else 0,
                                      size_bytes=len(f.data)))
    inputs.sort(key=lambda i: i.path)
    return inputs


def _make_parents(src: Path, folder: Path) -> None:
    missing: list[Path] = []
    while folder != src and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        path.chmod(0o755)  # noqa: S103 - mounted read-only for the sandbox uid


def _uploadable(root: Path, artifact: ArtifactLike) -> bool:
    # Tools wrote out/ from inside the sandbox: a symlink there could name a runner file.
    path = Path(artifact.path)
    return (bool(_ARTIFACT_NAME.match(artifact.name)) and not path.is_symlink()
            and path.is_file() and path.resolve().is_relative_to(root.resolve()))


SINGLE_PUT_BYTES = 8 * 1024 * 1024  # s3transfer's multipart threshold: below it, one PutObject


def upload_artifacts(project_id: int, job_id: int, attempt: int, root: Path,
                     artifacts: list[ArtifactLike],
                     note: Callable[[str], None]) -> list[ArtifactPublic]:
    """Upload each artifact under jobs/<project>/<job>/artifacts/; `note` reports skipped ones."""
    stored: list[ArtifactPublic] = []
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
        if size <= SINGLE_PUT_BYTES:  # one PutObject on this thread: no transfer pool to start
            storage.put_bytes(key, path.read_bytes(), artifact.mime)
        else:  # multipart, on s3transfer's threads (not counted in the job's aws_calls)
            storage.upload_file(key, path, artifact.mime)
        stored.append(ArtifactPublic(name=artifact.name, kind=artifact.kind,
                                     size_bytes=path.stat().st_size, mime_type=artifact.mime))
    return stored
