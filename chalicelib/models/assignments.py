"""Assignments (a private project of an instructor with hidden tests), their acceptances (a
student's private copy) and submissions (each commit that moved a copy's main, graded).

Access patterns:
- an assignment by id: GetItem assignments[id]
- is a project an assignment's (it may not be made public): Query assignments.by_project[id]
- one student's acceptance (409 on a second): conditional PutItem acceptances[assignment_id,
  student_id]; the students of an assignment (grades): Query acceptances[assignment_id]
- is a project a copy, and of what (main moved): Query acceptances.by_copy[copy_project_id]
- a copy's submissions, newest first (results; the latest for grades): Query
  submissions[copy_project_id] descending (ids are time-ordered)
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, JSONAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection

from chalicelib.models.base import IdAttribute, Model, table_name


class AssignmentsByProject(GlobalSecondaryIndex["Assignment"]):
    class Meta:
        index_name = "by_project"
        projection = KeysOnlyProjection()

    project_id = IdAttribute(hash_key=True)


class Assignment(Model):
    class Meta:
        table_name = table_name("assignments")

    id = IdAttribute(hash_key=True)
    project_id = IdAttribute()  # the instructor's private project: skeleton + hidden tests
    owner_id = IdAttribute()  # the instructor (the project's owner when it was made one)
    title = UnicodeAttribute()
    hidden_paths = JSONAttribute(default=list)  # ["hidden/", "tb_secret.v"]: folders end in /
    deadline = UnicodeAttribute(null=True)  # ISO-8601 UTC
    created_at = UnicodeAttribute()
    invite_code = UnicodeAttribute()  # what a student accepts with (the instructor hands it out)
    student_messages = UnicodeAttribute(null=True)  # outcome (None) | scrubbed: results.py
    by_project = AssignmentsByProject()


class AcceptancesByCopy(GlobalSecondaryIndex["Acceptance"]):
    class Meta:
        index_name = "by_copy"
        projection = AllProjection()

    copy_project_id = IdAttribute(hash_key=True)


class Acceptance(Model):
    class Meta:
        table_name = table_name("acceptances")

    assignment_id = IdAttribute(hash_key=True)
    student_id = IdAttribute(range_key=True)
    student_username = UnicodeAttribute()
    copy_project_id = IdAttribute(null=True)  # null only while the copy is being made
    created_at = UnicodeAttribute()
    by_copy = AcceptancesByCopy()


class Submission(Model):
    """One commit of a copy's main, graded by the assignment's pipeline (in the assignment's
    project, where only the instructor can read its jobs)."""

    class Meta:
        table_name = table_name("submissions")

    copy_project_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)
    assignment_id = IdAttribute()
    student_id = IdAttribute()
    commit = UnicodeAttribute()
    received_at = UnicodeAttribute()  # when main moved on the server (not the author date)
    late = BooleanAttribute(default=False)
    assignment_commit = UnicodeAttribute(null=True)  # the hidden files' commit
    pipeline_id = IdAttribute(null=True)  # pipelines[assignment project, id]
    error = UnicodeAttribute(null=True)  # why nothing was graded (no pipeline file, ...)
