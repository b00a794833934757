"""Waveforms of simulation jobs: summary, signal list, value windows, search, compare, SVG.

Storage: the runner keeps each VCD a simulation dumps and, beside it, the same trace as FST
(gtkwave's `vcd2fst`, runner/execute.py `_index_waveforms`). FST is compressed and cut into
time blocks per signal, so a reader fetches only the signals it asks for. The API copies the
FST from S3 into a bounded local cache (`CACHE_DIR`, at most `cache_budget()` bytes, least
recently used first out; on Lambda that is /tmp, 512 MB by default). Two readers:

- `pywellen` (the wellen Rust library) for the hierarchy (summary, signal list) and for
  compare, which walks both traces from the start anyway; it streams one signal's changes and
  can be stopped early, but it has no time-range argument;
- gtkwave's libfst (`pylibfst`) for windows (values, SVG, search): with a signal mask and
  `fstReaderSetLimitTimeRange` it reads only those signals' data in the blocks that overlap
  the window, so a window at the end of a long trace costs the window (bench/waveform.py,
  10 signals at the end of a 530 MB VCD's FST: 0.7-4.8 s where pywellen took 14-40 s).

Nothing here holds a whole trace in memory.

Values are strings in binary, as VCD writes them: one character per bit, most significant first,
`x` and `z` kept; pywellen hands fully known values as ints (padded here to the var's width) and
others as strings (padded by VCD's left-extension rule: `x`/`z` extend, anything else with `0`).
Times are integers in the file's timescale (`timescale`, e.g. "1ps").
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.schemas.jobs import JobPublic
from chalicelib.services import jobs
from chalicelib.services.identity import Caller

FST_KIND = "waveform_fst"
CACHE_DIR = Path(tempfile.gettempdir()) / "a6hub-waveforms"
MAX_SIGNALS = 64  # per values/compare/svg request
DEFAULT_MAX_CHANGES = 10_000
MAX_MAX_CHANGES = 200_000
# Changes one request may read from the trace (values, svg, search). Each costs a Python
# callback (~15 us here), so this bounds a request to seconds: a window over the whole of a huge
# trace is refused with a reason instead of pinning a worker past API Gateway's 29 s.
MAX_READ_CHANGES = 500_000
COMPARE_CHUNK = 100_000  # changes of one job held at a time while comparing
# Changes one compare request may stream in all (both jobs, all signals): a few seconds.
COMPARE_READ_CHANGES = 4 * 500_000
_cache_lock = threading.Lock()


def cache_budget() -> int:
    """Bytes of FST the local cache may hold (A6HUB_WAVEFORM_CACHE_BYTES)."""
    return get_settings().waveform_cache_bytes


# --- finding and caching the trace ------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """One job's FST in the local cache, with the header facts read from it."""

    job: JobPublic
    path: Path
    start_time: int
    end_time: int

    def open(self) -> Any:
        """A fresh pywellen.Waveform: pywellen streams each signal of one object only once."""
        import pywellen

        return pywellen.Waveform(str(self.path))


def trace_of(caller: Caller | None, project_id: int, job_id: int) -> Trace:
    """The job's waveform (readers of the project, as for the job itself).

    404 with the reason when the job has none: not a simulation, not finished, asked for no
    waveform, or its VCD could not be indexed.
    """
    job = jobs.get_job(caller, project_id, job_id)
    fst = next((a for a in job.artifacts if a.kind == FST_KIND), None)
    if fst is None:
        raise NotFound(_no_waveform_reason(job))
    key = storage.job_artifact_key(*jobs.stored_as(project_id, job_id, job.attempts,
                                                   job.summary), fst.name)
    path = _cached(key, fst.size_bytes)
    start, end = _fst_time_range(path)
    return Trace(job=job, path=path, start_time=start, end_time=end)


def _no_waveform_reason(job: JobPublic) -> str:
    if job.job_type not in ("simulation", "formal", "cocotb"):
        return (f"job {job.id} is a {job.job_type} job; only simulations have waveforms (cocotb "
                "runs too, and formal checks as counterexample or cover traces)")
    if job.status in ("pending", "running"):
        return f"job {job.id} is {job.status}; its waveform exists once it has completed"
    if any(a.kind == "waveform" for a in job.artifacts):
        return (f"job {job.id} kept a VCD but no indexed (FST) copy of it; download the VCD "
                "artifact, or run the job again")
    if job.job_type == "formal" and job.status == "completed":
        return (f"job {job.id}'s formal check passed: a trace is kept for a failing assertion "
                "or a reached cover only")
    if job.job_type == "simulation" and not (job.config.get("waveform") or job.config.get("dump_waves")):
        return f"job {job.id} did not ask for a waveform (config.waveform is false)"
    return f"job {job.id} produced no waveform ({job.status})"


