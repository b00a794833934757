"""Walking and removing directory trees a tool wrote, however deep, without recursion.

Python 3.11's `os.walk`, `os.fwalk` and `shutil.rmtree` recurse once per level, so a tool that
makes 3,000 nested folders raised RecursionError in the runner; full paths of such a tree are
also longer than PATH_MAX. Both helpers here use directory file descriptors and explicit stacks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(top: Path | str) -> None:
    """Delete `top` and everything below it; raises OSError if something could not be removed.

    Iterative and depth-independent: every directory is first moved up to `top` (a rename in
    one filesystem), so no more than two directories are open at a time and no path grows.
    Links are removed, never followed. When the runner is not root, directories a tool left
    without permissions are opened up first (root needs no permission to remove them).
    """
    top = str(top)
    try:
        top_fd = os.open(top, _DIR_FLAGS)
    except FileNotFoundError:
        return
    owner_only = os.geteuid() != 0
    token = secrets.token_hex(6)
    moved = 0
    pending: list[str | None] = [None]  # None: top itself; else a name directly under top
    try:
        while pending:
            name = pending.pop()
            fd = top_fd if name is None else _open_dir(name, top_fd, owner_only)
            try:
                for entry in _entries(fd):
                    if entry.is_dir(follow_symlinks=False):
                        if fd == top_fd:
                            pending.append(entry.name)
                            continue
                        if owner_only:
                            os.chmod(entry.name, 0o700, dir_fd=fd)
                        flat = f".a6hub-rm-{token}-{moved}"
                        moved += 1
                        os.rename(entry.name, flat, src_dir_fd=fd, dst_dir_fd=top_fd)
                        pending.append(flat)
                    else:
                        os.unlink(entry.name, dir_fd=fd)
            finally:
                if fd != top_fd:
                    os.close(fd)
            if name is not None:
                os.rmdir(name, dir_fd=top_fd)
    finally:
        os.close(top_fd)
    os.rmdir(top)


def _open_dir(name: str, parent_fd: int, owner_only: bool) -> int:
    if owner_only:
        os.chmod(name, 0o700, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _entries(fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(fd) as it:
        return list(it)


def walk_files(top: Path | str, max_depth: int) -> Iterator[tuple[str, int, list[str]]]:
    """(relative dir, dir fd, sorted names of its non-directory entries) for every directory
    down to `max_depth` levels below `top`, depth first, iteratively; deeper folders are skipped.

    The fd is valid only while the caller handles that directory; at most `max_depth + 1` are
    open at once. Symlinked directories are not entered.
    """
    try:
        root = os.open(str(top), _DIR_FLAGS)
    except OSError:
        return
    stack: list[tuple[str, int, list[str]]] = []  # (rel, fd, subdirectories still to visit)
    rel, fd = "", root
    try:
        while fd >= 0:
            files: list[str] = []
            subdirs: list[str] = []
            with contextlib.suppress(OSError):
                for entry in _entries(fd):
                    (subdirs if entry.is_dir(follow_symlinks=False) else files).append(entry.name)
            depth = rel.count("/") + 1 if rel else 0
            stack.append((rel, fd, sorted(subdirs, reverse=True) if depth < max_depth else []))
            yield rel, fd, sorted(files)
            fd = -1
            while stack and fd < 0:
                parent_rel, parent_fd, todo = stack[-1]
                if not todo:
                    stack.pop()
                    if parent_fd != root:
                        os.close(parent_fd)
                    continue
                name = todo.pop()
                with contextlib.suppress(OSError):
                    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
                    rel = f"{parent_rel}/{name}" if parent_rel else name
    finally:
        for _rel, open_fd, _todo in stack:
            if open_fd != root:
                with contextlib.suppress(OSError):
                    os.close(open_fd)
        os.close(root)
