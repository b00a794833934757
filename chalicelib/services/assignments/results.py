"""What grading shows: the instructor's table of students x tests (each student's latest
commit), and a student's own submissions with outcomes and scrubbed, capped messages.

A student never gets a graded job's id, log, artifacts or summary: only each job's outcome,
its failure message and its cocotb tests' outcomes and messages, each passed through
hidden.scrub against the hidden files of the assignment commit it was graded with.
"""

from __future__ import annotations

from typing import Any

from chalicelib.errors import NotFound
from chalicelib.models.assignments import Acceptance, Submission
from chalicelib.models.base import fetch_many
from chalicelib.models.jobs import Job
from chalicelib.models.pipelines import Pipeline
from chalicelib.schemas.assignments import (
    GradedJob,
    GradeRow,
    SubmissionPublic,
    TestOutcome,
)
from chalicelib.services.assignments import hidden
from chalicelib.services.assignments.manage import acceptance_of, load
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, page_of
from chalicelib.services.pipelines.runs import job_outcome
from chalicelib.services.pipelines.views import _jobs_of

MAX_TESTS_SHOWN = 200


def _pipelines(project_id: int, submissions: list[Submission]) -> dict[int, Pipeline]:
    keys = [Pipeline(project_id, int(s.pipeline_id)) for s in submissions
            if s.pipeline_id is not None]
    return {p.id: p for p in fetch_many(*keys) if p is not None} if keys else {}


def _status(entry: dict[str, Any], job: Job | None) -> str:
    status = str(entry["status"])
    if job is not None and status == "pending":
        return "running" if job.status == "running" else (
            job_outcome(job.status) if job.status in ("completed", "failed", "cancelled")
            else "pending")
    return status


def grades(caller: Caller, assignment_id: int, limit: int,
           cursor: str | None) -> Page[GradeRow]:
    """The instructor's table: per accepted student, their latest commit's graded outcome
    (per job and per cocotb test, unscrubbed); 404 for anyone but the instructor."""
    assignment = load(assignment_id)
    if assignment.owner_id != caller.id:
        raise NotFound("Assignment not found")
    start = decode_cursor(cursor, {"assignment_id": assignment_id})
    result = Acceptance.query(assignment_id, limit=limit, page_size=limit,
                              last_evaluated_key=start)
    accepted = list(result)
    latest: dict[int, Submission] = {}
    for row in accepted:
        if row.copy_project_id is None:
            continue
        for submission in Submission.query(row.copy_project_id, scan_index_forward=False,
                                           limit=1):
            latest[row.student_id] = submission
    pipelines = _pipelines(assignment.project_id, list(latest.values()))
    jobs = _jobs_of(list(pipelines.values()))
    rows: list[GradeRow] = []
    for row in accepted:
        grade = GradeRow(student_id=row.student_id, username=row.student_username,
                         copy_project_id=row.copy_project_id)
        last = latest.get(row.student_id)
        if last is not None:
            _fill(grade, last, pipelines.get(int(last.pipeline_id or 0)), jobs)
        rows.append(grade)
    return page_of(result, rows)


def _fill(grade: GradeRow, submission: Submission, pipeline: Pipeline | None,
          jobs: dict[int, Job]) -> None:
    grade.commit, grade.received_at = submission.commit, submission.received_at
    grade.late = bool(submission.late)
    if pipeline is None:
        grade.status = "failed" if submission.error else None
        return
    grade.status, grade.pipeline_id = pipeline.status, pipeline.id
    for entry in pipeline.jobs or []:
        job = jobs.get(int(entry["job_id"])) if entry.get("job_id") else None
        grade.jobs[str(entry["name"])] = _status(entry, job)
        for test in _tests(job):
            grade.tests[f"{entry['name']}/{test.get('name')}"] = str(test.get("outcome"))


def _tests(job: Job | None) -> list[dict[str, Any]]:
    tests = (job.summary or {}).get("tests") if job is not None else None
    return [t for t in tests or [] if isinstance(t, dict)][:MAX_TESTS_SHOWN]


def results(caller: Caller, assignment_id: int, limit: int,
            cursor: str | None) -> Page[SubmissionPublic]:
    """The caller's own graded commits, newest first: outcomes and scrubbed messages only;
    404 unless the caller accepted the assignment."""
    assignment = load(assignment_id)
    accepted = acceptance_of(assignment_id, caller.id)
    if accepted is None or accepted.copy_project_id is None:
        raise NotFound("Assignment not found")
    start = decode_cursor(cursor, {"copy_project_id": accepted.copy_project_id})
    result = Submission.query(accepted.copy_project_id, scan_index_forward=False, limit=limit,
                              page_size=limit, last_evaluated_key=start)
    submissions = list(result)
    pipelines = _pipelines(assignment.project_id, submissions)
    jobs = _jobs_of(list(pipelines.values()))
    runs_of: dict[str, tuple[set[str] | None, set[str]]] = {}
    out: list[SubmissionPublic] = []
    for submission in submissions:
        commit = str(submission.assignment_commit or "")
        if commit and commit not in runs_of:
            runs_of[commit] = _hidden_runs(assignment.project_id, commit,
                                           list(assignment.hidden_paths or []))
        runs, names = runs_of[commit] if commit else (set(), set())
        pipeline = pipelines.get(int(submission.pipeline_id or 0))
        shown = SubmissionPublic(id=submission.id, commit=submission.commit,
                                 received_at=submission.received_at, late=bool(submission.late),
                                 status=pipeline.status if pipeline else "failed",
                                 error=hidden.scrub(submission.error, runs))
        for entry in pipeline.jobs if pipeline is not None else []:
            job = jobs.get(int(entry["job_id"])) if entry.get("job_id") else None
            shown.jobs.append(GradedJob(
                name=str(entry["name"]), status=_status(entry, job),
                message=hidden.scrub(entry.get("error") or (job.error_message if job else None),
                                     runs),
                tests=[TestOutcome(name=hidden.show_name(str(t.get("name")), names),
                                   outcome=str(t.get("outcome")),
                                   message=hidden.scrub(t.get("message"), runs))
                       for t in _tests(job)]))
        out.append(shown)
    return page_of(result, out)


def _hidden_runs(project_id: int, commit: str,
                 hidden_paths: list[str]) -> tuple[set[str] | None, set[str]]:
    """The hidden files' runs (hidden.hidden_runs) and the functions they define (the test
    names a student may read)."""
    from chalicelib.services.git.store import open_repo

    store = open_repo(project_id).object_store
    texts = hidden.hidden_texts(store, hidden.commit_tree_id(store, commit), hidden_paths)
    return hidden.hidden_runs(texts), hidden.defined_names(texts)
