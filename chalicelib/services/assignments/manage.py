"""Making a project an assignment and accepting one (a student's private copy without the
hidden files)."""

from __future__ import annotations

import hmac
import secrets
import stat

from aws_lambda_powertools import Logger
from pynamodb.exceptions import PutError

from chalicelib.errors import Conflict, Forbidden, NotFound, Unprocessable
from chalicelib.ids import with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.assignments import Acceptance, Assignment
from chalicelib.models.base import condition_failed, id_taken, utcnow_iso
from chalicelib.models.projects import Member, Project
from chalicelib.schemas.assignments import AcceptancePublic, AssignmentCreate, AssignmentPublic
from chalicelib.schemas.projects import ProjectCreate
from chalicelib.services import projects
from chalicelib.services.assignments.hidden import commit_tree_id, is_hidden, tree_files
from chalicelib.services.identity import Caller

logger = Logger(service=SERVICE, child=True)

INVITE_BYTES = 18  # the code a student needs to accept (ids are time-ordered, so guessable)


def load(assignment_id: int) -> Assignment:
    """The assignment; NotFound when there is none."""
    try:
        return Assignment.get(assignment_id)
    except Assignment.DoesNotExist as e:
        raise NotFound("Assignment not found") from e


def acceptance_of(assignment_id: int, student_id: int) -> Acceptance | None:
    try:
        return Acceptance.get(assignment_id, student_id, consistent_read=True)
    except Acceptance.DoesNotExist:
        return None


def public(assignment: Assignment, *, instructor: bool,
           copy_project_id: int | None = None) -> AssignmentPublic:
    """What a caller sees: the instructor also where the project and the hidden paths are,
    and the invite code students accept with."""
    seen = AssignmentPublic(id=assignment.id, title=assignment.title,
                            deadline=assignment.deadline, created_at=assignment.created_at,
                            student_messages=("scrubbed" if assignment.student_messages
                                              == "scrubbed" else "outcome"),
                            copy_project_id=copy_project_id)
    if instructor:
        seen.project_id, seen.owner_id = assignment.project_id, assignment.owner_id
        seen.hidden_paths = list(assignment.hidden_paths or [])
        seen.invite_code = assignment.invite_code
    return seen


def create_assignment(caller: Caller, data: AssignmentCreate) -> AssignmentPublic:
    """Make the caller's own private project an assignment.

    Errors: 404 when the caller cannot read the project, 403 when they do not own it, 422 when
    it is public (its git and files would serve the hidden tests to anyone).
    """
    project = projects.authorize(caller, data.project_id, "read").project
    if project.owner_id != caller.id:
        raise Forbidden("only the project's owner can make it an assignment")
    if project.visibility != "private":
        raise Unprocessable("an assignment's project must be private: a public project serves "
                            "its hidden tests to anyone (make it private first)")

    def create(assignment_id: int) -> Assignment:
        assignment = Assignment(assignment_id, project_id=project.id, owner_id=caller.id,
                                title=data.title, hidden_paths=list(data.hidden_paths),
                                deadline=data.deadline, created_at=utcnow_iso(),
                                invite_code=secrets.token_urlsafe(INVITE_BYTES),
                                student_messages=data.student_messages)
        assignment.save(condition=Assignment.id.does_not_exist())
        return assignment

    return public(with_new_id(create, id_taken), instructor=True)


def get_assignment(caller: Caller, assignment_id: int) -> AssignmentPublic:
    """The instructor's view, or a student's who accepted it; 404 for anyone else."""
    assignment = load(assignment_id)
    if assignment.owner_id == caller.id:
        return public(assignment, instructor=True)
    accepted = acceptance_of(assignment_id, caller.id)
    if accepted is None or accepted.copy_project_id is None:
        raise NotFound("Assignment not found")
    return public(assignment, instructor=False, copy_project_id=accepted.copy_project_id)


