"""Projects, their members, and the one place that decides who may read or write a project."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, cast

from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound
from chalicelib.ids import is_number_id, with_new_id
from chalicelib.models.accounts import Unique, User
from chalicelib.models.base import condition_failed, fetch_many, transaction_connection, utcnow_iso
from chalicelib.models.projects import PUBLIC_FEED, Member, Project
from chalicelib.schemas.projects import (
    DEFAULT_BRANCH,
    MemberAdd,
    MemberPublic,
    MemberUpdate,
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    Role,
    Visibility,
)
from chalicelib.services import cleanup
from chalicelib.services.accounts import find_user_id, username_key
from chalicelib.services.assignments.guard import refuse_publishing
from chalicelib.services.identity import Caller
from chalicelib.services.paging import Page, decode_cursor, encode_cursor, page_of

Need = Literal["read", "write", "admin"]
_RANK = {"viewer": 1, "editor": 2, "owner": 3}
_NEEDED = {"read": 1, "write": 2, "admin": 3}


@dataclass(frozen=True)
class Access:
    project: Project
    role: str | None  # None: a non-member reading a public project
    also: Any = None  # the extra item authorize() was asked to read with the project


def slugify(name: str, project_id: int = 0) -> str:
    """ASCII slug of a name ("Café Core" -> "cafe-core"). A name with no Latin letters or digits
    ("Проект", "数字设计") gets "project-<its id>", so such names do not all collide."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:60].strip("-")
    return slug or (f"project-{project_id}" if project_id else "project")


def slug_key(owner_id: int, slug: str) -> str:
    return f"slug#{owner_id}#{slug}"


def project_public(project: Project) -> ProjectPublic:
    return ProjectPublic(
        id=project.id, name=project.name, slug=project.slug, description=project.description,
        visibility=cast(Visibility, project.visibility), git_branch=DEFAULT_BRANCH,
        owner_id=project.owner_id, stars_count=int(project.stars_count or 0),
        views_count=int(project.views_count or 0),
        created_at=project.created_at,
        updated_at=project.updated_at, file_count=int(project.file_count or 0),
        total_bytes=int(project.total_bytes or 0), import_url=project.import_url,
        import_job_id=project.import_job_id,
        import_status=project.import_status,  # type: ignore[arg-type]
        forked_from=project.forked_from,
    )


def _load(caller: Caller | None, project_id: int, also: Model | None = None,
          consistent: bool = False) -> tuple[Project | None, Member | None, Any]:
    """The project, the caller's membership and `also` (any item, or None), checking the caller
    first.

    A caller whose user record is not yet checked has it fetched in the same BatchGetItem as the
    project and the membership (one round trip), and so is `also`; otherwise project, then
    membership if needed.
    """
    unverified = caller is not None and not caller.verified
    if unverified or also is not None:
        keys: list[Model] = [Project(project_id)]
        if caller is not None:
            keys.append(Member(project_id, caller.claimed_id))
        if unverified:
            keys.append(User(caller.claimed_id))  # type: ignore[union-attr]
        found = fetch_many(*keys, *([also] if also is not None else []), consistent=consistent)
        if caller is not None and unverified:
            caller.accept(found[2])  # raises Unauthorized before anything is decided on it
        return found[0], found[1] if caller is not None else None, found[-1] if also else None
    try:
        project = Project.get(project_id)
    except Project.DoesNotExist:
        return None, None, None
    if caller is None or caller.id == project.owner_id:
        return project, None, None
    try:
        return project, Member.get(project_id, caller.id), None
    except Member.DoesNotExist:
        return project, None, None