def _cached(key: str, size: int) -> Path:
    """The object at `key` as a local file, downloaded once; older files are evicted so the
    cache stays within `cache_budget()` (the file being read is never evicted)."""
    budget = cache_budget()
    if size > budget:
        raise Unprocessable(f"the waveform is {size} bytes, over this server's cache of "
                            f"{budget} bytes")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / key.replace("/", "_")
    if path.exists():
        os.utime(path)
        return path
    with _cache_lock:
        _evict(budget - size, keep=path)
        fd, partial = tempfile.mkstemp(dir=CACHE_DIR, suffix=".part")
        os.close(fd)
        try:
            storage.download_file(key, Path(partial))
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return path


def _evict(room: int, keep: Path) -> None:
    files = [(p.stat().st_mtime, p.stat().st_size, p) for p in CACHE_DIR.iterdir()
             if p.is_file() and p != keep and not p.name.endswith(".part")]
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files):
        if total <= room:
            break
        p.unlink(missing_ok=True)
        total -= size


def _fst_time_range(path: Path) -> tuple[int, int]:
    """start_time and end_time from the FST header block (gtkwave fstapi.c: block type 0
    FST_BL_HDR, u64 section length, then big-endian u64 start_time and end_time)."""
    with open(path, "rb") as f:
        head = f.read(25)
    if len(head) < 25 or head[0] != 0:
        raise Unprocessable("the stored waveform is not an FST file")
    _length, start, end = struct.unpack(">QQQ", head[1:25])
    return int(start), int(end)


# --- values ---------------------------------------------------------------------------------


def render(value: Any, width: int) -> str:
    """A pywellen value as the binary string VCD tools print, `width` characters for vectors."""
    if isinstance(value, int):
        return format(value, "b").zfill(width) if width else str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value).lower()
    if width and len(text) < width and set(text) <= set("01xz"):
        fill = text[0] if text[:1] in ("x", "z") else "0"
        text = fill * (width - len(text)) + text
    return text


def parse_value(text: str, width: int) -> str:
    """A searched-for value as a binary string of `width`: binary digits with x/z (the default),
    `0b…`, `0x…` (hex) or `0d…` (decimal). 422 when malformed or too wide."""
    raw = text.strip().lower().replace("_", "")
    try:
        if raw.startswith("0x"):
            bits = format(int(raw[2:], 16), "b")
        elif raw.startswith("0d"):
            bits = format(int(raw[2:], 10), "b")
        else:
            bits = raw[2:] if raw.startswith("0b") else raw
            if not bits or set(bits) - set("01xz"):
                raise ValueError
    except ValueError as e:
        raise Unprocessable(f"value {text!r} is not binary (0/1/x/z), 0x hex or 0d decimal") from e
    bits = render(bits, width)
    if len(bits) > max(width, 1):
        raise Unprocessable(f"value {text!r} is wider than the signal ({width} bits)")
    return bits


class _Stop(Exception):
    """Raised inside a pywellen callback to end its stream early."""


class _Spent(Exception):
    """A compare request read as many changes as it may (COMPARE_READ_CHANGES)."""


def stream(trace: Trace, path: str, on_change: Callable[[int, str], bool]) -> None:
    """Every change of signal `path` in time order, as (time, value) to `on_change`, until it
    returns False. One pywellen pass over that signal's blocks."""
    waveform = trace.open()
    var = _var(waveform, path)
    width = int(var.bitwidth or 0)

    def callback(t: int, _signal: Any, value: Any) -> None:
        if not on_change(int(t), render(value, width)):
            raise _Stop

    try:
        waveform.stream_changes(callback, [var])
    except _Stop:
        pass


def _var(waveform: Any, path: str) -> Any:
    found = next((v for v in waveform.all_vars() if v.full_name == path), None)
    if found is None:
        raise Unprocessable(f"no signal named {path!r} in this waveform")
    return found


# --- the routes' answers ----------------------------------------------------------------------


def summary(caller: Caller | None, project_id: int, job_id: int) -> dict[str, Any]:
    """{format, timescale, start_time, end_time, scope_count, signal_count}."""
    trace = trace_of(caller, project_id, job_id)
    waveform = trace.open()
    return {"job_id": job_id, "format": "fst", "timescale": str(waveform.timescale),
            "start_time": trace.start_time, "end_time": trace.end_time,
            "scope_count": len(waveform.all_scopes()), "signal_count": len(waveform.all_vars())}


