"""Inline SVG charts for the stats page, drawn on the server: no JavaScript, no network.

Every label is escaped: reviewer names, mailbox names and template names are user text.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

# Stacked in this order; the colours of the page's legend (static/replyhub.css).
KINDS = [("unchanged", "#067647"), ("edited", "#f79009"), ("rejected", "#c4320a")]
# Approved replies against their reply target.
TARGET_KINDS = [("on-time", "#067647"), ("late", "#c4320a")]
_ids = count(1)


def _kind_labels() -> dict[str, str]:
    return {
        "unchanged": _("approved unchanged"),
        "edited": _("approved after edits"),
        "rejected": _("rejected"),
        "on-time": _("answered within the target"),
        "late": _("answered after the target"),
    }


def _svg(title: str, width: int, height: int, body: list[str], css_class: str) -> SafeString:
    title_id = f"chart-title-{next(_ids)}"
    # Safe: every piece of text in ``body`` and ``title`` went through escape().
    return mark_safe(
        f'<svg class="chart {css_class}" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-labelledby="{title_id}" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{title_id}">{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _stack(values: dict[str, int]) -> str:
    """The tooltip of one bar: each kind and its count."""
    labels = _kind_labels()
    return ", ".join(f"{labels[kind]}: {count}" for kind, count in values.items())


def trend_chart(
    days: Sequence[tuple[str, ...]], title: str, kinds: Sequence[tuple[str, str]] = KINDS
) -> SafeString:
    """Counts per day, stacked: (day, a count per kind) per day, oldest first; by default
    decisions (unchanged, edited, rejected)."""
    width, height, left, bottom, top = 720, 200, 36, 22, 10
    plot_height = height - bottom - top
    most = max((sum(day[1:]) for day in days), default=0) or 1
    step = (width - left - 4) / max(len(days), 1)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#98a2b3"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="11">{most}</text>',
        f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end" font-size="11">0</text>',
    ]
    for n, (day, *values) in enumerate(days):
        x = left + n * step
        y = height - bottom
        bars = []
        for (kind, colour), value in zip(kinds, values, strict=True):
            if value:
                bar_height = plot_height * value / most
                y -= bar_height
                bars.append(
                    f'<rect class="{kind}" x="{x + 0.5:.1f}" y="{y:.1f}" '
                    f'width="{max(step - 1, 0.5):.1f}" height="{bar_height:.1f}" fill="{colour}"/>'
                )
        tooltip = f"{day}: {_stack(dict(zip([k for k, _c in kinds], values, strict=True)))}"
        body.append(f"<g><title>{escape(tooltip)}</title>{''.join(bars)}</g>")
    if days:
        body.append(
            f'<text x="{left}" y="{height - 6}" font-size="11">{escape(days[0][0])}</text>'
            f'<text x="{width}" y="{height - 6}" text-anchor="end" font-size="11">'
            f"{escape(days[-1][0])}</text>"
        )
    return _svg(title, width, height, body, "trend")


def bar_chart(rows: Sequence[tuple[str, int, int, int]], title: str) -> SafeString:
    """A horizontal stacked bar per group: (label, unchanged, edited, rejected), top first."""
    width, label_width, row_height = 720, 200, 22
    height = max(len(rows), 1) * row_height + 4
    most = max((sum(row[1:]) for row in rows), default=0) or 1
    plot_width = width - label_width - 60
    body = []
    for n, (label, *values) in enumerate(rows):
        y = 2 + n * row_height
        short = label if len(label) <= 28 else label[:27] + "…"
        body.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(short)}</text>"
        )
        x = label_width
        bars = []
        for (kind, colour), value in zip(KINDS, values, strict=True):
            if value:
                bar_width = plot_width * value / most
                bars.append(
                    f'<rect class="{kind}" x="{x:.1f}" y="{y + 3}" width="{bar_width:.1f}" '
                    f'height="{row_height - 6}" fill="{colour}"/>'
                )
                x += bar_width
        tooltip = f"{label}: {_stack(dict(zip([k for k, _c in KINDS], values, strict=True)))}"
        body.append(
            f"<g><title>{escape(tooltip)}</title>{''.join(bars)}</g>"
            f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">{sum(values)}</text>'
        )
    return _svg(title, width, height, body, "bars")