def authorize(caller: Caller | None, project_id: int, need: Need,
              also: Model | None = None, consistent: bool = False) -> Access:
    """Load a project for a caller who needs `need`; private projects are 404 to outsiders.

    `also` (an item's key) is read in the same round trip; `Access.also` is the item or None.
    `consistent`: with `also`, that round trip is a strongly consistent read.
    """
    if not is_number_id(project_id):
        if caller is not None:
            caller.accept(caller.user)  # a revoked token is a 401 whatever it asks for
        raise NotFound("Project not found")
    project, member, extra = _load(caller, project_id, also, consistent)
    if project is None:
        raise NotFound("Project not found")
    role: str | None = None
    if caller is not None:
        role = "owner" if caller.id == project.owner_id else (str(member.role) if member else None)
    public = project.visibility == "public"
    if role is None and not public:
        raise NotFound("Project not found")
    rank = _RANK.get(role or "", 1 if public else 0)
    if rank < _NEEDED[need]:
        raise Forbidden("You do not have permission to change this project")
    return Access(project=project, role=role, also=extra)


def create_project(caller: Caller, data: ProjectCreate, *,
                   fork_of: Project | None = None) -> ProjectPublic:
    """A new project owned by the caller; its id is drawn until the transaction finds it free.
    `fork_of`: the project it copies (a fork records it, and the private project whose content
    it then holds, in the same write); raises Forbidden for a public copy of a private project
    the caller does not own."""
    origin = private_origin_of(fork_of) if fork_of is not None else None
    if data.visibility == "public":
        check_may_publish(caller, origin)
    forked_from = fork_of.id if fork_of is not None else None
    return project_public(with_new_id(
        lambda project_id: _create_project(caller, data, project_id, forked_from, origin),
        _id_taken))


def _id_taken(e: Exception) -> bool:
    """The create transaction failed because the drawn project id exists (its item is second)."""
    return isinstance(e, TransactWriteError) and _condition_failed(e, 1) and \
        not _condition_failed(e, 0)


def _create_project(caller: Caller, data: ProjectCreate, project_id: int,
                    forked_from: int | None, origin: int | None) -> Project:
    now = utcnow_iso()
    project = Project(
        id=project_id, name=data.name, slug=slugify(data.name, project_id),
        description=data.description,
        visibility=data.visibility, owner_id=caller.id, created_at=now, updated_at=now,
        feed=PUBLIC_FEED if data.visibility == "public" else None, file_count=0, total_bytes=0,
        forked_from=forked_from, private_origin=origin,
    )
    owner = Member(project.id, caller.id, username=caller.user.username, role="owner",
                   created_at=now)
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(Unique(slug_key(caller.id, project.slug), owner_id=project.id),
                    condition=Unique.key.does_not_exist())
            tx.save(project, condition=Project.id.does_not_exist())
            tx.save(owner)
    except TransactWriteError as e:
        if _condition_failed(e, 0):
            raise Conflict(f"You already have a project with the slug '{project.slug}'") from e
        raise
    return project


def private_origin_of(source: Project) -> int | None:
    """The private project whose content a copy of `source` holds (None: nothing private)."""
    if source.private_origin:
        return int(source.private_origin)
    return None if source.visibility == "public" else int(source.id)


def check_may_publish(caller: Caller, private_origin: int | None) -> None:
    """Raise Forbidden unless the caller may make public a project holding a copy of the
    private project `private_origin`: its owner may, and anyone once it is public itself.

    Reading a private project lets a collaborator keep a copy, not publish what its owner kept
    private; the rule holds at fork time and at every later visibility change.
    """
    if not private_origin:
        return
    try:
        origin: Project | None = Project.get(private_origin)
    except Project.DoesNotExist:
        origin = None
    if origin is not None and (origin.owner_id == caller.id or origin.visibility == "public"):
        return
    raise Forbidden("This project holds a copy of a private project; only that project's owner "
                    "can make it public")


def _condition_failed(e: TransactWriteError, index: int) -> bool:
    """Whether the transaction's item at `index`, in the order PynamoDB sends them (condition
    checks, deletes, puts, updates), failed its condition."""
    reasons = e.cancellation_reasons or []
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code == "ConditionalCheckFailed"


