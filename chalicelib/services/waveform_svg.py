"""A timing diagram as SVG from a `waveforms.values` answer: one row per signal.

1-bit signals are drawn as a line between a high and a low level; buses as the usual run of
hexagon-ended boxes with the value written in hex when it fits (binary when it holds x or z).
Unknown (x) spans are red, high-impedance (z) spans amber on a mid line, so neither hides.
Every name and value is XML-escaped: Verilog escaped identifiers may hold any character.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

LABEL_W = 240
ROW_H = 30
AXIS_H = 28
PAD = 8
HIGH, LOW = 6, 22  # y of a 1 and a 0 inside a row
X_COLOUR, Z_COLOUR, LINE, BUS_FILL = "#d62728", "#e6a100", "#1f77b4", "#eaf2fb"
CHAR_W = 7  # px per label character at font-size 11


def plot_width(total: int) -> int:
    return max(100, total - LABEL_W - PAD)


def _label(bits: str) -> str:
    """A bus value for the eye: hex when fully known, else the binary string."""
    if set(bits) <= set("01"):
        return format(int(bits, 2), "x") if bits else ""
    return bits


def _segments(changes: list[list[Any]], start: int, end: int) -> list[tuple[int, int, str]]:
    """(from, to, value) runs covering [start, end] from the changes (first = value at start)."""
    runs = []
    for i, (t, v) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else end
        lo, hi = max(int(t), start), min(int(until), end)
        if hi >= lo:
            runs.append((lo, hi, str(v)))
    return runs


def render(answer: dict[str, Any], width: int = 1000) -> str:
    """The SVG document (a str) for `answer` = {start, end, timescale, signals: [...]}."""
    start, end = int(answer["start"]), int(answer["end"])
    plot = plot_width(width)
    span = max(1, end - start)

    def x(t: int) -> float:
        return round(LABEL_W + (t - start) * plot / span, 2)

    rows = answer["signals"]
    height = AXIS_H + ROW_H * len(rows) + PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    timescale = escape(str(answer.get("timescale", "")))
    for k in range(6):
        t = start + span * k // 5
        out.append(f'<line x1="{x(t)}" y1="{AXIS_H - 6}" x2="{x(t)}" y2="{height}" '
                   'stroke="#dddddd"/>')
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        out.append(f'<text x="{x(t)}" y="{AXIS_H - 10}" text-anchor="{anchor}">{t}</text>')
    out.append(f'<text x="{PAD}" y="{AXIS_H - 10}">time ({timescale})</text>')
    for row, signal in enumerate(rows):
        top = AXIS_H + row * ROW_H
        name = str(signal["path"])
        shown = name if len(name) * CHAR_W < LABEL_W - PAD else "…" + name[-(LABEL_W // CHAR_W - 2):]
        out.append(f'<g><title>{escape(name)}</title>'
                   f'<text x="{PAD}" y="{top + 18}">{escape(shown)}</text></g>')
        runs = _segments(signal["changes"], start, end)
        if int(signal.get("width") or 0) == 1:
            out.extend(_bit_row(runs, top, x))
        else:
            out.extend(_bus_row(runs, top, x))
    out.append("</svg>")
    return "\n".join(out)


def _bit_row(runs: list[tuple[int, int, str]], top: int, x: Any) -> list[str]:
    parts: list[str] = []
    points: list[str] = []
    for lo, hi, v in runs:
        if v in ("0", "1"):
            y = top + (HIGH if v == "1" else LOW)
            points += [f"{x(lo)},{y}", f"{x(hi)},{y}"]
            continue
        if points:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}"/>')
            points = []
        colour = Z_COLOUR if v == "z" else X_COLOUR
        if v == "z":
            mid = top + (HIGH + LOW) // 2
            parts.append(f'<line x1="{x(lo)}" y1="{mid}" x2="{x(hi)}" y2="{mid}" '
                         f'stroke="{colour}"/>')
        else:
            parts.append(f'<rect x="{x(lo)}" y="{top + HIGH}" width="{max(0.5, x(hi) - x(lo))}" '
                         f'height="{LOW - HIGH}" fill="{colour}" fill-opacity="0.5"/>')
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}"/>')
    return parts


def _bus_row(runs: list[tuple[int, int, str]], top: int, x: Any) -> list[str]:
    parts = []
    mid = top + (HIGH + LOW) // 2
    for lo, hi, v in runs:
        x0, x1 = x(lo), x(hi)
        edge = min(3.0, (x1 - x0) / 2)
        colour = X_COLOUR if "x" in v else Z_COLOUR if "z" in v else LINE
        fill = colour if colour != LINE else BUS_FILL
        shape = (f"{x0},{mid} {x0 + edge},{top + HIGH} {x1 - edge},{top + HIGH} {x1},{mid} "
                 f"{x1 - edge},{top + LOW} {x0 + edge},{top + LOW}")
        opacity = "0.35" if colour != LINE else "1"
        parts.append(f'<polygon points="{shape}" fill="{fill}" fill-opacity="{opacity}" '
                     f'stroke="{colour}"/>')
        text = _label(v)
        if len(text) * CHAR_W + 6 < x1 - x0:
            parts.append(f'<text x="{round((x0 + x1) / 2, 2)}" y="{mid + 4}" '
                         f'text-anchor="middle">{escape(text)}</text>')
    return parts
