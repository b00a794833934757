"""Routes: /api/v1/assignments (graded assignments with hidden tests, their students' copies,
grades and results)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.openapi import Doc
from chalicelib.schemas.assignments import (
    AcceptancePublic,
    AcceptRequest,
    AssignmentCreate,
    AssignmentPublic,
    GradeRow,
    SubmissionPublic,
)
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)


@route(bp, "", methods=["POST"], doc=Doc(
    "Make one of my private projects an assignment; files under hidden_paths are the hidden "
    "tests (never given to students)", AssignmentCreate, AssignmentPublic, status=201))
def create(caller: Caller, body: AssignmentCreate) -> AssignmentPublic:
    from chalicelib.services.assignments import manage

    return manage.create_assignment(caller, body)


@route(bp, "/{assignment_id}", doc=Doc(
    "An assignment (the instructor, or a student who accepted it)", response=AssignmentPublic))
def get(caller: Caller, assignment_id: int) -> AssignmentPublic:
    from chalicelib.services.assignments import manage

    return manage.get_assignment(caller, assignment_id)


@route(bp, "/{assignment_id}/accept", methods=["POST"], doc=Doc(
    "Accept an assignment with its invite code: a private copy of it without the hidden "
    "tests, which the instructor can read", AcceptRequest, AcceptancePublic, status=201,
    errors=(409,)))
def accept(caller: Caller, assignment_id: int, body: AcceptRequest) -> AcceptancePublic:
    from chalicelib.services.assignments import manage

    return manage.accept(caller, assignment_id, body.code)


@route(bp, "/{assignment_id}/grades", doc=Doc(
    "Students x graded jobs and tests: each student's latest commit (instructor)",
    response=GradeRow, is_list=True))
def grades(caller: Caller, assignment_id: int, limit: int,
           cursor: str | None) -> Page[GradeRow]:
    from chalicelib.services.assignments import results

    return results.grades(caller, assignment_id, limit, cursor)


@route(bp, "/{assignment_id}/results", doc=Doc(
    "My graded commits of an assignment, newest first: outcomes and messages (student)",
    response=SubmissionPublic, is_list=True))
def my_results(caller: Caller, assignment_id: int, limit: int,
               cursor: str | None) -> Page[SubmissionPublic]:
    from chalicelib.services.assignments import results

    return results.results(caller, assignment_id, limit, cursor)
