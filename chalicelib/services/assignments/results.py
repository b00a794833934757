"""What grading shows: the instructor's table of students x tests (each student's latest
commit), and a student's own submissions with outcomes and scrubbed, capped messages.

A student never gets a graded job's id, log, artifacts or summary: only each job's outcome
and its cocotb tests' names (those the hidden files define) and outcomes. What a failure says
depends on the assignment's `student_messages`:

- `outcome` (the default): which step failed and how (its exit code or the limit it hit), from
  the runner's own step records; no tool text. The student's design runs beside the hidden
  tests, so it can read them and print them encoded (hex, say) into any message a tool or a
  testbench writes, which no scrub of the hidden text can recognise.
- `scrubbed`: the job's and the tests' messages too, capped and passed through hidden.scrub
  against the hidden files of the assignment commit it was graded with. For a class the
  instructor trusts with that channel.
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
NOT_GRADED = "the commit could not be graded; your instructor can see why"


def step_outcome(status: str, job: Job | None) -> str | None:
    """A failed graded job in the runner's own words only: the first step that failed and how
    ("step 'simulate' exited with 1", "step 'compile': CPU time limit of 10 s exceeded"); None
    unless the job failed or was cancelled. Step names come from the runner's plans (compile, simulate,
    ...), exit codes and limits from its sandbox: nothing the student's design prints."""
    if status not in ("failed", "cancelled"):
        return None
    if status == "cancelled":
        return "cancelled (a job it needs did not pass, or the pipeline was cancelled)"
    for step in (job.steps if job is not None else None) or []:
        if not isinstance(step, dict):
            continue
        name, code, limit = str(step.get("name")), step.get("exit_code"), step.get("limit")
        if limit:
            return f"step '{name}': {limit}"
        if code not in (0, None):
            return f"step '{name}' exited with {int(code)}"
    return "failed before its tools ran" if job is None or not job.steps else "failed"


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
    tools_text = assignment.student_messages == "scrubbed"
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
                                 error=(hidden.scrub(submission.error, runs) if tools_text
                                        else NOT_GRADED if submission.error else None))
        for entry in pipeline.jobs if pipeline is not None else []:
            job = jobs.get(int(entry["job_id"])) if entry.get("job_id") else None
            status = _status(entry, job)
            shown.jobs.append(GradedJob(
                name=str(entry["name"]), status=status,
                message=(hidden.scrub(entry.get("error") or (job.error_message if job else None),
                                      runs) if tools_text else step_outcome(status, job)),
                tests=[TestOutcome(name=hidden.show_name(str(t.get("name")), names),
                                   outcome=str(t.get("outcome")),
                                   message=hidden.scrub(t.get("message"), runs) if tools_text
                                   else None)
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