def _kind(var: Any) -> str:
    return str(var.var_type).lower()


def signals(caller: Caller | None, project_id: int, job_id: int, scope: str | None,
            search: str | None, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]],
                                                                         str | None]:
    """A page of {path, name, scope, width, kind}, sorted by path, and the next cursor.

    `scope` keeps signals at or below that hierarchical scope; `search` a case-insensitive
    substring of the path. The cursor is the last path of the previous page.
    """
    trace = trace_of(caller, project_id, job_id)
    waveform = trace.open()
    scopes = {s.full_name for s in waveform.all_scopes()}
    if scope and scope not in scopes:
        raise Unprocessable(f"no scope named {scope!r} in this waveform")
    needle = (search or "").lower()
    rows: dict[str, dict[str, Any]] = {}
    for var in waveform.all_vars():
        path = var.full_name
        owner = path[: len(path) - len(var.name) - 1] if path.endswith(var.name) else \
            path.rpartition(".")[0]
        if scope and not (owner == scope or owner.startswith(scope + ".")):
            continue
        if needle and needle not in path.lower():
            continue
        if cursor is not None and path <= cursor:
            continue
        rows.setdefault(path, {"path": path, "name": var.name, "scope": owner,
                               "width": int(var.bitwidth or 0), "kind": _kind(var)})
    ordered = [rows[p] for p in sorted(rows)]
    page = ordered[:limit]
    return page, (page[-1]["path"] if len(ordered) > limit else None)


def _window(trace: Trace, start: int | None, end: int | None) -> tuple[int, int]:
    lo = trace.start_time if start is None else start
    hi = trace.end_time if end is None else end
    if lo < 0 or hi < 0:
        raise Unprocessable("start and end must be non-negative times")
    if lo > trace.end_time:
        raise Unprocessable(f"the window starts at {lo}, past the end of the trace "
                            f"({trace.end_time})")
    if lo > hi:
        raise Unprocessable(f"start ({lo}) is after end ({hi})")
    return lo, hi


def _paths(raw: list[str]) -> list[str]:
    paths = list(dict.fromkeys(p for p in raw if p))
    if not paths:
        raise Unprocessable("signals: name at least one signal path")
    if len(paths) > MAX_SIGNALS:
        raise Unprocessable(f"signals: at most {MAX_SIGNALS} per request")
    return paths


