"""Pruning recorded IntegrityErrors (integrity.events.retention): what goes, what stays, and sample slots again.

Occurrences are recorded with ``events.write`` itself (at chosen times), so
groups, counts and sample slots are exactly what recording leaves. Recording
writes outside the caller's transaction, which is why these tests are
transactional (tables flushed after each test) rather than rolled back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrity.events import recording as events
from integrity.events import retention
from integrity.models import Event, EventGroup, Job
from tests.helpers import client_for, name_taken

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now().replace(microsecond=0)
DAY = timedelta(days=1)


def hit(constraint: str, *when: datetime) -> EventGroup:
    """Record one occurrence of the constraint's violation at each moment; the group as it is then."""
    for moment in when:
        events.write(name_taken(constraint), "default", events.request_context(None), now=moment)
    return EventGroup.objects.get(constraint=constraint)


def samples(group: EventGroup) -> list[datetime]:
    return sorted(Event.objects.filter(group=group).values_list("created_at", flat=True))


def state() -> dict[str, tuple[int, int, int, list[datetime]]]:
    """Every group by constraint: count, sampled, last_slot and its samples' times."""
    return {
        g.constraint: (g.count, g.sampled, g.last_slot, samples(g))
        for g in EventGroup.objects.order_by("constraint")
    }


def test_prune_removes_old_samples_and_the_groups_left_empty_and_unseen_since() -> None:
    hit("gone", NOW - 40 * DAY, NOW - 35 * DAY)  # all old: removed with its samples
    hit("mixed", NOW - 40 * DAY, NOW - 2 * DAY)  # old sample removed, recent one kept
    hit("fresh", NOW - DAY)
    with override_settings(INTEGRITY_EVENT_SAMPLES=1):
        # Its only sample is old, but it was seen yesterday (no sample: the slot was taken): it stays.
        hit("busy", NOW - 40 * DAY, NOW - DAY)
    hit("edge", NOW - 30 * DAY)  # exactly at the cutoff: not older than it

    result = retention.prune(timedelta(days=30), now=NOW)

    assert (result.samples, result.groups) == (4, 1)
    assert result.cutoff == NOW - 30 * DAY and not result.dry_run
    after = state()
    assert sorted(after) == ["busy", "edge", "fresh", "mixed"]
    assert after["mixed"] == (2, 1, 2, [NOW - 2 * DAY])
    assert after["fresh"] == (1, 1, 1, [NOW - DAY])
    assert after["busy"] == (2, 0, 1, [])  # the count is history: it is kept
    assert after["edge"] == (1, 1, 1, [NOW - 30 * DAY])
    assert EventGroup.objects.get(constraint="busy").last_seen == NOW - DAY


@override_settings(INTEGRITY_EVENT_SAMPLES=3)
def test_a_full_group_keeps_new_samples_again_once_its_old_ones_are_pruned() -> None:
    old = [NOW - 40 * DAY + timedelta(minutes=i) for i in range(3)]
    recent = [NOW - DAY + timedelta(minutes=i) for i in range(5)]
    group = hit("storm", *old, *recent)
    assert (group.count, group.sampled, samples(group)) == (8, 3, old)  # full since the third

    result = retention.prune(timedelta(days=30), now=NOW)

    assert (result.samples, result.groups, result.reset) == (3, 0, 1)
    group.refresh_from_db()
    assert (group.count, group.sampled) == (8, 0)
    newer = [NOW + timedelta(minutes=i) for i in range(4)]
    group = hit("storm", *newer)
    assert (group.count, group.sampled) == (12, 3)
    assert samples(group) == newer[:3]  # three slots again, and no more


@override_settings(INTEGRITY_EVENT_SAMPLES=2)
def test_sampled_is_set_to_the_samples_left_for_every_remaining_group() -> None:
    hit("mixed", NOW - 40 * DAY, NOW - DAY, NOW)  # the third occurrence finds no slot
    hit("untouched", NOW - DAY)
    # A counter that says more than the samples there are (a sample whose write failed).
    EventGroup.objects.filter(constraint="untouched").update(sampled=2)

    result = retention.prune(timedelta(days=30), now=NOW)

    assert result.reset == 2
    assert {c: s for c, (_, s, _, _) in state().items()} == {"mixed": 1, "untouched": 1}


def test_dry_run_counts_the_same_and_changes_nothing() -> None:
    hit("gone", NOW - 40 * DAY)
    hit("mixed", NOW - 40 * DAY, NOW - DAY)
    hit("fresh", NOW)
    before = state()

    preview = retention.prune(timedelta(days=30), dry_run=True, now=NOW)

    assert state() == before
    assert preview.dry_run
    done = retention.prune(timedelta(days=30), now=NOW)
    assert (preview.samples, preview.groups, preview.reset) == (done.samples, done.groups, done.reset)
    assert (done.samples, done.groups, done.reset) == (2, 1, 1)


def test_nothing_to_prune() -> None:
    hit("fresh", NOW)
    result = retention.prune(timedelta(days=30), now=NOW)
    assert (result.samples, result.groups, result.reset) == (0, 0, 0)
    assert list(state()) == ["fresh"]


@pytest.mark.parametrize("groups", [1, 60])
def test_statements_do_not_grow_with_groups_or_samples(groups: int) -> None:
    for i in range(groups):
        hit(f"c{i:03d}", NOW - 40 * DAY, NOW - 39 * DAY, NOW - DAY)
        hit(f"old{i:03d}", NOW - 40 * DAY)

    with CaptureQueriesContext(connection) as real:
        result = retention.prune(timedelta(days=30), now=NOW)
    assert (result.samples, result.groups, result.reset) == (3 * groups, groups, groups)
    sql = [q["sql"] for q in real.captured_queries]
    assert sql[0] == "BEGIN" and sql[-1] == "COMMIT"  # one transaction
    # Its level and limits first (integrity.transactions.writing), then the work.
    assert sql[1] == "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
    assert sql[2].startswith("SELECT set_config('lock_timeout'")
    # Samples; buckets past keeping; buckets and activity of the groups that go; groups; counters.
    assert [s.split()[0] for s in sql[3:-1]] == ["DELETE", "DELETE", "DELETE", "DELETE", "DELETE", "UPDATE"]

    hit("another", NOW - 40 * DAY)
    with CaptureQueriesContext(connection) as dry:
        retention.prune(timedelta(days=30), dry_run=True, now=NOW)
    bookkeeping = ("BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "SELECT set_config(")
    work = [q["sql"] for q in dry.captured_queries if not q["sql"].strip().startswith(bookkeeping)]
    assert [q.split()[0] for q in work] == ["SELECT"]
    assert len(dry.captured_queries) <= 4  # a bounded read: its savepoint, limits and rollback


def test_a_negative_age_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        retention.prune(timedelta(days=-1))


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_without_workers_the_events_page_prunes_in_the_request_and_says_what_went() -> None:
    hit("gone", NOW - 40 * DAY)
    hit("mixed", NOW - 40 * DAY, NOW - DAY)
    client = client_for("staff", ["view_eventgroup", "delete_eventgroup"])
    page = client.get("/admin/integrity/eventgroup/").content.decode()
    assert 'id="events-prune"' in page and "Prune as a job" not in page
    response = client.post("/admin/integrity/eventgroup/prune/", {"days": "30"}, follow=True)
    assert response.redirect_chain == [("/admin/integrity/eventgroup/", 303)]
    assert "Samples older than 30 days: 2 samples removed, 1 group removed." in response.content.decode()
    assert sorted(state()) == ["mixed"]
    assert not Job.objects.exists()