def update_project(caller: Caller, project_id: int, data: ProjectUpdate) -> ProjectPublic:
    project = authorize(caller, project_id, "admin").project
    old_slug = project.slug
    changes = data.model_dump(exclude_unset=True)
    changes.pop("git_branch", None)  # validated: main, which it already is
    if "name" in changes and changes["name"] is None:
        raise BadRequest("name cannot be null")
    if "visibility" in changes and changes["visibility"] is None:
        raise BadRequest("visibility cannot be null")
    if changes.get("visibility") == "public" and project.visibility != "public":
        check_may_publish(caller, project.private_origin)
        refuse_publishing(project.id)
    for field, value in changes.items():
        setattr(project, field, value)
    project.slug = slugify(project.name, project.id)
    project.feed = PUBLIC_FEED if project.visibility == "public" else None
    project.updated_at = utcnow_iso()
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            if project.slug != old_slug:
                tx.save(Unique(slug_key(caller.id, project.slug), owner_id=project.id),
                        condition=Unique.key.does_not_exist())
                tx.delete(Unique(slug_key(caller.id, old_slug), owner_id=project.id))
            # Only the edited attributes: a whole-item save would put back the file counters as
            # they were read, losing a file write that landed meanwhile (and its quota).
            tx.update(project, actions=_edit_actions(project),
                      condition=Project.id.exists() & (Project.slug == old_slug))
    except TransactWriteError as e:
        # PynamoDB sends deletes before puts: the reasons are [old slug, new slug, project].
        if project.slug != old_slug and _condition_failed(e, 1):
            raise Conflict(f"You already have a project with the slug '{project.slug}'") from e
        raise Conflict("The project changed meanwhile; retry") from e
    return project_public(project)


def _edit_actions(project: Project) -> list[Action]:
    actions: list[Action] = [
        Project.name.set(project.name), Project.slug.set(project.slug),
        Project.visibility.set(project.visibility), Project.updated_at.set(project.updated_at),
    ]
    for attribute, value in ((Project.description, project.description),
                             (Project.feed, project.feed)):
        actions.append(attribute.remove() if value is None else attribute.set(value))
    return actions


def delete_project(caller: Caller, project_id: int) -> None:
    project = authorize(caller, project_id, "admin").project
    with TransactWrite(connection=transaction_connection()) as tx:
        tx.delete(project)
        tx.delete(Unique(slug_key(project.owner_id, project.slug), owner_id=project.id))
    # The project is gone for every reader now; what hung off it is removed next.
    cleanup.purge_project(project.id)


def get_project(caller: Caller | None, project_id: int, client: str = "") -> ProjectPublic:
    """A project the caller may read; counts the view (at most once per viewer and hour, see
    services/views.py) from a mark read in the same round trip as the project."""
    from chalicelib.services import views

    viewer = views.viewer_key(caller.claimed_id if caller is not None else None, client)
    access = authorize(caller, project_id, "read", also=views.mark(project_id, viewer))
    project = access.project
    if project.import_status == "importing":
        _settle_import(project)
    if views.count(project_id, viewer, access.also):
        project.views_count = int(project.views_count or 0) + 1
    return project_public(project)


def _settle_import(project: Project) -> None:
    """An import whose job ended without the runner recording it (cancelled while pending,
    dead-lettered) shows the job's outcome; one GetItem, only while a project is importing."""
    from pynamodb.exceptions import UpdateError

    from chalicelib.models.jobs import COMPLETED, TERMINAL, Job

    try:
        job = Job.get(project.id, project.import_job_id or "-")
    except Job.DoesNotExist:
        job = None
    if job is not None and job.status not in TERMINAL:
        return
    outcome = "completed" if job is not None and job.status == COMPLETED else "failed"
    try:
        project.update(actions=[Project.import_status.set(outcome)],
                       condition=Project.import_status == "importing",
                       add_version_condition=False)
    except UpdateError:
        pass  # the runner recorded it meanwhile
    project.import_status = outcome


