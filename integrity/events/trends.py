"""Occurrences over time: per-hour and per-day counters of each group, written by the recording, read by the charts.

Every occurrence adds one to its group's bucket of the hour and of the day
(``EventBucket``), in the recording's own upsert statement (``bucket_sql``
wraps it in a data-modifying ``WITH``): no extra round trip, and the charts
never read the samples. Buckets start on the hour and at midnight of the
project's time zone (``TIME_ZONE``). They are bounded: the first occurrence of
a new hour also deletes its group's buckets older than ``HOURS`` hours
(hourly) and ``DAYS`` days (daily), and ``integrity prune`` deletes those of
every group, hit or not.

``series`` reads one group's counts (the group page's bar charts);
``sparklines`` reads the last ``HOURS`` hours of many groups in one query
(the events list, one sparkline a row).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.utils import timezone

from integrity.models import EventBucket

HOURS = 48  # hourly buckets kept and drawn
DAYS = 30  # daily buckets kept and drawn
HOUR, DAY = EventBucket.HOUR, EventBucket.DAY


def _local(now: datetime) -> datetime:
    if timezone.is_naive(now):
        return now
    return timezone.localtime(now, timezone.get_default_timezone())


def _absolute(moment: datetime) -> datetime:
    """``moment`` in UTC. An aware local datetime's arithmetic and comparisons are in wall time: the two 02:00
    of a night the clocks go back would be one hour, one key. In UTC they are two."""
    return moment.astimezone(UTC) if timezone.is_aware(moment) else moment


def hour_start(now: datetime) -> datetime:
    """The start of ``now``'s hour."""
    return _local(now).replace(minute=0, second=0, microsecond=0)


def day_start(day: date | datetime) -> datetime:
    """Midnight starting ``day`` (a date, or the day of a moment) in the project's time zone."""
    if isinstance(day, datetime):
        if timezone.is_naive(day):
            return day.replace(hour=0, minute=0, second=0, microsecond=0)
        day = _local(day).date()
    moment = datetime.combine(day, time.min)
    return timezone.make_aware(moment, timezone.get_default_timezone()) if django_settings.USE_TZ else moment


def bucket_params(now: datetime) -> dict[str, datetime]:
    """The recording's parameters: this occurrence's buckets, and the oldest start each kind keeps."""
    hour = hour_start(now)
    day = day_start(now)
    return {
        "bucket_hour": hour,
        "bucket_day": day,
        "keep_hour": _absolute(hour) - timedelta(hours=HOURS - 1),
        "keep_day": day_start(_local(now).date() - timedelta(days=DAYS - 1)),
    }


def bucket_sql(upsert: str, qn: Callable[[str], str]) -> str:
    """``upsert`` (an INSERT … RETURNING id, …) that also counts the occurrence in its hour's and day's buckets.

    One statement: the group's row, then both buckets (INSERT … ON CONFLICT DO
    UPDATE), then, when the hour's bucket is new, its group's buckets past
    keeping. Returns what ``upsert`` returns.
    """
    table = qn(EventBucket._meta.db_table)
    # Our own table's name, quoted; every value is a parameter.
    return (
        f"WITH grp AS ({upsert}), "  # noqa: S608
        f"bkt AS (INSERT INTO {table} AS b (group_id, kind, start, count) "
        f"SELECT id, '{HOUR}', %(bucket_hour)s, 1 FROM grp UNION ALL SELECT id, '{DAY}', %(bucket_day)s, 1 FROM grp "
        "ON CONFLICT (group_id, kind, start) DO UPDATE SET count = b.count + 1 "
        "RETURNING b.kind, b.xmax = 0 AS fresh), "
        f"old AS (DELETE FROM {table} WHERE group_id = (SELECT id FROM grp) "
        f"AND ((kind = '{HOUR}' AND start < %(keep_hour)s) OR (kind = '{DAY}' AND start < %(keep_day)s)) "
        f"AND EXISTS (SELECT 1 FROM bkt WHERE fresh AND kind = '{HOUR}')) "
        "SELECT * FROM grp"
    )


# integrity prune: every group's buckets past keeping, whether the group is still hit or not.
PRUNE_SQL = "DELETE FROM {bkt} WHERE (kind = %(hour)s AND start < %(keep_hour)s) OR (kind = %(day)s AND start < %(keep_day)s)"


def prune_params(now: datetime) -> dict[str, Any]:
    return {"hour": HOUR, "day": DAY, **{k: v for k, v in bucket_params(now).items() if k.startswith("keep")}}


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One bucket of a chart: when it starts and how many occurrences it counts (0 for none)."""

    start: datetime
    count: int


def hour_starts(now: datetime, hours: int = HOURS) -> list[datetime]:
    """The starts of the last ``hours`` hours, oldest first, the current one last (in UTC: see ``_absolute``)."""
    last = _absolute(hour_start(now))
    return [last - timedelta(hours=n) for n in range(hours - 1, -1, -1)]


def day_starts(now: datetime, days: int = DAYS) -> list[datetime]:
    """The starts of the last ``days`` days, oldest first, today last (in UTC: see ``_absolute``)."""
    today = _local(now).date()
    return [_absolute(day_start(today - timedelta(days=n))) for n in range(days - 1, -1, -1)]


def _filled(starts: list[datetime], counts: dict[datetime, int]) -> list[Point]:
    return [Point(start, counts.get(start, 0)) for start in starts]


def series(group_id: int, kind: str, now: datetime | None = None) -> list[Point]:
    """One group's counts per hour (the last ``HOURS``) or per day (the last ``DAYS``), empty ones as 0: one query."""
    now = now or timezone.now()
    starts = hour_starts(now) if kind == HOUR else day_starts(now)
    rows = EventBucket.objects.filter(group_id=group_id, kind=kind, start__gte=starts[0]).values_list(
        "start", "count"
    )
    return _filled(starts, {start: count for start, count in rows})


def sparklines(group_ids: Iterable[int], now: datetime | None = None) -> dict[int, list[Point]]:
    """The last ``HOURS`` hours of each group, by id, empty hours as 0: one query for all of them."""
    ids = list(group_ids)
    if not ids:
        return {}
    now = now or timezone.now()
    starts = hour_starts(now)
    counts: dict[int, dict[datetime, int]] = defaultdict(dict)
    rows = EventBucket.objects.filter(group_id__in=ids, kind=HOUR, start__gte=starts[0]).values_list(
        "group_id", "start", "count"
    )
    for group_id, start, count in rows:
        counts[group_id][start] = count
    return {group_id: _filled(starts, counts.get(group_id, {})) for group_id in ids}
