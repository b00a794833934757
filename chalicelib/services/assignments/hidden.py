"""The hidden files of an assignment: which paths they are, the tree a graded job reads (the
student's commit with the assignment's hidden files over it) and scrubbing what a student sees.

Imports no other service: CI (services/pipelines/runs.py) reads a graded pipeline's tree here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

MIN_HIDDEN_RUN = 12  # non-space characters of a hidden line that give it away
MAX_MESSAGE_CHARS = 300  # what a student reads of one failure message
WITHHELD = "(message withheld: it quotes the hidden tests)"
_SPACE = re.compile(r"\s+")


def is_hidden(path: str, hidden_paths: Sequence[str]) -> bool:
    """True when `path` is one of `hidden_paths` or lies under one (a folder: "hidden/")."""
    for hidden in hidden_paths:
        base = hidden.rstrip("/")
        if path == base or path.startswith(base + "/"):
            return True
    return False


def tree_files(store: Any, tree_id: bytes) -> dict[str, tuple[int, bytes]]:
    """path -> (mode, blob sha) of every entry under a tree (dulwich object store)."""
    return {entry.path.decode("utf-8", "replace"): (entry.mode, entry.sha)
            for entry in store.iter_tree_contents(tree_id)}


def commit_tree_id(store: Any, sha: str) -> bytes:
    """The tree of a commit; KeyError when the object is missing or not a commit."""
    from dulwich.objects import Commit

    commit = store[sha.encode("ascii")]
    if not isinstance(commit, Commit):
        raise KeyError(sha)
    return bytes(commit.tree)


class GradedTree:
    """What a graded job reads: the student's commit without anything under the hidden paths,
    plus the assignment commit's files under them (hidden files win over a student's file of
    the same path). The shape of pipelines.instant.TreeReader (`paths`, `read`, `blobs`)."""

    def __init__(self, grading: dict[str, Any], student_commit: str) -> None:
        from chalicelib.services.git.store import open_repo

        hidden = list(grading["hidden_paths"])
        self.student = open_repo(int(grading["source_project_id"])).object_store
        self.assignment = open_repo(int(grading["assignment_project_id"])).object_store
        student = tree_files(self.student, commit_tree_id(self.student, student_commit))
        overlay = tree_files(self.assignment, commit_tree_id(self.assignment,
                                                             str(grading["assignment_commit"])))
        self.origin: dict[str, Any] = {}
        self.blobs: dict[str, bytes] = {}
        for path, (_, sha) in student.items():
            if not is_hidden(path, hidden):
                self.origin[path], self.blobs[path] = self.student, sha
        for path, (_, sha) in overlay.items():
            if is_hidden(path, hidden):
                self.origin[path], self.blobs[path] = self.assignment, sha

    @property
    def paths(self) -> list[str]:
        return sorted(self.blobs)

    def read(self, path: str) -> bytes | None:
        sha = self.blobs.get(path)
        return bytes(self.origin[path][sha].data) if sha is not None else None


def hidden_texts(store: Any, tree_id: bytes, hidden_paths: Sequence[str]) -> list[bytes]:
    """The bytes of every hidden file of a tree."""
    return [bytes(store[sha].data) for path, (_, sha) in tree_files(store, tree_id).items()
            if is_hidden(path, hidden_paths)]


def hidden_runs(texts: Iterable[bytes]) -> set[str]:
    """The lines of the hidden files that give them away: those of at least MIN_HIDDEN_RUN
    non-space characters, with their white space removed (so re-spacing hides nothing)."""
    runs: set[str] = set()
    for text in texts:
        for line in text.decode("utf-8", "replace").splitlines():
            squeezed = _SPACE.sub("", line)
            if len(squeezed) >= MIN_HIDDEN_RUN:
                runs.add(squeezed)
    return runs


def scrub(message: str | None, runs: set[str]) -> str | None:
    """A message a student may read: None stays None; a message holding any hidden run (white
    space ignored) is withheld whole; the rest is cut to MAX_MESSAGE_CHARS."""
    if message is None:
        return None
    squeezed = _SPACE.sub("", message)
    if any(run in squeezed for run in runs):
        return WITHHELD
    cut = message[:MAX_MESSAGE_CHARS]
    # A cut can leave a prefix of a hidden run at the end: check the cut text again.
    return cut if cut == message else cut + " ..."
