"""What a tree or a pushed history may hold: the files API's rules (canonical paths, regular
files only, sizes) and the project's limits, checked before a push, restore or import moves a
ref (`services/git/sync.py` then makes the files table follow main).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from dulwich.objects import ObjectID, Tree

from chalicelib.config import get_settings
from chalicelib.errors import DomainError
from chalicelib.models.projects import Project
from chalicelib.services.git.store import ProjectRepo, io_pool
from chalicelib.services.paths import normalise_path

MAX_REPORTED_ERRORS = 5
_GITLINK = 0o160000


@dataclass(frozen=True)
class FileChange:
    path: str
    old_sha: bytes | None  # blob ids in git
    new_sha: bytes | None
    new_mode: int | None


def _oid(sha: bytes | None) -> ObjectID | None:
    return None if sha is None else ObjectID(sha)


def tree_diff(repo: ProjectRepo, old_tree: bytes | None, new_tree: bytes | None) -> list[FileChange]:
    out: list[FileChange] = []
    for change in repo.object_store.tree_changes(_oid(old_tree), _oid(new_tree)):
        (old_path, new_path), (_, new_mode), (old_sha, new_sha) = change
        raw = new_path if new_path is not None else old_path
        assert raw is not None
        out.append(FileChange(raw.decode("utf-8", "surrogateescape"), old_sha, new_sha, new_mode))
    return out


def path_error(path: str) -> str | None:
    """Why `path` is not a canonical project path (paths.normalise_path), or None."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return f"'{path}': file names must be UTF-8"
    try:
        canonical = normalise_path(path, path.rsplit("/", 1)[-1])
    except DomainError as e:
        return f"'{path}': {e.detail}"
    if canonical != path:
        return f"'{path}': not a canonical project path (expected '{canonical}')"
    return None


def _entry_error(repo: ProjectRepo, change: FileChange, size: int) -> str | None:
    assert change.new_mode is not None
    if stat.S_ISLNK(change.new_mode):
        return f"'{change.path}': symbolic links are not supported"
    if change.new_mode == _GITLINK:
        return f"'{change.path}': submodules are not supported"
    problem = path_error(change.path)
    if problem:
        return problem
    limit = get_settings().max_file_bytes
    if size > limit:
        return f"'{change.path}' is {size} bytes, larger than the limit of {limit} bytes per file"
    return None


def _size(repo: ProjectRepo, sha: bytes | None) -> int:
    return 0 if sha is None else len(repo.object_store.get_raw(sha)[1])


def _limit_errors(project: Project, count_delta: int, bytes_delta: int) -> list[str]:
    settings = get_settings()
    errors = []
    count = int(project.file_count or 0) + count_delta
    if count > settings.max_files_per_project:
        errors.append(f"the project would have {count} files, more than the limit of "
                      f"{settings.max_files_per_project}")
    total = int(project.total_bytes or 0) + bytes_delta
    if total > settings.max_project_bytes:
        errors.append(f"the project would hold {total} bytes, more than the limit of "
                      f"{settings.max_project_bytes} bytes")
    return errors


def validate(repo: ProjectRepo, project: Project, changes: list[FileChange],
             *, count_limits: bool) -> list[str]:
    """Everything the files API would refuse about these changes, as readable messages."""
    repo.object_store.prefetch([s for c in changes for s in (c.old_sha, c.new_sha) if s])
    errors: list[str] = []
    count_delta = 0
    bytes_delta = 0
    for change in changes:
        regular = change.new_mode is not None and stat.S_ISREG(change.new_mode)
        new_size = _size(repo, change.new_sha) if regular else 0
        if change.new_sha is not None and change.new_mode is not None:
            problem = _entry_error(repo, change, new_size)
            if problem:
                errors.append(problem)
        bytes_delta += new_size - _size(repo, change.old_sha)
        count_delta += (change.new_sha is not None) - (change.old_sha is not None)
    if count_limits:
        errors += _limit_errors(project, count_delta, bytes_delta)
    if len(errors) > MAX_REPORTED_ERRORS:
        errors = errors[:MAX_REPORTED_ERRORS] + [f"... and {len(errors) - MAX_REPORTED_ERRORS} more"]
    return errors


