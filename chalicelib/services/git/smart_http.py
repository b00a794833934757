"""Git's smart HTTP protocol (stateless RPC) for a project: clone and fetch, and validated pushes.

Each request is answered whole from its body: the ref advertisement, an upload-pack
negotiation, or a receive-pack (commands + pack). dulwich speaks the protocol; this module
decides who may do what and what a push may change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

from aws_lambda_powertools import Logger
from dulwich.errors import GitProtocolError, HangupException
from dulwich.graph import can_fast_forward
from dulwich.objects import Commit, ObjectID
from dulwich.protocol import SIDE_BAND_CHANNEL_PROGRESS, ReceivableProtocol
from dulwich.refs import Ref
from dulwich.server import ReceivePackHandler, UploadPackHandler

from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, DomainError, Forbidden, NotFound, Unauthorized
from chalicelib.logs import SERVICE
from chalicelib.services import pipelines
from chalicelib.services.git import revisions
from chalicelib.services.git.quota import GitQuotaExceeded
from chalicelib.services.git.rules import NewHistory, commit_total_errors, tree_diff, validate
from chalicelib.services.git.store import (
    DEFAULT_BRANCH,
    HEAD,
    ZERO_SHA,
    ProjectBackend,
    ProjectRepo,
    open_repo,
)
from chalicelib.services.git.sync import sync_files
from chalicelib.services.identity import Caller, authenticate
from chalicelib.services.projects import Access, Need, authorize

logger = Logger(service=SERVICE, child=True)

UPLOAD_PACK = "git-upload-pack"
RECEIVE_PACK = "git-receive-pack"
SERVICES = {UPLOAD_PACK: "read", RECEIVE_PACK: "write"}
REALM = 'Basic realm="a6hub"'


class GitAuthRequired(DomainError):
    """401 with a Basic challenge: git then retries with the credentials it has."""

    status_code = 401

    def __init__(self, detail: str = "Authentication required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": REALM})


def git_caller(authorization: str | None) -> Caller | None:
    """The caller of a git request: HTTP Basic with a personal API token as the password."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as e:
            raise GitAuthRequired("Malformed Basic credentials") from e
        secret = decoded.partition(":")[2]
    elif scheme.lower() == "bearer":
        secret = value.strip()
    else:
        raise GitAuthRequired("Use HTTP Basic with a personal API token as the password")
    if not secret:
        raise GitAuthRequired("The password must be a personal API token")
    try:
        return authenticate(f"Bearer {secret}", required=True)
    except Unauthorized as e:
        raise GitAuthRequired(f"Invalid credentials: {e.detail}") from e


def git_access(caller: Caller | None, project_id: int, need: Need) -> Access:
    """projects.authorize, except that an anonymous caller is asked for credentials."""
    try:
        return authorize(caller, project_id, need)
    except (NotFound, Forbidden):
        if caller is None:
            raise GitAuthRequired() from None
        raise


def service_need(service: str | None) -> Need:
    if service not in SERVICES:
        raise Forbidden("Only the smart HTTP protocol is served: "
                        "service must be git-upload-pack or git-receive-pack")
    need: Need = "read" if SERVICES[service] == "read" else "write"
    return need


def advertise(caller: Caller | None, project_id: int, service: str) -> bytes:
    access = git_access(caller, project_id, service_need(service))
    out = BytesIO()
    proto = ReceivableProtocol(BytesIO().read, out.write)
    proto.write_pkt_line(b"# service=" + service.encode("ascii") + b"\n")
    proto.write_pkt_line(None)
    _handler(service, access, proto, advertise_refs=True).handle()
    return out.getvalue()


MAX_HAVES = 128  # per request: each is an S3 lookup (git's client stops after 256 unanswered)


