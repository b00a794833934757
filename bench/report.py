"""The bench's result table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADINGS = ("measure", "a6hub", "reference (same run)", "target", "")


@dataclass(frozen=True)
class Row:
    measure: str
    value: str
    reference: str = ""
    target: str = ""
    met: bool | None = None  # None: no target to judge


def verdict(met: bool | None) -> str:
    return "" if met is None else ("ok" if met else "MISSED")


def format_table(rows: Sequence[Row], title: str = "") -> str:
    cells = [HEADINGS] + [(r.measure, r.value, r.reference, r.target, verdict(r.met)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADINGS))]
    lines = [title] if title else []
    for n, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
