"""A graded job's files: the student's commit (from the copy's git store) without anything
under the hidden paths, plus the hidden files of the assignment commit the job records (from
the assignment's store); hidden files win over a student's file of the same path.

See chalicelib/services/assignments/grading.py for what `job.grading` holds.
"""

from __future__ import annotations

from typing import Any

from chalicelib.services.assignments.hidden import is_hidden
from runner.commit_tree import CommitFile, MaterialiseError, fetch_commit


def fetch_graded(grading: dict[str, Any], student_commit: str) -> list[CommitFile]:
    """The files of a graded job, in path order; MaterialiseError when `grading` is incomplete
    or an object is missing (storage errors propagate: the job is retried)."""
    try:
        hidden = [str(p) for p in grading["hidden_paths"]]
        student = fetch_commit(int(grading["source_project_id"]), student_commit)
        overlay = fetch_commit(int(grading["assignment_project_id"]),
                               str(grading["assignment_commit"]))
    except (KeyError, TypeError, ValueError) as e:
        raise MaterialiseError(f"the graded job's record is incomplete: {e}") from e
    files = {f.path: f for f in student if not is_hidden(f.path, hidden)}
    files.update({f.path: f for f in overlay if is_hidden(f.path, hidden)})
    return [files[p] for p in sorted(files)]
