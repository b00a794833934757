"""Grading: every commit that moves a student copy's main starts the ASSIGNMENT's pipeline
(its `.a6hub.yml` at its main now, never the student's) over the student's tree with the
hidden files laid over it.

The graded pipeline and its jobs live in the assignment's project, which only the instructor
can read: their logs, artifacts, waveforms, summaries and live updates are the instructor's by
the projects' own authorisation, and a student reads outcomes only (results.py). Graded jobs
carry `grading` = {assignment_id, assignment_project_id, source_project_id, assignment_commit,
hidden_paths}: the runner materialises both trees from it (runner/graded_tree.py). They never
use or fill the job cache: a key over the student's tree would have to cover the hidden blobs
and the assignment, and a served result would be another run's log (instructor-only anyway);
a run per commit is what grading needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.ids import with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.assignments import Acceptance, Assignment, Submission
from chalicelib.models.base import id_taken, utcnow_iso
from chalicelib.models.jobs import PENDING
from chalicelib.models.pipelines import Pipeline
from chalicelib.services.assignments.hidden import commit_tree_id
from chalicelib.services.pipelines import runs
from chalicelib.services.pipelines.spec import PIPELINE_FILE, PipelineFileError, parse_pipeline

logger = Logger(service=SERVICE, child=True)

GRADING_REF = "refs/grading/"  # + the copy's id: never main, so views of main skip them


def on_main_moved(project_id: int, sha: bytes | str) -> None:
    """Grade the commit main of `project_id` now points at, when that project is a student's
    copy; never raises (the ref moved; a failure is logged)."""
    commit = sha.decode("ascii") if isinstance(sha, bytes) else sha
    try:
        for acceptance in Acceptance.by_copy.query(project_id, limit=1):
            grade(acceptance, commit)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("commit not graded", extra={"project_id": project_id,
                                                     "commit": commit})


def is_late(received_at: str, deadline: str | None) -> bool:
    """A commit that reached the server after the deadline (both ISO-8601 with a zone)."""
    if not deadline:
        return False
    return datetime.fromisoformat(received_at) > datetime.fromisoformat(deadline)


def grade(acceptance: Acceptance, commit: str) -> Submission:
    """Record the submission of `commit` and start its graded pipeline."""
    from chalicelib.services.git.store import open_repo

    received_at = utcnow_iso()
    assignment = Assignment.get(acceptance.assignment_id)
    assert acceptance.copy_project_id is not None
    head = open_repo(assignment.project_id).head_commit()
    assignment_commit = head.decode() if head is not None else None
    pipeline: Pipeline | None = None
    error: str | None = None
    if assignment_commit is None:
        error = "the assignment has no commit yet"
    else:
        pipeline, error = _start(assignment, acceptance, commit, assignment_commit)

    def create(submission_id: int) -> Submission:
        submission = Submission(
            acceptance.copy_project_id, submission_id, assignment_id=assignment.id,
            student_id=acceptance.student_id, commit=commit, received_at=received_at,
            late=is_late(received_at, assignment.deadline),
            assignment_commit=assignment_commit,
            pipeline_id=pipeline.id if pipeline is not None else None, error=error)
        submission.save(condition=Submission.id.does_not_exist())
        return submission

    return with_new_id(create, id_taken)


def _start(assignment: Assignment, acceptance: Acceptance, commit: str,
           assignment_commit: str) -> tuple[Pipeline | None, str | None]:
    """The graded pipeline (None and why, when the assignment has no pipeline file)."""
    from chalicelib.services.git.store import open_repo

    store = open_repo(assignment.project_id).object_store
    data = runs.file_in_tree(store, store[commit_tree_id(store, assignment_commit)],
                             PIPELINE_FILE)
    if data is None:
        return None, f"the assignment has no {PIPELINE_FILE}: nothing to grade with"
    errors: list[str] | None = None
    jobs: list[Any] = []
    try:
        jobs = list(parse_pipeline(data).jobs)
    except PipelineFileError as e:
        errors = e.errors
    entries = [{"name": j.name, "job_type": j.job_type, "config": j.config,
                "needs": list(j.needs), "no_cache": True, "job_id": None, "status": PENDING,
                "error": None} for j in jobs]
    to_start = runs._advance(entries)
    grading = {"assignment_id": assignment.id, "assignment_project_id": assignment.project_id,
               "source_project_id": acceptance.copy_project_id,
               "assignment_commit": assignment_commit,
               "hidden_paths": list(assignment.hidden_paths or [])}
    now = utcnow_iso()

    def create(pipeline_id: int) -> Pipeline:
        pipeline = Pipeline(
            assignment.project_id, pipeline_id, commit=commit,
            commit_key=f"grading:{acceptance.copy_project_id}:{commit}",
            ref=f"{GRADING_REF}{acceptance.copy_project_id}",
            status=runs.derive_status(entries, errors), jobs=entries, errors=errors,
            cancel_previous=False, created_by=assignment.owner_id, created_at=now,
            updated_at=now, grading=grading)
        pipeline.save(condition=Pipeline.id.does_not_exist())
        return pipeline

    pipeline = with_new_id(create, id_taken)
    if to_start:
        runs._start(assignment.project_id, pipeline.id, to_start)
    return pipeline, None
