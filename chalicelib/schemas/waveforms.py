"""Waveform answers (chalicelib/services/waveforms.py): times are integers in `timescale`
units, values binary strings with x/z, most significant bit first."""

from __future__ import annotations

from chalicelib.schemas.common import PublicModel


class WaveformPublic(PublicModel):
    job_id: int
    format: str  # "fst"
    timescale: str  # e.g. "1ps"
    start_time: int
    end_time: int
    scope_count: int
    signal_count: int


class WaveformSignal(PublicModel):
    path: str  # full hierarchical name, e.g. testbench.uut.mem_valid
    name: str
    scope: str
    width: int  # bits
    kind: str  # wire, reg, integer, parameter, ...


class SignalValues(PublicModel):
    path: str
    width: int
    changes: list[tuple[int, str]]  # [time, value]: the value at start first, then each change
    truncated: bool  # reduced past max_changes (first and last change per time bucket)


class WaveformValues(PublicModel):
    start: int
    end: int
    timescale: str
    signals: list[SignalValues]


class WaveformSearch(PublicModel):
    signal: str
    value: str  # the searched value as a binary string of the signal's width
    after: int
    time: int | None  # the first time >= after the signal holds value; null if never


class SignalDifference(PublicModel):
    path: str
    first_difference: int | None  # null: equal up to compared_until
    value: str | None  # this job's value there
    other_value: str | None
    reason: str | None = None


class WaveformCompare(PublicModel):
    job_id: int
    other_job: int
    compared_until: int  # the shorter trace's end
    signals: list[SignalDifference]
