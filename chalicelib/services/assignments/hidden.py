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
# Hidden text scanned for runs; past this (test vectors, say) every message is withheld, so
# the set of runs stays a few tens of MB at most in the API's memory.
MAX_SCANNED_CHARS = 1_000_000
WITHHELD = "(message withheld: it quotes the hidden tests)"
UNNAMED = "(name withheld: not a test function of the hidden files)"
_SPACE = re.compile(r"\s+")
# A Python function's definition (cocotb tests are `async def name(dut)` under @cocotb.test()).
_DEF = re.compile(rb"^[ \t]*(?:async[ \t]+)?def[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\(", re.M)


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


def hidden_runs(texts: Iterable[bytes]) -> set[str] | None:
    """Every run of MIN_HIDDEN_RUN consecutive non-space characters of the hidden files (white
    space removed first, so re-spacing hides nothing). A message sharing any of them quotes the
    hidden text: a source line, or a string the testbench printed (`$display`, an assert's
    message), whose formatted output holds the literal's pieces, not the whole line. None when
    the hidden text exceeds MAX_SCANNED_CHARS (then scrub withholds every message)."""
    runs: set[str] = set()
    scanned = 0
    for text in texts:
        squeezed = _SPACE.sub("", text.decode("utf-8", "replace"))
        scanned += len(squeezed)
        if scanned > MAX_SCANNED_CHARS:
            return None
        runs.update(squeezed[i:i + MIN_HIDDEN_RUN]
                    for i in range(len(squeezed) - MIN_HIDDEN_RUN + 1))
    return runs


def defined_names(texts: Iterable[bytes]) -> set[str]:
    """The names of the Python functions the hidden files define: the only test names a
    student is shown. A test name is otherwise free text: when cocotb writes no results file
    the runner reads the tests from the step's log (runner/kinds/cocotb.results_from_log),
    where the student's design can print `cocotb.regression <anything> passed` lines, e.g. the
    hidden files hex-encoded, which no run of `scrub` matches."""
    return {m.group(1).decode("ascii") for text in texts for m in _DEF.finditer(text)}


def show_name(name: str, names: set[str]) -> str:
    """A test's name as a student sees it: UNNAMED unless the hidden files define it."""
    return name if name in names else UNNAMED


def scrub(message: str | None, runs: set[str] | None) -> str | None:
    """A message a student may read: None stays None; a message holding any hidden run (white
    space ignored) is withheld whole; the rest is cut to MAX_MESSAGE_CHARS. A message that
    holds less than a run of the hidden text passes (pieces shorter than MIN_HIDDEN_RUN)."""
    if message is None:
        return None
    if runs is None:
        return WITHHELD
    squeezed = _SPACE.sub("", message)
    if any(squeezed[i:i + MIN_HIDDEN_RUN] in runs
           for i in range(len(squeezed) - MIN_HIDDEN_RUN + 1)):
        return WITHHELD
    cut = message[:MAX_MESSAGE_CHARS]
    return cut if cut == message else cut + " ..."
