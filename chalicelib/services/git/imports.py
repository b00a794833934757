"""Projects created from a git URL: the API starts an `import` job; the runner fetches into the store.

POST /projects/import checks the URL (form and resolution, `url_guard`), creates the project
marked `importing`, and queues a job of type `import` on it. The runner (not sandboxed: this is
our code, dulwich's client) calls `fetch_into`: it connects only to checked addresses, fetches
one branch with its whole history into the project's S3 object store under size and time caps,
validates the tip like a push to an empty project, moves main from nothing to the tip with a
conditional write, and fills the files table (`sync`, as a push does). Progress goes to the
job's log; a failure ends the job `failed` with the reason and the project `import_status`
`failed`. The chosen branch becomes main; the remote's other branches and tags (up to 100)
are kept beside it when their commit passes the same path checks a push of them would.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.config import get_settings
from chalicelib.errors import ServiceUnavailable, TooManyRequests, Unprocessable
from chalicelib.ids import with_new_id
from chalicelib.logs import SERVICE
from chalicelib.models.base import id_taken, utcnow_iso
from chalicelib.models.jobs import COMPLETED as JOB_COMPLETED
from chalicelib.models.jobs import PENDING, Job
from chalicelib.models.projects import Project
from chalicelib.schemas.git import ImportRequest
from chalicelib.schemas.projects import ProjectCreate, ProjectPublic
from chalicelib.services import job_lifecycle, jobs, projects, ratelimit
from chalicelib.services.git import url_guard
from chalicelib.services.git.quota import GitQuotaExceeded
from chalicelib.services.identity import Caller

logger = Logger(service=SERVICE, child=True)

JOB_TYPE = "import"
IMPORTING, COMPLETED, FAILED = "importing", "completed", "failed"
FORK_JOB_TYPE = "fork"  # services/git/forks.JOB_TYPE (which imports this module)
_BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<!/)(?<!\.lock)$")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_OTHER_REFS = 100


def import_timeout_seconds() -> int:
    return get_settings().import_timeout_seconds


def import_max_pack_bytes() -> int:
    """The most pack data one import may download (compressed); the store caps what it inflates to."""
    return get_settings().import_max_pack_bytes


def _default_name(path: str) -> str:
    last = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    last = last[:-4] if last.endswith(".git") else last
    name = _NAME_CHARS.sub("-", last).strip(" -.")[:100]
    return name or "imported"


def start_import(caller: Caller, data: ImportRequest) -> ProjectPublic:
    """Create the project (marked importing) and queue its import job; 422 for a refused URL."""
    if data.branch is not None and not _BRANCH.match(data.branch):
        raise Unprocessable("branch: not a valid branch name")
    target = url_guard.check_url(data.url)
    _take_one_import(caller)
    created = projects.create_project(caller, ProjectCreate(
        name=data.name or _default_name(target.path), description=data.description,
        visibility=data.visibility))

    return queue_fill_job(caller, created, JOB_TYPE, {"url": data.url, "branch": data.branch},
                          import_url=data.url)


def queue_fill_job(caller: Caller, created: ProjectPublic, job_type: str, config: dict[str, Any],
                   import_url: str | None = None) -> ProjectPublic:
    """Queue the runner job that fills a project just created by an import or a fork, and mark
    the project `importing` (with `import_url` when given); the project as the 202 shows it.

    Errors: 503 (Retry-After 5) when the job queue is unavailable: the job then ends failed
    unstarted and the project shows `failed`.
    """
    def create(job_id: int) -> Job:
        job = Job(created.id, job_id, job_type=job_type, status=PENDING, config=config,
                  created_by=caller.id, created_at=utcnow_iso(), attempts=0)
        job.save(condition=Job.id.does_not_exist())
        return job

    job = with_new_id(create, id_taken)
    marks: dict[str, Any] = {"import_job_id": job.id, "import_status": IMPORTING}
    actions: list[Action] = [Project.import_job_id.set(job.id),
                             Project.import_status.set(IMPORTING)]
    if import_url is not None:
        marks["import_url"] = import_url
        actions.append(Project.import_url.set(import_url))
    Project(created.id).update(actions=actions, condition=Project.id.exists(),
                               add_version_condition=False)
    try:
        jobs.enqueue(job)
    except (BotoCoreError, ClientError) as e:
        reason = f"the job queue was unavailable; the {job_type} was not started"
        job_lifecycle.fail_unstarted(job, reason)
        mark(created.id, FAILED)
        raise ServiceUnavailable(f"{reason} (project {created.id}); delete it and try again",
                                 headers={"Retry-After": "5"}) from e
    return created.model_copy(update=marks)


def _take_one_import(caller: Caller) -> None:
    """Each import is a fetch from the internet by our runner: at most N per user per hour."""
    limit = get_settings().import_max_per_hour
    wait = ratelimit.acquire([ratelimit.Window(f"import#user#{caller.id}", limit, 3600)])
    if wait:
        raise TooManyRequests(f"at most {limit} imports per hour; try again in {wait} s",
                              retry_after=wait)


def mark(project_id: int, status: str) -> None:
    """Record how the import ended on the project (best effort: it may have been deleted)."""
    try:
        Project(project_id).update(actions=[Project.import_status.set(status)],
                                   condition=Project.id.exists(), add_version_condition=False)
    except UpdateError:
        logger.info("import status not recorded: project gone", extra={"project_id": project_id})


def on_job_ended(job: Job) -> None:
    """An import or fork job ended (the write that ended it succeeded): its project shows the
    outcome. Only the attempt whose end was recorded gets here, so an attempt that lost the job
    (taken over, or released by a stopping runner to run again) leaves the project importing.
    Never raises: a project whose mark failed is settled when it is read (`projects.get_project`)."""
    if job.job_type not in (JOB_TYPE, FORK_JOB_TYPE):
        return
    try:
        mark(job.project_id, COMPLETED if job.status == JOB_COMPLETED else FAILED)
    except (BotoCoreError, ClientError, PynamoDBException) as e:
        logger.warning("import status not recorded", extra={"project_id": job.project_id,
                                                             "error": str(e)})


class ImportFailed(Exception):
    """The import cannot succeed; the message is what the user reads on the job."""


class ImportCancelled(Exception):
    """The job was cancelled while fetching."""


@dataclass
class Imported:
    head: str
    pack_bytes: int
    objects: int
    files: int
    total_bytes: int
    refs: int = 0


Say = Callable[[str], None]


class _Fetch:
    """Callbacks of one fetch: collect pack data under the caps, report progress, honour cancel."""

    def __init__(self, say: Say, cancelled: threading.Event, deadline: float, max_bytes: int,
                 branch: str | None) -> None:
        self.say, self.cancelled, self.deadline = say, cancelled, deadline
        self.max_bytes, self.branch = max_bytes, branch
        self.pack = BytesIO()
        self.chosen: bytes | None = None
        self.others: dict[bytes, bytes] = {}  # the remote's other branches and tags
        self._partial = b""
        self._phases: set[bytes] = set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise ImportCancelled()
        if time.monotonic() > self.deadline:
            raise ImportFailed(f"the import took longer than {import_timeout_seconds()} s")

    def pack_data(self, data: bytes) -> None:
        self.check()
        if self.pack.tell() + len(data) > self.max_bytes:
            raise ImportFailed(f"the repository is larger than the import limit of "
                               f"{self.max_bytes} bytes (packed)")
        self.pack.write(data)

    def progress(self, data: bytes) -> None:
        """The remote's progress lines: the first and the last of each phase go to the log."""
        self.check()
        self._partial += data
        *lines, self._partial = re.split(rb"[\r\n]", self._partial)
        for line in lines:
            text = line.strip()
            phase = text.split(b":", 1)[0]
            if text and (phase not in self._phases or b"done" in text):
                self._phases.add(phase)
                self.say("remote: " + text.decode("utf-8", "replace")[:200])

    def determine_wants(self, refs: dict[Any, Any], depth: int | None = None) -> list[Any]:
        self.check()
        if self.branch is not None:
            names = [b"refs/heads/" + self.branch.encode()]
        else:
            names = [b"HEAD", b"refs/heads/main", b"refs/heads/master"]
            names += sorted(r for r in refs if bytes(r).startswith(b"refs/heads/"))
        for name in names:
            sha = refs.get(name)
            if sha:
                self.chosen = bytes(sha)
                self.say(f"importing {name.decode()} ({self.chosen.decode()})")
                self.others = _other_refs(refs)
                return list(dict.fromkeys([sha, *self.others.values()]))
        if self.branch is not None:
            raise ImportFailed(f"the repository has no branch {self.branch!r}")
        return []