def list_my_projects(caller: Caller, limit: int, cursor: str | None) -> Page[ProjectPublic]:
    start = decode_cursor(cursor, {"user_id": caller.id})
    result = Member.by_user.query(caller.id, scan_index_forward=False, limit=limit,
                                  page_size=limit, last_evaluated_key=start)
    ids = [m.project_id for m in result]
    found = {p.id: p for p in Project.batch_get(ids)} if ids else {}
    items = [project_public(found[i]) for i in ids if i in found]
    return Page(items=items, next_cursor=encode_cursor(result.last_evaluated_key))


def list_public_projects(limit: int, cursor: str | None) -> Page[ProjectPublic]:
    start = decode_cursor(cursor, {"feed": PUBLIC_FEED})
    result = Project.public_feed.query(PUBLIC_FEED, scan_index_forward=False, limit=limit,
                                       page_size=limit, last_evaluated_key=start)
    return page_of(result, (project_public(p) for p in result))


def _member_public(member: Member) -> MemberPublic:
    return MemberPublic(user_id=member.user_id, username=member.username,
                        role=cast(Role, member.role),
                        created_at=member.created_at)


def list_members(caller: Caller | None, project_id: int, limit: int,
                 cursor: str | None) -> Page[MemberPublic]:
    authorize(caller, project_id, "read")
    start = decode_cursor(cursor, {"project_id": project_id})
    result = Member.query(project_id, limit=limit, page_size=limit, last_evaluated_key=start)
    return page_of(result, (_member_public(m) for m in result))


def _not_a_graded_copy(project_id: int) -> None:
    """A student's copy of an assignment keeps the members accepting made (the student, the
    instructor as viewer): 403 otherwise, so a student cannot drop the instructor or let others
    push graded commits under their name (services/assignments)."""
    from chalicelib.models.assignments import Acceptance

    if next(iter(Acceptance.by_copy.query(project_id, limit=1)), None) is not None:
        raise Forbidden("The members of a student's copy of an assignment are set by the "
                        "assignment")


def add_member(caller: Caller, project_id: int, data: MemberAdd) -> MemberPublic:
    authorize(caller, project_id, "admin")
    _not_a_graded_copy(project_id)
    user_id = find_user_id(username_key(data.username or ""))
    user = User.get(user_id) if user_id else None
    if user is None:
        raise NotFound("User not found")
    member = Member(project_id, user.id, username=user.username, role=data.role,
                    created_at=utcnow_iso())
    try:
        member.save(condition=Member.user_id.does_not_exist())
    except PutError as e:
        if condition_failed(e):
            raise Conflict("User is already a member of this project") from e
        raise
    return _member_public(member)


def _existing_member(project_id: int, user_id: int) -> Member:
    try:
        return Member.get(project_id, user_id)
    except Member.DoesNotExist as e:
        raise NotFound("Member not found") from e


def update_member(caller: Caller, project_id: int, user_id: int, data: MemberUpdate) -> MemberPublic:
    authorize(caller, project_id, "admin")
    _not_a_graded_copy(project_id)
    member = _existing_member(project_id, user_id)
    if member.role == "owner":
        raise BadRequest("The owner's role cannot be changed")
    member.update(actions=[Member.role.set(data.role)], condition=Member.user_id.exists())
    return _member_public(member)


def remove_member(caller: Caller, project_id: int, user_id: int) -> None:
    # A member may leave on their own; otherwise only the owner removes people.
    need: Need = "read" if caller.id == user_id else "admin"
    authorize(caller, project_id, need)
    if caller.id != user_id:
        _not_a_graded_copy(project_id)
    member = _existing_member(project_id, user_id)
    if member.role == "owner":
        raise BadRequest("The owner cannot be removed from the project")
    member.delete()