def accept(caller: Caller, assignment_id: int, code: str) -> AcceptancePublic:
    """Give the caller a private copy of the assignment's main tree without the hidden files;
    the instructor reads it as a viewer.

    Errors: 404 for an unknown assignment or a wrong code (the same answer, so a code cannot be
    told from an id), 409 when the caller accepted it before, 422 for the instructor.
    """
    assignment = load(assignment_id)
    if not hmac.compare_digest(code.encode(), str(assignment.invite_code).encode()):
        raise NotFound("Assignment not found")
    if assignment.owner_id == caller.id:
        raise Unprocessable("the instructor cannot accept their own assignment")
    now = utcnow_iso()
    row = Acceptance(assignment_id, caller.id, student_username=caller.user.username,
                     created_at=now)
    try:
        row.save(condition=Acceptance.student_id.does_not_exist())
    except PutError as e:
        if condition_failed(e):
            raise Conflict("You have already accepted this assignment") from e
        raise
    made: list[int] = []
    try:
        copy_id = _make_copy(caller, assignment, row, made)
    except Exception:
        logger.exception("assignment copy not made", extra={"assignment_id": assignment_id})
        _undo(caller, row, made)
        raise
    return AcceptancePublic(assignment_id=assignment_id, student_id=caller.id,
                            copy_project_id=copy_id, created_at=now)


def _make_copy(caller: Caller, assignment: Assignment, row: Acceptance, made: list[int]) -> int:
    from chalicelib.models.accounts import User

    source = Project.get(assignment.project_id)
    # fork_of records the assignment's project as the copy's private origin: only its owner
    # could make a copy public (services/projects.check_may_publish).
    created = projects.create_project(caller, ProjectCreate(
        name=f"{assignment.title[:80]} {assignment.id}", visibility="private",
        description=f"my copy of the assignment '{assignment.title[:100]}'"), fork_of=source)
    made.append(created.id)
    instructor = User.get(assignment.owner_id)
    Member(created.id, instructor.id, username=instructor.username, role="viewer",
           created_at=utcnow_iso()).save()
    # Set before main first moves: the move's hook (grading.on_main_moved) looks the copy up.
    row.update(actions=[Acceptance.copy_project_id.set(created.id)])
    _first_commit(caller, assignment, created.id)
    return created.id


def _first_commit(caller: Caller, assignment: Assignment, copy_id: int) -> None:
    """The copy's first commit: the assignment's main tree without its hidden paths, written
    object by object into the copy's store (a fork would copy the history, which holds every
    version of the hidden files)."""
    from dulwich.objects import Tree

    from chalicelib.services.git.commits import commit_on_main, identity_of
    from chalicelib.services.git.store import open_repo
    from chalicelib.services.git.sync import sync_files

    source = open_repo(assignment.project_id)
    head = source.head_commit()
    if head is None:
        return  # an empty project: the copy starts empty too
    files = tree_files(source.object_store, commit_tree_id(source.object_store, head.decode()))
    # Regular files and links only (a submodule's commit is not in the store to copy).
    kept = {p: entry for p, entry in files.items()
            if not is_hidden(p, list(assignment.hidden_paths or []))
            and (stat.S_ISREG(entry[0]) or stat.S_ISLNK(entry[0]))}
    repo = open_repo(copy_id)
    for _, sha in kept.values():
        repo.object_store.add_object(source.object_store[sha])

    def build(base: Tree) -> list[tuple[bytes, int | None, bytes | None]]:
        return [(p.encode(), mode, sha) for p, (mode, sha) in sorted(kept.items())]

    commit = commit_on_main(repo, build, identity_of(caller),
                            f"Start of the assignment '{assignment.title[:100]}'")
    if commit is not None:
        sync_files(repo, None, commit_tree_id(repo.object_store, commit.decode()))


def _undo(caller: Caller, row: Acceptance, made: list[int]) -> None:
    """Best effort: a failed accept leaves no acceptance (so it can be retried) and no copy."""
    try:
        for copy_id in made:
            projects.delete_project(caller, copy_id)
        row.delete()
    except Exception:  # noqa: BLE001 - the original error is the one the caller needs
        logger.exception("failed accept not undone", extra={"student_id": caller.id})