def _other_refs(refs: dict[Any, Any]) -> dict[bytes, bytes]:
    """Branches and tags kept next to main (at most MAX_OTHER_REFS); the remote's own main is not."""
    found = sorted((bytes(name), bytes(sha)) for name, sha in refs.items()
                   if bytes(name).startswith((b"refs/heads/", b"refs/tags/"))
                   and not bytes(name).endswith(b"^{}") and bytes(name) != b"refs/heads/main")
    return dict(found[:MAX_OTHER_REFS])


def _client(target: url_guard.ImportURL, timeout: float) -> tuple[Any, str]:
    """dulwich's client for the URL, connecting only to checked addresses."""
    from dulwich.client import get_transport_and_path_from_url

    if target.scheme == "git":
        return _guarded_tcp_client(target, timeout), target.path
    client, path = get_transport_and_path_from_url(
        target.url, pool_manager=url_guard.pool_manager(timeout))
    return client, path


def _guarded_tcp_client(target: url_guard.ImportURL, timeout: float) -> Any:
    """git:// through dulwich's TCP client, its socket made by `url_guard.connect`."""
    import socket
    from contextlib import suppress

    from dulwich.client import TCPGitClient, _fileno_can_read
    from dulwich.protocol import Protocol

    class GuardedTCPGitClient(TCPGitClient):
        def _connect(self, cmd: bytes, path: str | bytes,
                     protocol_version: int | None = None) -> Any:
            if not isinstance(path, bytes):
                path = path.encode("utf-8")
            sock = url_guard.connect(target.host, target.port, timeout)
            rfile, wfile = sock.makefile("rb", -1), sock.makefile("wb", 0)

            def close() -> None:
                rfile.close()
                wfile.close()
                sock.close()

            def shutdown_write() -> None:
                wfile.flush()
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)

            proto = Protocol(rfile.read, wfile.write, close, shutdown_write=shutdown_write)
            self.protocol_version = 0  # v0: the simplest exchange, spoken by every git daemon
            proto.send_cmd(b"git-" + cmd, path, b"host=" + target.host.encode("idna"))
            return proto, lambda: _fileno_can_read(sock.fileno()), None

    return GuardedTCPGitClient(target.host, port=target.port)