def serve(caller: Caller | None, project_id: int, service: str, body: bytes) -> bytes:
    access = git_access(caller, project_id, service_need(service))
    out = BytesIO()
    repo = open_repo(access.project.id)
    if service == UPLOAD_PACK:
        body = bounded_negotiation(repo, body)
    proto = ReceivableProtocol(BytesIO(body).read, out.write)
    try:
        _handler(service, access, proto, advertise_refs=False, repo=repo).handle()
    except (GitProtocolError, HangupException) as e:
        raise BadRequest(f"git protocol error: {e}") from e
    return out.getvalue()


def bounded_negotiation(repo: ProjectRepo, body: bytes) -> bytes:
    """An upload-pack request with at most MAX_HAVES `have` lines, their existence looked up
    side by side (dulwich asks the store about each one in turn: one S3 request each).

    A dropped have only means that the pack may hold objects the client already has; 2,000
    random haves used to cost 9.3 s. A body that is not pkt-lines is left to dulwich to refuse.
    """
    lines: list[bytes] = []
    pos = 0
    try:
        while pos < len(body):
            size = int(body[pos:pos + 4], 16)
            end = pos + (size if size > 3 else 4)
            lines.append(body[pos:end])
            pos = end
    except ValueError:
        return body
    haves = [line for line in lines if line[4:9] == b"have "]
    if len(haves) > MAX_HAVES:
        dropped = set(map(id, haves[MAX_HAVES:]))
        lines = [line for line in lines if id(line) not in dropped]
        haves = haves[:MAX_HAVES]
        body = b"".join(lines)
    repo.object_store.know_existence([h[9:49] for h in haves])
    return body


def _handler(service: str, access: Access, proto: ReceivableProtocol, *, advertise_refs: bool,
             repo: ProjectRepo | None = None) -> UploadPackHandler | ReceivePackHandler:
    repo = repo or open_repo(access.project.id)
    backend = ProjectBackend(repo)
    if service == UPLOAD_PACK:
        # dulwich asks whether each ref's object exists, one at a time: ask them side by side
        # (2,000 refs made every advertisement cost 1.4 s).
        repo.object_store.know_existence(repo.refs.targets())
        return UploadPackHandler(backend, [b"/"], proto, stateless_rpc=True,  # type: ignore[list-item]
                                 advertise_refs=advertise_refs)
    return ProjectReceivePack(backend, proto, access, advertise_refs=advertise_refs)


Command = tuple[bytes, bytes, bytes]  # old sha, new sha, ref name


class ProjectReceivePack(ReceivePackHandler):
    """dulwich's receive-pack with our push policy instead of plain ref writes."""

    def __init__(self, backend: ProjectBackend, proto: ReceivableProtocol, access: Access,
                 *, advertise_refs: bool) -> None:
        super().__init__(backend, [b"/"], proto, stateless_rpc=True,  # type: ignore[list-item]
                         advertise_refs=advertise_refs)
        self.access = access
        self.repo: ProjectRepo  # type: ignore[assignment]

    def _say(self, message: str) -> None:
        if self._client_capabilities is not None and self.has_capability(b"side-band-64k"):
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, message.encode() + b"\n")

    def _apply_pack(self, refs: list[Any]) -> Iterator[tuple[bytes, bytes]]:
        if any(new != ZERO_SHA for _, new, _ in refs):
            try:
                self.repo.object_store.add_thin_pack(
                    self.proto.read, getattr(self.proto, "recv", None),
                    max_input_size=get_settings().max_request_bytes)
            except Exception as e:  # noqa: BLE001 - any bad pack is reported to the client
                yield (b"unpack", str(e).replace("\n", " ").encode("utf-8", "replace") or b"error")
                return
        yield (b"unpack", b"ok")
        yield from apply_push(self.repo, self.access, refs, self._say)


