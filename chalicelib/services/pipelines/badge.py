"""A status badge in the flat look of shields.io CI badges (label | message, 20 px high)."""

from __future__ import annotations

from html import escape

# Colours as shields.io names them: brightgreen, red, yellow, lightgrey.
COLOURS = {"passed": "#4c1", "failed": "#e05d44", "running": "#dfb317", "pending": "#dfb317",
           "cancelled": "#9f9f9f", None: "#9f9f9f"}
WORDS = {"passed": "passing", "failed": "failing", "running": "running", "pending": "pending",
         "cancelled": "cancelled", None: "no pipeline"}
# Verdana 11 px advance widths (px) of the characters badges use; others count as 7.
_NARROW = {**dict.fromkeys("fijlrt.,:;' !|", 4.0), **dict.fromkeys("Iabcdeghknopqsuvxyz", 6.6),
           **dict.fromkeys("mw", 10.0)}


def _width(text: str) -> int:
    return round(sum(_NARROW.get(ch, 7.0) for ch in text)) + 10  # 5 px padding each side


def badge_svg(status: str | None, label: str = "pipeline") -> str:
    """The badge for a pipeline status (None: the ref has no pipeline)."""
    message = WORDS.get(status, str(status))
    colour = COLOURS.get(status, "#9f9f9f")
    left, right = _width(label), _width(message)
    total = left + right
    label_x, message_x = left * 5, (left + right / 2) * 10
    text = escape(f"{label}: {message}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{text}"><title>{text}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text x="{label_x:.0f}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">'
        f'{escape(label)}</text>'
        f'<text x="{label_x:.0f}" y="140" transform="scale(.1)">{escape(label)}</text>'
        f'<text x="{message_x:.0f}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)">{escape(message)}</text>'
        f'<text x="{message_x:.0f}" y="140" transform="scale(.1)">{escape(message)}</text>'
        '</g></svg>')
