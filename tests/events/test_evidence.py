"""What explanations read (integrity.events.evidence): bounded, shared queries, and the samples that make a race.

The reads are counted with ``CaptureQueriesContext``; the race heuristic is
seen through ``explain.explain`` on real unique violations whose samples are
placed in time (``group_of`` in conftest).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demo.shop.models import Product, Tag
from integrity.events import explain, violations
from integrity.models import Event
from tests.helpers import (
    group_of,
    violation_of,
)
from tests.helpers import (
    set_sequence_next as set_next,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_sequences")]


# --- the reads ----------------------------------------------------------------------------------


def tag_violation() -> violations.Violation:
    Tag.objects.create(name="audio")
    return violation_of(lambda: Tag.objects.create(name="audio"))


def test_a_primary_key_group_costs_a_bounded_number_of_queries() -> None:
    set_next("shop_product_id_seq", 1)
    group = group_of(violation_of(lambda: Product.objects.create(name="Trackpad")))
    with CaptureQueriesContext(connection) as queries:
        explain.explain(group)
    sql = [q["sql"] for q in queries.captured_queries]
    # Savepoints apart: at most 6 reads plus the timeouts. The savepoints are its own, the
    # bounded read's and the sequence chunk's; the last two are rolled back (so their locks
    # end with them, issue 15) and released: 3 SAVEPOINT + 2 x (ROLLBACK TO + RELEASE) + 1 RELEASE.
    reads = [q for q in sql if q.split()[0] not in ("SAVEPOINT", "RELEASE", "ROLLBACK")]
    assert len(reads) <= 6 + 1, sql
    assert len(sql) - len(reads) <= 3 + 2 * 2 + 1, sql


def test_a_page_of_groups_costs_the_same_queries_as_one() -> None:
    """What the list's groups share (sequences, samples, rule states) is read once for the page."""
    v = tag_violation()
    now = timezone.now()
    both = [now, now + timedelta(seconds=1)]
    began = [now - timedelta(seconds=1)] * 2  # both requests were running when the first failed
    groups = [group_of(v, samples=both, started=began, fingerprint=f"g{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as one:
        explain.explain_many(groups[:1])
    with CaptureQueriesContext(connection) as three:
        results = explain.explain_many(groups)
    assert [r.code for r in results] == [explain.RACE] * 3
    assert len(three) == len(one)


# --- samples: a race or a duplicate value -------------------------------------------------------


def test_failing_requests_that_overlapped_read_as_a_race() -> None:
    now = timezone.now()
    began = [now - timedelta(milliseconds=500)] * 2  # the second began before the first failed
    group = group_of(tag_violation(), samples=[now, now + timedelta(milliseconds=300)], started=began)

    result = explain.explain(group)

    assert result.code == explain.RACE
    assert result.cause == "Race in read-then-write code"
    assert "shop.Tag.name" in result.text
    assert "1 failing request began before another one of the same view had failed" in result.text
    assert result.suggestions == ["get_or_create / update_or_create", "select_for_update"]


def test_failures_close_together_one_after_the_other_are_no_race() -> None:
    """Issue 14: 300 ms apart, each request beginning after the previous one failed: a value already taken."""
    now = timezone.now()
    failed = [now, now + timedelta(milliseconds=300)]
    began = [now - timedelta(milliseconds=50), now + timedelta(milliseconds=100)]
    result = explain.explain(group_of(tag_violation(), samples=failed, started=began))
    assert result.code == explain.DUPLICATE_VALUE
    assert result.cause == "Value already taken"
    assert "validate_unique() (ModelForm does) before saving" in result.suggestions


def test_errors_the_application_caught_are_no_evidence_of_a_race() -> None:
    """A caught error (the seed-004 pattern, run one request after another) says nothing about concurrency."""
    result = explain.explain(group_of(tag_violation(), handled=3))
    assert result.code == explain.DUPLICATE_VALUE
    assert "Validate it before saving" in result.text


def test_samples_close_together_from_different_views_are_no_race() -> None:
    """Two pages that each write the same value, one after the other: a duplicate value, not a race."""
    now = timezone.now()
    began = [now - timedelta(milliseconds=500)] * 2
    group = group_of(tag_violation(), samples=[now, now + timedelta(milliseconds=300)], started=began)
    first = Event.objects.filter(group=group).order_by("created_at").first()
    assert first is not None
    Event.objects.filter(pk=first.pk).update(view="shop:import", path="/import/")
    result = explain.explain(group)
    assert result.code == explain.DUPLICATE_VALUE


def test_samples_far_apart_read_as_a_duplicate_value() -> None:
    now = timezone.now()
    result = explain.explain(group_of(tag_violation(), samples=[now - timedelta(hours=1), now]))
    assert result.code == explain.DUPLICATE_VALUE
    assert result.fix is None
    assert "shop.Tag.name already holds this value" in result.text