def fetch_into(project_id: int, url: str, branch: str | None, say: Say,
               cancelled: threading.Event) -> Imported:
    """Fetch `branch` (default: the remote HEAD) of `url` into the project's repository as main."""
    from dulwich.errors import GitProtocolError, HangupException
    from dulwich.object_store import PackInputTooLarge

    from chalicelib.services.git.pack import PackRefused

    timeout = float(import_timeout_seconds())
    deadline = time.monotonic() + timeout
    try:
        target = url_guard.parse_url(url)
        say(f"fetching {url}")
        fetch = _Fetch(say, cancelled, deadline, import_max_pack_bytes(), branch)
        client, path = _client(target, min(timeout, 30.0))
        from chalicelib.services.git.store import open_repo

        repo = open_repo(project_id)
        head = repo.head_commit()
        if head is not None and not _importing(project_id):
            raise ImportFailed("the project already has commits; an import needs an empty project")
        client.fetch_pack(path, fetch.determine_wants, repo.get_graph_walker(), fetch.pack_data,
                          progress=fetch.progress)
        fetch.check()
        if fetch.chosen is None:
            raise ImportFailed("the repository is empty: it has no branches")
        say(f"received {fetch.pack.tell()} bytes of pack data; unpacking")
        fetch.pack.seek(0)
        # The same check as a push: refused by the sizes it declares before it is inflated.
        repo.object_store.add_thin_pack(fetch.pack.read, None, max_input_size=fetch.max_bytes)
        return _store(repo, fetch, say, head)
    except url_guard.ImportRefused as e:
        raise ImportFailed(f"refused: {e.detail}") from e
    except (PackInputTooLarge, PackRefused) as e:
        raise ImportFailed(f"the repository is too large to import: {e}") from e
    except (GitProtocolError, HangupException) as e:
        if "timed out" in str(e).lower():
            raise ImportFailed(f"the repository timed out (no answer within "
                               f"{min(timeout, 30.0):.0f} s): {e}") from e
        raise ImportFailed(f"the remote did not answer as a git repository: {e}") from e
    except OSError as e:
        raise ImportFailed(f"could not reach the repository: {type(e).__name__}: {e}") from e


def _importing(project_id: int) -> bool:
    project = Project.get(project_id, consistent_read=True, attributes_to_get=["import_status"])
    return project.import_status == IMPORTING


