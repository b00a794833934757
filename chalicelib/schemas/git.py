"""Git history requests and responses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.schemas.common import PublicModel, RequestModel
from chalicelib.schemas.pipelines import PipelinePublic

ChangeKind = Literal["added", "modified", "deleted"]


class CommitPublic(PublicModel):
    id: str
    summary: str
    message: str
    author_name: str
    author_email: str
    authored_at: str
    committer_name: str
    committer_email: str
    committed_at: str
    parents: list[str]
    tree: str
    pipeline: PipelinePublic | None = None  # the commit's newest pipeline (CI status), if any


class PathChange(PublicModel):
    path: str
    change: ChangeKind
    old_blob: str | None = None
    new_blob: str | None = None


class CommitDetail(CommitPublic):
    changes: list[PathChange]


class FileAtCommit(PublicModel):
    commit: str
    path: str
    size_bytes: int
    content: str
    encoding: Literal["utf-8", "base64"]


class DiffFile(PathChange):
    binary: bool
    patch: str | None  # unified diff; None when the response budget ran out (truncated)
    truncated: bool


class DiffPublic(PublicModel):
    base: str
    head: str
    files: list[DiffFile]


class RestoreRequest(RequestModel):
    commit: str = Field(min_length=40, max_length=40)
    path: str | None = Field(default=None, min_length=1, max_length=1024)
    message: str | None = Field(default=None, max_length=1000)


class RestoreResult(PublicModel):
    restored: bool
    commit: CommitPublic | None


class ForkRequest(RequestModel):
    """A fork of a project the caller can read, owned by the caller, with its full history."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    visibility: Literal["private", "public"] | None = None  # default: the source's


class ImportRequest(RequestModel):
    """A new project cloned (asynchronously) from a public git repository."""

    url: str = Field(min_length=1, max_length=2048,
                     description="https://, http:// or git:// URL of a public repository")
    name: str | None = Field(default=None, min_length=1, max_length=100,
                             description="default: the repository's name from the URL")
    description: str | None = Field(default=None, max_length=2000)
    visibility: Literal["private", "public"] = "private"
    branch: str | None = Field(default=None, min_length=1, max_length=255,
                               description="branch that becomes main; default: the remote's HEAD")