class Series:
    """One signal's changes in [start, end]: the value at `start` first, then every change;
    past `max_changes` reduced per time bucket (see `reduce`)."""

    def __init__(self, start: int, end: int, max_changes: int) -> None:
        self.start, self.end, self.max_changes = start, end, max_changes
        self.before: tuple[int, str] | None = None  # the last change at or before start
        self.changes: list[list[Any]] = []
        self.total = 0
        # Time buckets for the reduction: half as many as max_changes, first and last of each.
        self.buckets = max(1, (max_changes - 1) // 2)
        self.span = max(1, end - start)
        self.kept: dict[int, list[list[Any]]] = {}

    def take(self, t: int, value: str) -> bool:
        if t <= self.start:
            self.before = (t, value)
            return True
        if t > self.end:
            return False
        self.total += 1
        if self.total <= self.max_changes - 1:
            self.changes.append([t, value])
        bucket = min(self.buckets - 1, (t - self.start) * self.buckets // self.span)
        kept = self.kept.setdefault(bucket, [])
        if len(kept) < 2:
            kept.append([t, value])
        else:
            kept[1] = [t, value]
        return True

    @property
    def truncated(self) -> bool:
        return self.total > self.max_changes - 1

    def result(self) -> list[list[Any]]:
        first = [[self.start, self.before[1]]] if self.before else []
        if not self.truncated:
            return first + self.changes
        reduced = [change for b in sorted(self.kept) for change in self.kept[b]]
        return first + reduced


def values(caller: Caller | None, project_id: int, job_id: int, paths: list[str],
           start: int | None, end: int | None, max_changes: int | None) -> dict[str, Any]:
    """{start, end, timescale, signals: [{path, width, changes: [[time, value], ...],
    truncated}]}.

    The first change is the value at `start` (omitted when the signal has no value yet).
    Reduction past `max_changes`: the window is cut into (max_changes - 1) // 2 equal time
    buckets and each keeps its first and last change, so every bucket in which the signal
    moved still shows a transition, however narrow (a glitch between two kept changes appears
    as the jump from the first to the last value); `truncated` is true.
    """
    wanted = _paths(paths)
    limit = DEFAULT_MAX_CHANGES if max_changes is None else max_changes
    if not 3 <= limit <= MAX_MAX_CHANGES:
        raise Unprocessable(f"max_changes must be between 3 and {MAX_MAX_CHANGES}")
    trace = trace_of(caller, project_id, job_id)
    lo, hi = _window(trace, start, end)
    widths, timescale = _meta(trace, wanted)
    series = {path: Series(lo, hi, limit) for path in wanted}

    def take(path: str, t: int, value: str) -> None:
        series[path].take(t, render(value, widths[path]))

    stream_window(trace, wanted, lo, hi, take)
    return {"start": lo, "end": hi, "timescale": timescale,
            "signals": [{"path": path, "width": widths[path], "changes": s.result(),
                         "truncated": s.truncated} for path, s in series.items()]}


_RANGE_SUFFIX = re.compile(r" \[[^\]]*\]$")


def stream_window(trace: Trace, paths: list[str], start: int, end: int,
                  on_change: Callable[[str, int, str], object],
                  budget: int | None = MAX_READ_CHANGES) -> None:
    """The changes of `paths` from the FST blocks that overlap [start, end], in time order, as
    (path, time, value) — including each block's values from before `start` (its initial
    values), and possibly some after `end`; the caller filters.

    gtkwave's libfst reader (pylibfst) with a signal mask and fstReaderSetLimitTimeRange reads
    only those signals' data in those blocks: a window at the end of a long trace costs the
    window, not the trace (bench/waveform.py). libfst names vectors "q [31:0]": the range is
    dropped to match the hierarchical path.

    Raises Unprocessable (422) when the blocks hold more than `budget` changes of `paths`
    (None: no bound; the benchmarks only). libfst cannot stop a block walk from a callback, so
    past the budget the callback returns at once and the refusal follows the walk.
    """
    import pylibfst

    lib, ffi = pylibfst.lib, pylibfst.ffi
    reader = lib.fstReaderOpen(str(trace.path).encode())
    if reader == ffi.NULL:
        raise Unprocessable("the stored waveform cannot be read as FST")
    try:
        _scopes, signals = pylibfst.get_scopes_signals2(reader)
        handles = {_RANGE_SUFFIX.sub("", name): sig.handle
                   for name, sig in signals.by_name.items()}
        missing = [p for p in paths if p not in handles]
        if missing:
            raise Unprocessable(f"no signal named {', '.join(map(repr, missing))} in this "
                                "waveform")
        by_handle: dict[int, list[str]] = {}
        for path in paths:
            by_handle.setdefault(handles[path], []).append(path)
        lib.fstReaderClrFacProcessMaskAll(reader)
        for handle in by_handle:
            lib.fstReaderSetFacProcessMask(reader, handle)
        lib.fstReaderSetLimitTimeRange(reader, start, end)

        seen = [0]

        def callback(_data: Any, t: int, handle: int, value: Any) -> None:
            seen[0] += 1
            if budget is not None and seen[0] > budget:
                return
            text = ffi.string(value).decode("ascii", "replace")
            for path in by_handle.get(handle, ()):
                on_change(path, int(t), text)

        pylibfst.fstReaderIterBlocks(reader, callback)
    finally:
        lib.fstReaderClose(reader)
    if budget is not None and seen[0] > budget:
        raise Unprocessable(f"the window holds more than {budget} changes of the asked signals; "
                            "ask for a shorter window (start, end) or fewer signals")


def _meta(trace: Trace, paths: list[str]) -> tuple[dict[str, int], str]:
    """The width of each named signal (422 naming the unknown ones) and the timescale."""
    waveform = trace.open()
    by_path = {v.full_name: v for v in waveform.all_vars()}
    missing = [p for p in paths if p not in by_path]
    if missing:
        raise Unprocessable(f"no signal named {', '.join(map(repr, missing))} in this waveform")
    return {p: int(by_path[p].bitwidth or 0) for p in paths}, str(waveform.timescale)


def _widths(trace: Trace, paths: list[str]) -> dict[str, int]:
    return _meta(trace, paths)[0]


def search(caller: Caller | None, project_id: int, job_id: int, path: str, value: str,
           after: int | None) -> dict[str, Any]:
    """{signal, value, after, time}: the first time t >= after at which the signal holds
    `value` (the value it already holds at `after` counts), or time null."""
    trace = trace_of(caller, project_id, job_id)
    width = _widths(trace, [path])[path]
    bits = parse_value(value, width)
    since = trace.start_time if after is None else after
    if since < 0:
        raise Unprocessable("after must be a non-negative time")
    found: list[int] = []
    holding: list[str] = []

    def take(_path: str, t: int, value: str) -> None:
        v = render(value, width)
        if found:
            return
        if t <= since:
            holding[:] = [v]
            return
        if holding and holding[0] == bits:
            found.append(since)
            return
        holding.clear()
        if v == bits:
            found.append(t)

    # Only the blocks from `after` on are read (libfst's time range), never the earlier trace.
    stream_window(trace, [path], since, trace.end_time, take)
    if not found and holding and holding[0] == bits:
        found.append(since)
    return {"signal": path, "value": bits, "after": since,
            "time": found[0] if found else None}


class _Budget:
    """Changes a compare request may still read (each round re-streams from the start)."""

    def __init__(self, changes: int) -> None:
        self.left = changes


def _chunk(trace: Trace, path: str, since: int,
           budget: _Budget) -> tuple[list[tuple[int, str]], bool]:
    """The last change at or before `since`, then up to COMPARE_CHUNK changes after it (a
    fresh stream from the start, so memory stays bounded), and whether the signal ended.
    Raises _Spent when the request's read budget runs out."""
    got: list[tuple[int, str]] = []
    before: list[tuple[int, str]] = []

    def take(t: int, v: str) -> bool:
        budget.left -= 1
        if budget.left < 0:
            raise _Spent
        if t <= since:
            before[:] = [(t, v)]
            return True
        got.append((t, v))
        return len(got) < COMPARE_CHUNK

    stream(trace, path, take)
    return before + got, len(got) < COMPARE_CHUNK


def compare(caller: Caller | None, project_id: int, job_id: int, other_job: int,
            paths: list[str]) -> dict[str, Any]:
    """Per signal the first time the two jobs' values differ (null when they agree up to the
    shorter trace's end), with both values there. 422 when a signal is missing from either."""
    wanted = _paths(paths)
    mine = trace_of(caller, project_id, job_id)
    theirs = trace_of(caller, project_id, other_job)
    widths = _widths(mine, wanted)
    other_widths = _widths(theirs, wanted)
    until = min(mine.end_time, theirs.end_time)
    out: list[dict[str, Any]] = []
    budget = _Budget(COMPARE_READ_CHANGES)
    for path in wanted:
        if budget.left <= 0:
            out.append({"path": path, "first_difference": None, "value": None,
                        "other_value": None, "reason": "not compared: this request read "
                        f"{COMPARE_READ_CHANGES} changes; ask for fewer signals"})
            continue
        if widths[path] != other_widths[path]:
            out.append({"path": path, "first_difference": mine.start_time,
                        "value": None, "other_value": None,
                        "reason": f"width {widths[path]} vs {other_widths[path]}"})
            continue
        out.append({"path": path, **_first_difference(mine, theirs, path, until, budget)})
    return {"job_id": job_id, "other_job": other_job, "compared_until": until, "signals": out}


def _first_difference(a: Trace, b: Trace, path: str, until: int,
                      budget: _Budget) -> dict[str, Any]:
    """Both series in chunks, merged by time: the first time (up to `until`) after which the two
    values differ. Each round compares up to the earlier of the two chunks' last times. When the
    request's read budget runs out, the signal is reported as agreeing up to where it got."""
    since = -1
    while True:
        try:
            ca, done_a = _chunk(a, path, since, budget)
            cb, done_b = _chunk(b, path, since, budget)
        except _Spent:
            return {"first_difference": None, "value": None, "other_value": None,
                    "reason": f"the traces agree up to {max(since, 0)}; comparing further "
                    f"would read more than {COMPARE_READ_CHANGES} changes: ask with fewer "
                    "signals"}
        horizon = min(ca[-1][0] if ca and not done_a else until,
                      cb[-1][0] if cb and not done_b else until, until)
        i = j = 0
        va: str | None = None
        vb: str | None = None
        while True:
            ta = ca[i][0] if i < len(ca) else None
            tb = cb[j][0] if j < len(cb) else None
            candidates = [t for t in (ta, tb) if t is not None]
            if not candidates:
                break
            t = min(candidates)
            if t > horizon:
                break
            while i < len(ca) and ca[i][0] == t:
                va = ca[i][1]
                i += 1
            while j < len(cb) and cb[j][0] == t:
                vb = cb[j][1]
                j += 1
            if t > since and va != vb:
                return {"first_difference": t, "value": va, "other_value": vb, "reason": None}
        if horizon >= until or (done_a and done_b):
            return {"first_difference": None, "value": None, "other_value": None,
                    "reason": None}
        since = horizon
