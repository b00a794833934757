"""Routes: /api/v1/projects/{project_id}/jobs/{job_id}/waveform… (a simulation's trace).

Readers of the project, as for the job itself (public projects without a token, so the SVG can
be embedded in a README). Times are integers in the trace's timescale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.api.http import path_id, query, query_int, query_required, route
from chalicelib.errors import Unprocessable
from chalicelib.openapi import Doc, Param
from chalicelib.schemas.waveforms import (
    WaveformCompare,
    WaveformPublic,
    WaveformSearch,
    WaveformSignal,
    WaveformValues,
)
from chalicelib.services import waveform_svg, waveforms
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)

BASE = "/{project_id}/jobs/{job_id}"
SIGNALS = Param("signals", "query", "Comma-separated full signal paths (at most 64)",
                required=True)
START = Param("start", "query", "Window start (default: the trace's start)", schema_type="integer")
END = Param("end", "query", "Window end (default: the trace's end)", schema_type="integer")
MAX_CHANGES = Param("max_changes", "query",
                    "Changes per signal before the series is reduced (3..200000, default 10000)",
                    schema_type="integer")
SVG_HEADERS: dict[str, str | list[str]] = {"Content-Type": "image/svg+xml; charset=utf-8",
               # Nothing in the image may run or load anything (names come from user HDL).
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
               "X-Content-Type-Options": "nosniff"}
TIME_MAX = 2**63 - 1


def _time(name: str) -> int | None:
    return query_int(bp.current_request, name, 0, TIME_MAX)


def _signal_list() -> list[str]:
    return [p.strip() for p in query_required(bp.current_request, "signals").split(",")]


@route(bp, f"{BASE}/waveform",
       doc=Doc("A simulation job's waveform: format, timescale, time range, sizes",
               response=WaveformPublic, auth="optional"))
def get_waveform(caller: Caller | None, project_id: int, job_id: int) -> WaveformPublic:
    return WaveformPublic.model_validate(waveforms.summary(caller, project_id, job_id))


@route(bp, f"{BASE}/waveform/signals",
       doc=Doc("The waveform's signals, by path, paged", response=WaveformSignal, is_list=True,
               auth="optional",
               params=(Param("scope", "query", "Only signals at or below this scope"),
                       Param("search", "query", "Only paths containing this (any case)"))))
def list_signals(caller: Caller | None, project_id: int, job_id: int, limit: int,
                 cursor: str | None) -> Page[WaveformSignal]:
    request = bp.current_request
    rows, next_cursor = waveforms.signals(caller, project_id, job_id, query(request, "scope"),
                                          query(request, "search"), limit, cursor)
    return Page(items=[WaveformSignal.model_validate(r) for r in rows], next_cursor=next_cursor)


@route(bp, f"{BASE}/waveform/values",
       doc=Doc("Values of signals in a time window: the value at start, then every change",
               response=WaveformValues, auth="optional",
               params=(SIGNALS, START, END, MAX_CHANGES)))
def get_values(caller: Caller | None, project_id: int, job_id: int) -> WaveformValues:
    answer = waveforms.values(caller, project_id, job_id, _signal_list(), _time("start"),
                              _time("end"), _time("max_changes"))
    return WaveformValues.model_validate(answer)


@route(bp, f"{BASE}/waveform/search",
       doc=Doc("The first time a signal holds a value, at or after a time", response=WaveformSearch,
               auth="optional",
               params=(Param("signal", "query", "Full signal path", required=True),
                       Param("value", "query", "Binary with x/z, or 0x hex, 0d decimal",
                             required=True),
                       Param("after", "query", "Search from this time (default: start)",
                             schema_type="integer"))))
def search_value(caller: Caller | None, project_id: int, job_id: int) -> WaveformSearch:
    request = bp.current_request
    answer = waveforms.search(caller, project_id, job_id, query_required(request, "signal"),
                              query_required(request, "value"), _time("after"))
    return WaveformSearch.model_validate(answer)


@route(bp, f"{BASE}/waveform/compare",
       doc=Doc("Per signal, the first time this job's waveform differs from another job's",
               response=WaveformCompare, auth="optional",
               params=(Param("other_job", "query", "The other job of this project",
                             required=True, schema_type="integer"), SIGNALS)))
def compare_waveforms(caller: Caller | None, project_id: int, job_id: int) -> WaveformCompare:
    other = path_id(query_required(bp.current_request, "other_job"))
    if not other:
        raise Unprocessable("other_job must be a job id")
    answer = waveforms.compare(caller, project_id, job_id, other, _signal_list())
    return WaveformCompare.model_validate(answer)


@route(bp, f"{BASE}/waveform.svg",
       doc=Doc("The chosen signals as an SVG timing diagram (embeddable; public projects "
               "need no token)", auth="optional", content_type="image/svg+xml",
               params=(SIGNALS, START, END,
                       Param("width", "query", "Image width in px (300..4000, default 1000)",
                             schema_type="integer"))))
def waveform_svg_view(caller: Caller | None, project_id: int, job_id: int) -> Response:
    width = query_int(bp.current_request, "width", 300, 4000) or 1000
    # Two kept changes per pixel column: every column where a signal moved shows a transition.
    answer = waveforms.values(caller, project_id, job_id, _signal_list(), _time("start"),
                              _time("end"), 2 * waveform_svg.plot_width(width) + 1)
    return Response(body=waveform_svg.render(answer, width), status_code=200,
                    headers=SVG_HEADERS)