def apply_push(repo: ProjectRepo, access: Access, commands: list[Command],
               say: Callable[[str], None]) -> Iterator[tuple[bytes, bytes]]:
    """Decide every command, then apply all or none; yields (ref, b"ok" | reason).

    Only the new objects reachable from the pushed refs are stored, and only once every one of
    them passed `rules.NewHistory` (whatever commit it belongs to).
    """
    repo.refs.refresh()
    main = repo.head_commit()
    history = NewHistory(repo)
    reasons = _reasons(repo, access, commands, history)
    if main is None and not any(ref == DEFAULT_BRANCH for _, _, ref in commands):
        # git (protocol v0) names a clone's first branch after the client's own default;
        # only main reaches the files API, so say so instead of silently taking "master".
        reasons = [r or "the project is empty: push main first (git push origin HEAD:main)"
                   for r in reasons]
    dropped = 0 if any(reasons) else _store(repo, history)
    if isinstance(dropped, str):  # over the git storage quota: every ref is refused
        reasons = [dropped] * len(commands)
    if any(reasons):
        yield from _refuse(repo, commands, reasons, say)
        return
    if dropped:
        say(f"note: {dropped} objects no pushed ref points at were not stored")
    for old, new, ref in commands:
        if new == ZERO_SHA:
            moved = repo.refs.remove_if_equals(ref, old)
        else:
            moved = repo.refs.set_if_equals(ref, old, new)
        if not moved:
            say(f"error: {ref.decode()} was updated by someone else meanwhile; fetch first")
            yield ref, b"fetch first"
            continue
        if ref == DEFAULT_BRANCH:
            _follow_main(repo, old, new, say)
        yield ref, b"ok"


def _refuse(repo: ProjectRepo, commands: list[Command], reasons: list[str | None],
            say: Callable[[str], None]) -> Iterator[tuple[bytes, bytes]]:
    """Refuse the whole push (nothing stored): each ref with its reason, or its neighbour's."""
    for (_, _, ref), reason in zip(commands, reasons, strict=True):
        if reason:
            say(f"error: {ref.decode()}: {reason}")
        yield ref, (reason or "refused because another ref of this push was refused").encode()
    repo.object_store.discard()


def _store(repo: ProjectRepo, history: NewHistory) -> int | str:
    """Store what the accepted refs reach: how many other objects were dropped, or why nothing
    was stored (the project's git storage quota)."""
    try:
        return repo.object_store.flush(keep=history.reached)
    except GitQuotaExceeded as e:
        return str(e.detail)


def _reasons(repo: ProjectRepo, access: Access, commands: list[Command],
             history: NewHistory) -> list[str | None]:
    """Why each command is refused (None: accepted): names and counts, the new objects, then
    each ref's own rules (fast-forward, the tree against the files API's rules and quotas)."""
    # A ref stored before names were checked may still be deleted.
    names = [None if new == ZERO_SHA and repo.refs.read_loose_ref(ref) else ref_name_error(ref)
             for _, new, ref in commands]
    reasons = _ref_count_errors(repo, commands, names)
    if any(reasons):
        return reasons
    problems = history.check([new for _, new, _ in commands if new != ZERO_SHA])
    problems = problems or commit_total_errors(repo, access.project, history)
    if problems:
        return ["; ".join(problems) if new != ZERO_SHA else None for _, new, _ in commands]
    main = repo.head_commit()
    main_tree = _commit(repo, main).tree if main else None
    return [_refusal(repo, access, main_tree, command) for command in commands]


def _follow_main(repo: ProjectRepo, old: bytes, new: bytes, say: Callable[[str], None]) -> None:
    """The push is in (main moved); bring the files table along, reporting but not failing."""
    old_tree = _commit(repo, old).tree if old != ZERO_SHA else None
    try:
        sync_files(repo, old_tree, _commit(repo, new).tree)
    except Exception:  # noqa: BLE001 - the ref moved: the push itself succeeded
        logger.exception("files table did not follow a push", extra={"project_id": repo.project_id})
        say("warning: the push is in, but the files view did not fully update; "
            "the next change to those files brings it up to date")


