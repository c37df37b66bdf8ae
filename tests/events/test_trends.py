"""Per-hour and per-day counters (integrity.events.trends): written by the recording in its own statement, bounded.

Occurrences are recorded with ``events.write`` at chosen times, so the
buckets are exactly what recording leaves; real IntegrityErrors check the
statement count of the error path.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import IntegrityError, connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demo.violations.models import Member
from integrity.events import lifecycle, retention, trends
from integrity.events import recording as events
from integrity.models import EventActivity, EventBucket, EventGroup
from tests.helpers import name_taken

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = trends.hour_start(timezone.now()) + timedelta(minutes=30)


def hit(
    *when: timedelta, constraint: str = "shop_product_name_key", at: datetime | None = None
) -> EventGroup:
    """One occurrence at ``at`` (default NOW) minus each offset; the group as it is then."""
    for ago in when:
        events.write(name_taken(constraint), "default", events.request_context(None), now=(at or NOW) - ago)
    return EventGroup.objects.get(constraint=constraint)


def this_hour() -> datetime:
    """Now, a few seconds inside its hour: the pages draw from the real clock, so the occurrences a page test
    writes must fall in the hour the page is read in (NOW is the hour of the test run's start)."""
    now = timezone.now()
    left = trends.hour_start(now) + HOUR - now
    if left < timedelta(seconds=5):
        time.sleep(left.total_seconds() + 0.1)
        now = timezone.now()
    return now


def buckets(group: EventGroup, kind: str) -> dict:
    return dict(group.buckets.filter(kind=kind).values_list("start", "count"))


def test_each_occurrence_counts_in_its_hour_and_its_day() -> None:
    group = hit(timedelta(0), timedelta(minutes=10), HOUR, 3 * HOUR)
    hours = buckets(group, trends.HOUR)
    assert hours == {
        trends.hour_start(NOW): 2,
        trends.hour_start(NOW - HOUR): 1,
        trends.hour_start(NOW - 3 * HOUR): 1,
    }
    days = buckets(group, trends.DAY)
    assert sum(days.values()) == 4 == group.count
    assert set(days) == {trends.day_start(NOW - ago) for ago in (timedelta(0), 3 * HOUR)}


def test_the_series_has_every_hour_and_day_with_empty_ones_at_zero() -> None:
    group = hit(timedelta(0), timedelta(0), 5 * HOUR, 2 * DAY)
    hourly = trends.series(group.pk, trends.HOUR, now=NOW)
    assert len(hourly) == trends.HOURS
    assert hourly[-1].start == trends.hour_start(NOW)
    assert [p.count for p in hourly][-6:] == [1, 0, 0, 0, 0, 2]
    assert sum(p.count for p in hourly) == 3  # two days ago is past 48 hours
    daily = trends.series(group.pk, trends.DAY, now=NOW)
    assert len(daily) == trends.DAYS and daily[-1].start == trends.day_start(NOW)
    assert sum(p.count for p in daily) == 4


def test_sparklines_of_a_page_are_one_query() -> None:
    first = hit(timedelta(0), constraint="a_key")
    second = hit(HOUR, HOUR, constraint="b_key")
    with CaptureQueriesContext(connection) as queries:
        lines = trends.sparklines([first.pk, second.pk, 999_999], now=NOW)
    assert len(queries) == 1
    assert [p.count for p in lines[first.pk]][-2:] == [0, 1]
    assert [p.count for p in lines[second.pk]][-2:] == [2, 0]
    assert sum(p.count for p in lines[999_999]) == 0 and len(lines[999_999]) == trends.HOURS


def test_a_new_hour_deletes_its_groups_buckets_past_keeping() -> None:
    group = hit(60 * DAY, 50 * HOUR, 47 * HOUR, timedelta(0))
    hours = buckets(group, trends.HOUR)
    assert set(hours) == {trends.hour_start(NOW - 47 * HOUR), trends.hour_start(NOW)}
    days = buckets(group, trends.DAY)
    assert trends.day_start(NOW - 60 * DAY) not in days
    assert group.count == 4  # the count is the history; only the buckets are bounded


def test_prune_deletes_every_groups_old_buckets_and_those_of_the_groups_it_deletes() -> None:
    quiet = hit(40 * DAY, constraint="quiet_key")  # no sample will be left: the group goes
    lifecycle.resolve([quiet.pk])  # with its timeline
    busy = hit(3 * DAY, timedelta(0), constraint="busy_key")
    # Make busy's old hour bucket outlive the recording's own pruning: a bucket only prune removes.
    EventBucket.objects.create(
        group=busy, kind=trends.HOUR, start=trends.hour_start(NOW - 100 * HOUR), count=1
    )
    retention.prune(timedelta(days=20), now=NOW)
    assert not EventGroup.objects.filter(pk=quiet.pk).exists()
    assert not EventBucket.objects.filter(group_id=quiet.pk).exists()
    assert not EventActivity.objects.filter(group_id=quiet.pk).exists()
    assert set(buckets(busy, trends.HOUR)) == {trends.hour_start(NOW)}
    assert sum(buckets(busy, trends.DAY).values()) == 2


def test_recording_still_costs_two_statements_with_the_buckets() -> None:
    Member.objects.get_or_create(email="t@example.com")
    try:
        with transaction.atomic():
            Member.objects.create(email="t@example.com")
    except IntegrityError as exc:
        error = exc
    with CaptureQueriesContext(connection) as queries:
        events.record(error)
    ours = [q["sql"] for q in queries.captured_queries if "integrity_event" in q["sql"]]
    # The group with its buckets (and, a new group, its row for the notice), then the sample.
    assert len(ours) == 2
    assert "integrity_eventbucket" in ours[0]
    group = EventGroup.objects.get(constraint="violations_member_email_key")
    assert sum(buckets(group, trends.HOUR).values()) == 1 == sum(buckets(group, trends.DAY).values())


@override_settings(INTEGRITY_EVENT_TRENDS=False)
def test_with_trends_off_nothing_is_counted_per_bucket() -> None:
    group = hit(timedelta(0))
    assert group.count == 1 and not group.buckets.exists()


# The pages ---------------------------------------------------------------------------------------


def viewer() -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_eventgroup"))
    client = Client()
    client.force_login(user)
    return client


def drawn(svg: str) -> list[int]:
    return [int(c) for c in re.findall(r'<rect class="bar" data-count="(\d+)"', svg)]


def test_the_list_draws_a_sparkline_per_row_from_one_query() -> None:
    now = this_hour()
    for i in range(12):
        hit(*[timedelta(0)] * (i + 1), HOUR, constraint=f"k{i:02d}_key", at=now)
    client = viewer()
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/admin/integrity/eventgroup/?evt-per_page=50").content.decode()
    assert len([q for q in queries.captured_queries if "integrity_eventbucket" in q["sql"]]) == 1
    rows = re.findall(r'<tr[^>]*data-group="(\d+)".*?<td class="trend">(.*?)</td>', page, re.S)
    assert len(rows) == 12
    by_group = {int(pk): drawn(cell) for pk, cell in rows}
    for i in range(12):
        counts = by_group[EventGroup.objects.get(constraint=f"k{i:02d}_key").pk]
        assert len(counts) == trends.HOURS and counts[-2:] == [1, i + 1] and sum(counts) == i + 2


def test_the_group_page_draws_48_hours_and_30_days() -> None:
    group = hit(timedelta(0), timedelta(0), 2 * HOUR, 3 * DAY, at=this_hour())
    page = viewer().get(f"/admin/integrity/eventgroup/group/?id={group.pk}").content.decode()
    hourly = re.search(r'<svg class="integrity-chart" id="event-chart-hourly".*?</svg>', page, re.S)
    daily = re.search(r'<svg class="integrity-chart" id="event-chart-daily".*?</svg>', page, re.S)
    assert hourly and daily
    hours, days = drawn(hourly.group()), drawn(daily.group())
    assert len(hours) == 48 and hours[-3:] == [1, 0, 2] and sum(hours) == 3
    assert len(days) == 30 and sum(days) == 4
    assert "Occurrences per hour, the last 48 hours" in hourly.group()


@override_settings(TIME_ZONE="Europe/Paris")
def test_the_hours_across_a_change_of_clocks_are_48_real_hours() -> None:
    after = timezone.make_aware(datetime(2026, 10, 26, 12, 30), timezone.get_default_timezone())
    starts = trends.hour_starts(after)
    assert len(starts) == 48 and len(set(starts)) == 48
    assert all((b - a) == HOUR for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] == trends.hour_start(after)
