"""The SVG charts (integrity.events.charts): one bar per bucket, heights in the counts' proportions, zero drawn as zero."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from integrity.events import charts
from integrity.events.trends import Point

START = datetime(2026, 12, 1, tzinfo=UTC)
BAR = re.compile(
    r'<rect class="bar" data-count="(\d+)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)">'
)


def points(*counts: int, step: timedelta = timedelta(hours=1)) -> list[Point]:
    return [Point(START + i * step, c) for i, c in enumerate(counts)]


def bars(svg: str) -> list[tuple[int, float]]:
    return [(int(c), float(h)) for c, _y, h in BAR.findall(svg)]


def test_a_sparklines_bars_are_the_counts_in_proportion_and_empty_hours_are_zero() -> None:
    svg = charts.sparkline(points(0, 2, 4, 0, 1))
    drawn = bars(svg)
    assert [c for c, _h in drawn] == [0, 2, 4, 0, 1]
    assert [h for _c, h in drawn] == [
        0.0,
        charts.SPARK_HEIGHT / 2,
        charts.SPARK_HEIGHT,
        0.0,
        charts.SPARK_HEIGHT / 4,
    ]
    assert 'aria-label="7 occurrences in the last 5 hours"' in svg


def test_a_chart_without_occurrences_has_every_bar_at_zero() -> None:
    svg = charts.bar_chart(points(0, 0, 0), hourly=True, chart_id="c", title="Per hour")
    assert bars(svg) == [(0, 0.0)] * 3
    assert '<desc id="c-desc">No occurrence in this time.</desc>' in svg


def test_the_bar_chart_says_each_bars_count_and_time_and_labels_its_axes() -> None:
    svg = charts.bar_chart(points(1, 3, 0, 6), hourly=True, chart_id="h", title="Per hour, the last 4 hours")
    full = charts.CHART_HEIGHT - charts.BOTTOM - charts.TOP
    assert bars(svg) == [(1, round(full / 6, 2)), (3, full / 2), (0, 0.0), (6, float(full))]
    titles = re.findall(r"<rect [^>]*><title>([^<]*)</title></rect>", svg)
    assert titles[0] == "1 occurrence, 2026-12-01 00:00" and titles[3] == "6 occurrences, 2026-12-01 03:00"
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', svg)
    assert labels[:2] == ["6", "0"]  # the y axis: the peak and zero
    assert labels[2:] == ["2026-12-01 00:00", "2026-12-01 02:00", "2026-12-01 03:00"]
    assert 'role="img" aria-labelledby="h-title h-desc"' in svg
    assert "10 occurrences in all; the most, 6, at 2026-12-01 03:00." in svg


def test_daily_bars_are_labelled_by_date_and_texts_are_escaped() -> None:
    svg = charts.bar_chart(points(2, step=timedelta(days=1)), hourly=False, chart_id="d", title="<days>")
    assert "<title>2 occurrences, 2026-12-01</title>" in svg
    assert "&lt;days&gt;" in svg and "<days>" not in svg