class NewHistory:
    """What a push (or an import) adds to the store, checked before any of it is stored.

    Only the objects reached from the refs being set are checked and kept (`reached`); the rest
    of a pack is dropped, so nothing unvalidated is ever stored. Every new tree is held to the
    files API's rules (names, no symlinks or submodules, file sizes) whichever commit it
    belongs to, so the content routes, jobs and restores of any stored commit only ever see
    trees the rules allowed. Objects already stored were checked when they were stored; for
    those, only their existence (and, for folders, their type) is checked: a push may not point
    at what the server does not have (git's own "connectivity check").
    """

    def __init__(self, repo: ProjectRepo) -> None:
        self.repo = repo
        self.reached: set[bytes] = set()
        self._stored: set[bytes] = set()

    def check(self, tips: list[bytes]) -> list[str]:
        """Problems with the new objects reachable from `tips`, as readable messages.

        On problems, the objects this call reached are forgotten again (not kept)."""
        before = set(self.reached)
        errors: list[str] = []
        elsewhere: dict[bytes, _Step] = {}  # stored objects pointed at: their first step
        stack = [_Step(t, None, "the pushed ref", None) for t in tips]
        while stack:
            step = stack.pop()
            if step.sha in self.reached:
                continue
            obj = self.repo.object_store.pending_object(step.sha)
            if obj is None:
                if step.sha not in self._stored:
                    elsewhere.setdefault(step.sha, step)
                continue
            self.reached.add(step.sha)
            kind = obj.type_name.decode()
            if step.expect is not None and kind != step.expect:
                errors.append(f"{step.where()}: {step.sha.decode()[:12]} is a {kind}, "
                              f"not a {step.expect}")
                continue
            errors += self._object(obj, step, stack)
        errors += self._check_stored(elsewhere)
        if errors:
            self.reached = before
        return _capped(errors)

    def _object(self, obj: object, step: _Step, stack: list[_Step]) -> list[str]:
        from dulwich.objects import Blob, Commit, Tag, Tree

        if isinstance(obj, Commit):
            label = f"commit {obj.id.decode()[:12]}"
            stack.append(_Step(obj.tree, "tree", label, None))
            stack += [_Step(p, "commit", label, None) for p in obj.parents]
        elif isinstance(obj, Tag):
            stack.append(_Step(obj.object[1], None, f"tag {obj.id.decode()[:12]}", None))
        elif isinstance(obj, Tree):
            return self._tree(obj, step, stack)
        elif isinstance(obj, Blob):
            size, limit = obj.raw_length(), get_settings().max_file_bytes
            if size > limit:
                return [f"{step.where()} is {size} bytes, larger than the limit of {limit} "
                        "bytes per file"]
        return []

    def _tree(self, tree: Tree, step: _Step, stack: list[_Step]) -> list[str]:
        prefix = step.path + "/" if step.path else ""
        errors = []
        for entry in tree.iteritems():
            path = prefix + entry.path.decode("utf-8", "surrogateescape")
            if stat.S_ISDIR(entry.mode):
                problem = path_error(path)  # a folder's name follows the same rules
                if problem:
                    errors.append(f"{step.label}: {problem}")
                else:
                    stack.append(_Step(entry.sha, "tree", step.label, path))
                continue
            problem = _mode_error(path, entry.mode) or path_error(path)
            if problem:
                errors.append(f"{step.label}: {problem}")
            else:
                stack.append(_Step(entry.sha, "blob", step.label, path))
        return errors

    def _check_stored(self, wanted: dict[bytes, _Step]) -> list[str]:
        """Objects the new ones point at that are not new: they must be in the store already."""
        store = self.repo.object_store
        shas = list(wanted)
        present = list(io_pool().map(store.contains_loose, shas))
        folders = [s for s, ok in zip(shas, present, strict=True) if ok and wanted[s].expect == "tree"]
        store.prefetch(folders)
        errors = []
        for sha, ok in zip(shas, present, strict=True):
            step = wanted[sha]
            if not ok:
                errors.append(f"{step.where()}: object {sha.decode()[:12]} is neither in the push "
                              "nor on the server")
            elif step.expect == "tree" and store.get_raw(sha)[0] != Tree.type_num:
                errors.append(f"{step.where()}: {sha.decode()[:12]} is not a folder")
            else:
                self._stored.add(sha)
        return errors