def _commit(repo: ProjectRepo, sha: bytes) -> Commit:
    """The commit `sha` names (annotated tags peeled); KeyError when there is none."""
    found = revisions.peel(repo, sha)
    if found is None:
        raise KeyError(sha)
    return found


MAX_REF_BYTES = 255
MAX_REFS_PER_PROJECT = 200  # every advertisement lists them all: 2,000 made each one cost 1.4 s
MAX_REF_UPDATES_PER_PUSH = 100


def ref_name_error(ref: bytes) -> str | None:
    """Why git would refuse `ref` as a branch or tag name, or None.

    git's rules (git-check-ref-format(1), as dulwich.refs.check_ref_format implements them): no
    component starting with "." or ending with ".lock", no "..", no control characters, space,
    "~", "^", ":", "?", "*", "[" or "\\", no "@{", not "@", no empty component or trailing "/"
    or "."; and ours: under refs/heads/ or refs/tags/, UTF-8, at most 255 bytes.
    """
    from dulwich.refs import check_ref_format

    if not (ref.startswith(b"refs/heads/") or ref.startswith(b"refs/tags/")):
        return "only branches and tags can be pushed"
    if len(ref) > MAX_REF_BYTES:
        return f"the ref name is longer than {MAX_REF_BYTES} bytes"
    try:
        ref.decode("utf-8")
    except UnicodeDecodeError:
        return "the ref name is not UTF-8"
    if not check_ref_format(Ref(ref)) or ref == b"refs/heads/HEAD":
        return "not a valid ref name (see git check-ref-format)"
    return None


def _ref_count_errors(repo: ProjectRepo, commands: list[Command],
                      reasons: list[str | None]) -> list[str | None]:
    """Refs count toward the project's limits: per push, and in all."""
    if len(commands) > MAX_REF_UPDATES_PER_PUSH:
        return [f"a push may update at most {MAX_REF_UPDATES_PER_PUSH} refs"] * len(commands)
    existing = set(repo.refs.allkeys()) - {HEAD}
    after = (existing | {ref for _, new, ref in commands if new != ZERO_SHA}) - {
        ref for _, new, ref in commands if new == ZERO_SHA}
    if len(after) > MAX_REFS_PER_PROJECT:
        return [r or (f"the project would have {len(after)} branches and tags, more than the "
                      f"limit of {MAX_REFS_PER_PROJECT}" if ref not in existing else None)
                for r, (_, _, ref) in zip(reasons, commands, strict=True)]
    return reasons


def _refusal(repo: ProjectRepo, access: Access, main_tree: bytes | None,
             command: Command) -> str | None:
    try:
        return _decide(repo, access, main_tree, command)
    except KeyError as e:  # an object the check above did not reach: refuse, never a 500
        return f"the push refers to an object the server does not have ({e})"


def _decide(repo: ProjectRepo, access: Access, main_tree: bytes | None,
            command: Command) -> str | None:
    old, new, ref = command
    current = repo.refs.read_loose_ref(ref) or ZERO_SHA
    if current != old:
        return "fetch first"
    if new == ZERO_SHA:
        return "the default branch cannot be deleted" if ref == DEFAULT_BRANCH else None
    try:
        commit = _commit(repo, new)
    except KeyError:
        return "the pushed object is not a commit"
    branch = ref.startswith(b"refs/heads/")
    if branch and old != ZERO_SHA and not can_fast_forward(repo, ObjectID(old), ObjectID(new)):
        if access.role != "owner":
            return "non-fast-forward; only the project owner may force-push"
    problems = validate(repo, access.project,
                                tree_diff(repo, main_tree, commit.tree),
                                count_limits=True)  # a branch could be restored onto main
    if not problems and ref == DEFAULT_BRANCH:
        problems = pipelines.pipeline_file_problems(repo.object_store, commit.tree)
    return "; ".join(problems) if problems else None