def _store(repo: Any, fetch: _Fetch, say: Say, head: bytes | None) -> Imported:
    """Validate the tip like a push, upload the objects, move main, fill the files table.

    `head`: main when the attempt started. Set on a project still importing, it was moved by an
    earlier attempt of this import that ended before recording its outcome (a killed runner, a
    storage error after the move): when it is the tip fetched again, this attempt does what
    that one may not have done (the files table, the other refs; both idempotent). Any other
    commit there was pushed meanwhile, and the import fails as it always did."""
    from dulwich.objects import Commit

    from chalicelib.services.git.rules import NewHistory, commit_total_errors, tree_diff, validate
    from chalicelib.services.git.store import DEFAULT_BRANCH, ZERO_SHA
    from chalicelib.services.git.sync import sync_files

    assert fetch.chosen is not None
    objects = len(repo.object_store.pending)  # fetched; only those the refs reach are stored
    try:
        commit = repo.object_store[fetch.chosen]
    except KeyError as e:
        raise ImportFailed("the remote did not send the branch's commit") from e
    if not isinstance(commit, Commit):
        raise ImportFailed("the branch does not point at a commit")
    if head is not None and head != fetch.chosen:
        raise ImportFailed("the project received commits while it was being imported")
    project = Project.get(repo.project_id, consistent_read=True)
    # Every commit of the fetched history is held to the push rules, not only the tip.
    history = NewHistory(repo)
    problems = history.check([fetch.chosen])
    problems = problems or commit_total_errors(repo, project, history)
    changes = [] if problems else tree_diff(repo, None, commit.tree)
    if head is None:  # (a resumed main was validated when it moved; its files count already)
        problems = problems or validate(repo, project, changes, count_limits=True)
    if problems:
        repo.object_store.discard()
        raise ImportFailed("the repository breaks the project's rules: " + "; ".join(problems))
    others = _acceptable_other_refs(repo, project, history, fetch.others, say)
    say(f"storing {len(history.reached)} objects")
    try:
        dropped = repo.object_store.flush(keep=history.reached)
    except GitQuotaExceeded as e:
        raise ImportFailed(e.detail) from None
    if dropped:
        say(f"left out {dropped} objects no imported branch or tag reaches")
    if head == fetch.chosen:
        say("main is already at this commit: an earlier attempt moved it; finishing its work")
    elif not repo.refs.set_if_equals(DEFAULT_BRANCH, ZERO_SHA, fetch.chosen):
        raise ImportFailed("the project received commits while it was being imported")
    sync_files(repo, None, commit.tree)
    total = sum(len(repo.object_store.get_raw(c.new_sha)[1]) for c in changes if c.new_sha)
    say(f"imported {len(changes)} files ({total} bytes), main at {fetch.chosen.decode()}")
    refs = _keep_other_refs(repo, others, say)
    return Imported(head=fetch.chosen.decode(), pack_bytes=fetch.pack.tell(), objects=objects,
                    files=len(changes), total_bytes=total, refs=refs)


def _acceptable_other_refs(repo: Any, project: Project, history: Any,
                           others: dict[bytes, bytes], say: Say) -> dict[bytes, bytes]:
    """The remote's other branches and tags whose history a push would accept; say why not."""
    from chalicelib.services.git.revisions import peel
    from chalicelib.services.git.rules import tree_diff, validate
    from chalicelib.services.git.smart_http import ref_name_error

    accepted = {}
    for name, sha in others.items():
        problem = ref_name_error(name)
        commit = None
        if problem is None:
            problem = "; ".join(history.check([sha])) or None
        if problem is None:
            commit = peel(repo, sha)  # annotated tags: followed to the commit
            if commit is None:
                problem = "does not point at a commit"
        if problem is None and commit is not None:
            problem = "; ".join(validate(
                repo, project, tree_diff(repo, None, commit.tree), count_limits=True)) or None
        if problem:
            say(f"not imported: {name.decode('utf-8', 'replace')} ({problem})")
        else:
            accepted[name] = sha
    return accepted


def _keep_other_refs(repo: Any, others: dict[bytes, bytes], say: Say) -> int:
    """Set the other branches and tags (their objects are stored by now)."""
    kept = sum(1 for name, sha in others.items() if repo.refs.add_if_new(name, sha))
    say(f"kept {kept} other branches and tags")
    return kept
