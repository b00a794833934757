"""Routes: /api/v1/projects/{project_id}/jobs/{job_id}/waveform… (a simulation's trace).

Readers of the project, as for the job itself (public projects without a token, so the SVG can
be embedded in a README). Times are integers in the trace's timescale.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalice import Blueprint, Response

from chalicelib.api.http import (
    json_response,
    list_response,
    optional_caller,
    page_request,
    path_id,
    route,
)
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


def _params() -> Mapping[str, str]:
    return bp.current_request.query_params or {}


def _int(name: str, low: int = 0, high: int = 2**63 - 1) -> int | None:
    raw = _params().get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as e:
        raise Unprocessable(f"{name} must be an integer") from e
    if not low <= value <= high:
        raise Unprocessable(f"{name} must be between {low} and {high}")
    return value


def _required(name: str) -> str:
    value = _params().get(name, "").strip()
    if not value:
        raise Unprocessable(f"{name} is required")
    return value


def _signal_list() -> list[str]:
    return [p.strip() for p in _required("signals").split(",")]


@route(bp, f"{BASE}/waveform",
       doc=Doc("A simulation job's waveform: format, timescale, time range, sizes",
               response=WaveformPublic, auth="optional"))
def get_waveform(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    return json_response(WaveformPublic.model_validate(
        waveforms.summary(caller, path_id(project_id), path_id(job_id))))


@route(bp, f"{BASE}/waveform/signals",
       doc=Doc("The waveform's signals, by path, paged", response=WaveformSignal, is_list=True,
               auth="optional",
               params=(Param("scope", "query", "Only signals at or below this scope"),
                       Param("search", "query", "Only paths containing this (any case)"))))
def list_signals(project_id: str, job_id: str) -> Response:
    request = bp.current_request
    caller = optional_caller(request)
    limit, cursor = page_request(request)
    rows, next_cursor = waveforms.signals(
        caller, path_id(project_id), path_id(job_id), _params().get("scope") or None,
        _params().get("search") or None, limit, cursor)
    items = [WaveformSignal.model_validate(r) for r in rows]
    return list_response(request, items, Page(items=items, next_cursor=next_cursor), limit)


@route(bp, f"{BASE}/waveform/values",
       doc=Doc("Values of signals in a time window: the value at start, then every change",
               response=WaveformValues, auth="optional",
               params=(SIGNALS, START, END, MAX_CHANGES)))
def get_values(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    answer = waveforms.values(caller, path_id(project_id), path_id(job_id), _signal_list(),
                              _int("start"), _int("end"), _int("max_changes"))
    return json_response(WaveformValues.model_validate(answer))


@route(bp, f"{BASE}/waveform/search",
       doc=Doc("The first time a signal holds a value, at or after a time", response=WaveformSearch,
               auth="optional",
               params=(Param("signal", "query", "Full signal path", required=True),
                       Param("value", "query", "Binary with x/z, or 0x hex, 0d decimal",
                             required=True),
                       Param("after", "query", "Search from this time (default: start)",
                             schema_type="integer"))))
def search_value(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    answer = waveforms.search(caller, path_id(project_id), path_id(job_id), _required("signal"),
                              _required("value"), _int("after"))
    return json_response(WaveformSearch.model_validate(answer))


@route(bp, f"{BASE}/waveform/compare",
       doc=Doc("Per signal, the first time this job's waveform differs from another job's",
               response=WaveformCompare, auth="optional",
               params=(Param("other_job", "query", "The other job of this project",
                             required=True, schema_type="integer"), SIGNALS)))
def compare_waveforms(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    other = path_id(_required("other_job"))
    if not other:
        raise Unprocessable("other_job must be a job id")
    answer = waveforms.compare(caller, path_id(project_id), path_id(job_id), other,
                               _signal_list())
    return json_response(WaveformCompare.model_validate(answer))


@route(bp, f"{BASE}/waveform.svg",
       doc=Doc("The chosen signals as an SVG timing diagram (embeddable; public projects "
               "need no token)", auth="optional", content_type="image/svg+xml",
               params=(SIGNALS, START, END,
                       Param("width", "query", "Image width in px (300..4000, default 1000)",
                             schema_type="integer"))))
def waveform_svg_view(project_id: str, job_id: str) -> Response:
    caller = optional_caller(bp.current_request)
    width = _int("width", 300, 4000) or 1000
    # Two kept changes per pixel column: every column where a signal moved shows a transition.
    answer = waveforms.values(caller, path_id(project_id), path_id(job_id), _signal_list(),
                              _int("start"), _int("end"), 2 * waveform_svg.plot_width(width) + 1)
    return Response(body=waveform_svg.render(answer, width), status_code=200,
                    headers=SVG_HEADERS)