def commit_total_errors(repo: ProjectRepo, project: Project, history: NewHistory) -> list[str]:
    """Every new commit `history` reached, held to the project's totals (files, bytes), as
    messages; `validate` holds only the tip to them.

    A commit's totals are its first parent's when that was just computed, else main's (the
    project's counters), plus the tree diff from there. The diff of two trees within the limits
    has at most twice the file limit of entries, so the walk stops there: a commit whose tree
    names one stored folder a thousand times costs no more than a commit within the limits.
    """
    from dulwich.objects import Commit

    settings = get_settings()
    max_files, max_bytes = settings.max_files_per_project, settings.max_project_bytes
    main = repo.head_commit()
    main_base: tuple[bytes | None, int, int] = (None, 0, 0)
    if main is not None:
        main_base = (bytes(repo.object_store[main].tree),  # type: ignore[attr-defined]
                     int(project.file_count or 0), int(project.total_bytes or 0))
    commits = [o for o in (repo.object_store.pending_object(s) for s in history.reached)
               if isinstance(o, Commit)]
    known: dict[bytes, tuple[bytes | None, int, int]] = {}
    errors: list[str] = []
    for commit in sorted(commits, key=lambda c: c.commit_time):
        parent = bytes(commit.parents[0]) if commit.parents else None
        base = (None, 0, 0) if parent is None else known.get(parent, main_base)
        totals = _totals_from(repo, base, bytes(commit.tree), 2 * max_files + 2)
        label = f"commit {commit.id.decode()[:12]}"
        if totals is None:
            errors.append(f"{label}: its tree differs from its parent's in more than "
                          f"{2 * max_files} files")
            continue
        count, size = totals
        if count > max_files:
            errors.append(f"{label}: its tree has {count} files, more than the limit of "
                          f"{max_files}")
        if size > max_bytes:
            errors.append(f"{label}: its tree holds {size} bytes, more than the limit of "
                          f"{max_bytes} bytes")
        known[bytes(commit.id)] = (bytes(commit.tree), count, size)
    return _capped(errors)


def _totals_from(repo: ProjectRepo, base: tuple[bytes | None, int, int], tree: bytes,
                 max_changes: int) -> tuple[int, int] | None:
    """(files, bytes) of `tree`, from `base` (a tree and its totals) and their diff; None when
    the diff has more than `max_changes` entries."""
    base_tree, count, size = base
    changes: list[tuple[bytes | None, bytes | None]] = []
    for change in repo.object_store.tree_changes(_oid(base_tree), _oid(tree)):
        _, (old_mode, new_mode), (old_sha, new_sha) = change
        changes.append((old_sha if old_mode and stat.S_ISREG(old_mode) else None,
                        new_sha if new_mode and stat.S_ISREG(new_mode) else None))
        if len(changes) > max_changes:
            return None
    repo.object_store.prefetch([s for pair in changes for s in pair if s])
    for old, new in changes:
        count += (new is not None) - (old is not None)
        size += _size(repo, new) - _size(repo, old)
    return count, size


@dataclass(frozen=True)
class _Step:
    """An object to visit: its id, the type its parent says it has, and where it was named."""

    sha: bytes
    expect: str | None
    label: str  # "commit <sha>", "tag <sha>", "the pushed ref"
    path: str | None  # the path inside the commit's tree, for trees and blobs

    def where(self) -> str:
        return f"{self.label}: '{self.path}'" if self.path else self.label


def _mode_error(path: str, mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return f"'{path}': symbolic links are not supported"
    if mode == _GITLINK:
        return f"'{path}': submodules are not supported"
    if not stat.S_ISREG(mode):
        return f"'{path}': unsupported file mode {mode:o}"
    return None


def _capped(errors: list[str]) -> list[str]:
    if len(errors) > MAX_REPORTED_ERRORS:
        return errors[:MAX_REPORTED_ERRORS] + [f"... and {len(errors) - MAX_REPORTED_ERRORS} more"]
    return errors
