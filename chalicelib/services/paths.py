"""The rules a project file path must follow, in one place (files API, uploads, git pushes)."""

from __future__ import annotations

import unicodedata

from chalicelib.errors import Unprocessable

MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255
# Folders in a path, file name included. HDL projects nest a few levels; the cap keeps every
# walk of a project tree (the runner's, git's tree code) far from Python's recursion limit and
# from PATH_MAX on the runner's disk (a 509-deep path used to crash the runner).
MAX_PATH_DEPTH = 32
# Bidirectional overrides and isolates make a name display as something else ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def normalise_path(filepath: str | None, filename: str) -> str:
    """Return the canonical project-relative path for a file, or raise Unprocessable.

    `filepath` is the full path ("rtl/cpu.v"), a folder ending in "/" ("rtl/"), or empty/"/"
    for the project root; `filename` must be its last segment.
    """
    name = _check_text(filename, "filename")
    if "/" in name:
        raise Unprocessable("filename must not contain '/'; put folders in filepath")
    raw = _check_text(filepath or "", "filepath")
    if raw in ("", "/"):
        raw = name
    elif raw.endswith("/"):
        raw = raw + name
    if raw.startswith("/"):
        raise Unprocessable("filepath must be relative to the project (no leading '/')")
    segments = [s for s in raw.split("/") if s not in ("", ".")]
    if len(segments) > MAX_PATH_DEPTH:
        raise Unprocessable(f"filepath is deeper than {MAX_PATH_DEPTH} levels")
    for segment in segments:
        _check_segment(segment)
    path = "/".join(segments)
    if not path:
        raise Unprocessable("filepath is empty")
    if len(path) > MAX_PATH_CHARS:
        raise Unprocessable(f"filepath is longer than {MAX_PATH_CHARS} characters")
    if segments[-1] != name:
        raise Unprocessable("filename must be the last segment of filepath")
    return path


def _check_segment(segment: str) -> None:
    if segment == "..":
        raise Unprocessable("filepath must not contain '..'")
    if _is_dot_git(segment):
        raise Unprocessable("filepath must not contain a '.git' folder")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise Unprocessable(f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")


def _is_dot_git(segment: str) -> bool:
    """Whether a checkout may write this folder as the repository's own `.git`, as git's own
    verify_path judges it: case-insensitive, without trailing dots/spaces or an NTFS stream
    (":..."), without the zero-width characters HFS+ ignores, or as the 8.3 short name GIT~1."""
    folded = "".join(c for c in segment if unicodedata.category(c) != "Cf").lower()
    folded = folded.split(":", 1)[0].rstrip(". ")
    return folded in (".git", "git~1")


def _check_text(value: str, field: str) -> str:
    text = unicodedata.normalize("NFC", value)
    if any(_is_control(c) for c in text):
        raise Unprocessable(f"{field} must not contain NUL or control characters")
    if "\\" in text:
        raise Unprocessable(f"{field} must use '/' as the folder separator")
    return text


def _is_control(c: str) -> bool:
    """C0 and C1 controls (NUL, newline, U+0085...), line/paragraph separators, bidi controls."""
    return unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI_CONTROLS
