"""Small SVG charts drawn on the server from a list of counts: no JavaScript, no library.

``sparkline`` is the events list's (one a row, the last 48 hours);
``bar_chart`` the group page's (hourly and daily, with axis labels and a
``<title>`` per bar, which browsers show on hover and screen readers read).
A bar's height is its count's share of the largest count; a bucket without
occurrences is a bar of height 0, so every chart has one bar per bucket.
Colours come from ``currentColor`` and the admin's CSS variables
(``integrity.css``), so light and dark themes both apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity.events.trends import Point

SPARK_WIDTH, SPARK_HEIGHT = 72, 20  # 1.5 px an hour: the events table fits beside its filters at 1,400 px
CHART_WIDTH, CHART_HEIGHT = 600, 150
LEFT, BOTTOM, TOP = 40, 22, 8  # room for the y labels, the x labels, and the top bar's edge


def heights(counts: Sequence[int], full: float) -> list[float]:
    """Each count's bar height: its share of the largest count times ``full`` (all 0 when nothing occurred)."""
    peak = max(counts, default=0)
    return [round(full * c / peak, 2) if peak else 0.0 for c in counts]


def _occurrences(n: int) -> str:
    return ngettext("%(n)s occurrence", "%(n)s occurrences", n) % {"n": f"{n:,}"}


def _moment(start: datetime, hourly: bool) -> str:
    local = timezone.localtime(start) if timezone.is_aware(start) else start
    return date_format(local, "Y-m-d H:i" if hourly else "Y-m-d")


def sparkline(points: Sequence[Point]) -> SafeString:
    """The last hours as tiny bars, its total as its accessible name."""
    counts = [p.count for p in points]
    label = escape(
        ngettext("%(total)s in the last %(n)s hour", "%(total)s in the last %(n)s hours", len(points))
        % {"total": _occurrences(sum(counts)), "n": len(points)}
    )
    step = SPARK_WIDTH / max(len(points), 1)
    bars = "".join(
        f'<rect class="bar" data-count="{c}" x="{i * step:.2f}" y="{SPARK_HEIGHT - h:.2f}" '
        f'width="{step * 0.8:.2f}" height="{h:.2f}"></rect>'
        for i, (c, h) in enumerate(zip(counts, heights(counts, SPARK_HEIGHT), strict=True))
    )
    return mark_safe(  # noqa: S308 - the label is escaped, the rest are numbers
        f'<svg class="integrity-sparkline" viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" width="{SPARK_WIDTH}" '
        f'height="{SPARK_HEIGHT}" role="img" aria-label="{label}"><title>{label}</title>'
        f'<line class="axis" x1="0" y1="{SPARK_HEIGHT}" x2="{SPARK_WIDTH}" y2="{SPARK_HEIGHT}"></line>'
        f"{bars}</svg>"
    )


def bar_chart(points: Sequence[Point], *, hourly: bool, chart_id: str, title: str) -> SafeString:
    """A bar per bucket with its count and time as ``<title>``, the peak and 0 on the y axis, three times on the x axis."""
    counts = [p.count for p in points]
    plot_w, plot_h = CHART_WIDTH - LEFT, CHART_HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(points), 1)
    base = TOP + plot_h
    bars = []
    for i, (point, h) in enumerate(zip(points, heights(counts, plot_h), strict=True)):
        tip = escape(f"{_occurrences(point.count)}, {_moment(point.start, hourly)}")
        bars.append(
            f'<rect class="bar" data-count="{point.count}" x="{LEFT + i * step + step * 0.1:.2f}" '
            f'y="{base - h:.2f}" width="{step * 0.8:.2f}" height="{h:.2f}"><title>{tip}</title></rect>'
        )
    peak = max(counts, default=0)
    total = sum(counts)
    labels = [
        f'<text class="label" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{peak:,}</text>',
        f'<text class="label" x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>',
    ]
    if points:
        ticks = sorted({0, len(points) // 2, len(points) - 1})
        anchors = {0: "start", len(points) - 1: "end"}
        for i in ticks:
            x = LEFT + i * step + (step if i == len(points) - 1 else 0)
            labels.append(
                f'<text class="label" x="{x:.2f}" y="{CHART_HEIGHT - 6}" '
                f'text-anchor="{anchors.get(i, "middle")}">{escape(_moment(points[i].start, hourly))}</text>'
            )
    if total:
        busiest = max(points, key=lambda p: p.count)
        summary = _("%(total)s in all; the most, %(peak)s, at %(when)s.") % {
            "total": _occurrences(total),
            "peak": f"{peak:,}",
            "when": _moment(busiest.start, hourly),
        }
    else:
        summary = _("No occurrence in this time.")
    cid = escape(chart_id)
    return mark_safe(  # noqa: S308 - every text is escaped, the rest are numbers
        f'<svg class="integrity-chart" id="{cid}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'role="img" aria-labelledby="{cid}-title {cid}-desc">'
        f'<title id="{cid}-title">{escape(title)}</title><desc id="{cid}-desc">{escape(summary)}</desc>'
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{CHART_WIDTH}" y2="{base}"></line>'
        f"{''.join(labels)}{''.join(bars)}</svg>"
    )
