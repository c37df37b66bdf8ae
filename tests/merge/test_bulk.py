"""Merging every group of a rule: survivor policies, stops, limits, skipped groups."""

from __future__ import annotations

import pytest

from integrity.duplicates.rules import Rule
from integrity.merge import bulk as merge_all
from integrity.merge import plan as merge_plan
from integrity.merge.exceptions import MergeRefused
from integrity.models import MergeRecord
from tests.helpers import (
    dump,
    person,
)
from tests.merging.models import Note, Order, Person, Seat

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("constraints_checked")]


def groups_of(n: int, size: int = 2) -> list[list[Person]]:
    return [[person(f"g{i}@example.com") for _ in range(size)] for i in range(n)]


def test_merge_all_stops_midway(rule: Rule) -> None:
    groups = groups_of(5)
    seen: list[int] = []
    result = merge_all.merge_all(
        rule,
        merge_all.OLDEST,
        should_stop=lambda: MergeRecord.objects.count() >= 2,
        progress=lambda r: seen.append(len(r.merged)),
    )
    assert seen == [1, 2]
    assert result.stopped
    assert len(result.merged) == 2
    assert MergeRecord.objects.count() == 2
    assert result.remaining == 3
    merged_emails = {p.email for g in groups for p in g if not Person.objects.filter(pk=p.pk).exists()}
    assert len(merged_emails) == 2
    for g in groups:
        left = Person.objects.filter(email=g[0].email).count()
        assert left == (1 if g[0].email in merged_emails else 2)
    for rec in result.merged:
        assert Person.objects.filter(pk=int(rec.survivor)).exists()


def test_merge_all_stop_checked_once_per_group(rule: Rule) -> None:
    groups_of(4)
    calls = iter([False, False, True, False, False])
    result = merge_all.merge_all(rule, merge_all.OLDEST, should_stop=lambda: next(calls, True))
    assert result.stopped
    assert len(result.merged) == 2


def test_merge_all_limit(rule: Rule) -> None:
    groups_of(3)
    result = merge_all.merge_all(rule, merge_all.NEWEST, limit=1)
    assert len(result.merged) == 1
    assert not result.stopped
    assert Person.objects.count() == 5


def test_merge_all_merges_everything(rule: Rule) -> None:
    groups_of(25, size=3)
    result = merge_all.merge_all(rule, merge_all.OLDEST)
    assert len(result.merged) == 25
    assert Person.objects.count() == 25
    assert result.remaining == 0


@pytest.mark.parametrize(
    ("policy", "index"), [(merge_all.OLDEST, 0), (merge_all.NEWEST, 2), (merge_all.MOST_REFERENCED, 1)]
)
def test_merge_all_policies(rule: Rule, policy: str, index: int) -> None:
    [group] = groups_of(1, size=3)
    Order.objects.create(person=group[1])
    Order.objects.create(person=group[1])
    Order.objects.create(person=group[2])
    result = merge_all.merge_all(rule, policy)
    assert [r.survivor for r in result.merged] == [str(group[index].pk)]
    assert list(Person.objects.values_list("pk", flat=True)) == [group[index].pk]
    assert Order.objects.filter(person=group[index]).count() == 3


def test_choose_survivor_most_referenced_ties_go_to_the_lowest_pk(rule: Rule) -> None:
    a, b = person(), person()
    Order.objects.create(person=a)
    Note.objects.create(target=b, text="x")
    plan = merge_plan.build_plan(rule, b.pk, [a.pk])
    assert merge_all.choose_survivor(plan, merge_all.MOST_REFERENCED) == a.pk
    with pytest.raises(MergeRefused):
        merge_all.choose_survivor(plan, "tallest")
    with pytest.raises(MergeRefused):
        merge_all.merge_all(rule, "tallest")


def test_merge_all_skips_and_lists_a_group_that_needs_a_choice(rule: Rule) -> None:
    groups = groups_of(3)
    Seat.objects.create(person=groups[1][0], number=1, row="x")
    Seat.objects.create(person=groups[1][1], number=1, row="y")
    before = dump(["merging_seat"])
    result = merge_all.merge_all(rule, merge_all.OLDEST)
    assert len(result.merged) == 2
    assert [pk for pk, _why in result.skipped] == [groups[1][0].pk]
    assert Person.objects.filter(email=groups[1][0].email).count() == 2
    assert dump(["merging_seat"]) == before
    assert not result.stopped


def test_merge_all_skip_leaves_those_groups(rule: Rule) -> None:
    groups = groups_of(3)
    result = merge_all.merge_all(rule, merge_all.OLDEST, skip=[str(groups[0][0].pk)])
    assert len(result.merged) == 2
    assert Person.objects.filter(email=groups[0][0].email).count() == 2
    assert result.remaining == 0


def test_merge_all_of_given_groups_merges_them_as_scanned_and_counts_what_is_left(rule: Rule) -> None:
    """The job's way: one scan's groups, each re-read under lock; a group changed since is skipped, untouched."""
    from integrity.duplicates import service as duplicates

    changed, grown, *rest = groups_of(5)
    scanned = duplicates.scan(rule, limit=100, sample=duplicates.GROUP_LIMIT).groups
    Person.objects.filter(pk=changed[1].pk).update(email="elsewhere@example.com")
    late = person(grown[0].email)
    seen: list[int] = []
    result = merge_all.merge_all(
        rule, merge_all.OLDEST, groups=scanned, progress=lambda r: seen.append(r.remaining)
    )
    assert seen == [4, 3, 2, 1, 0]
    assert len(result.merged) == 4 and not result.stopped
    [(pk, why)] = result.skipped
    assert pk == changed[0].pk and why
    assert Person.objects.filter(pk__in=[p.pk for p in changed]).count() == 2
    assert Person.objects.filter(email=grown[0].email).count() == 2  # the survivor and the late one
    assert Person.objects.filter(pk=late.pk).exists()
    assert result.remaining == 0  # nothing of the list is left to do
    assert result.left == 1  # the grown group is still a group; the skipped one dissolved
    assert all(Person.objects.filter(email=g[0].email).count() == 1 for g in rest)


def test_merge_all_reads_each_plan_once_and_checks_references_in_one_statement(rule: Rule) -> None:
    """Per group: one tally per relation (the plan read under the lock), one statement for each reference check."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    groups = groups_of(3)
    Order.objects.create(person=groups[0][1])
    with CaptureQueriesContext(connection) as queries:
        result = merge_all.merge_all(rule, merge_all.OLDEST)
    assert len(result.merged) == 3
    statements = [q["sql"] for q in queries.captured_queries]
    tallies = [s for s in statements if 'FROM "merging_order"' in s and 'COUNT(*) AS "c"' in s]
    assert len(tallies) == 3
    checks = [s for s in statements if s.startswith("SELECT EXISTS (")]
    # After re-pointing, then before deleting: two per group, every relation in each.
    assert len(checks) == 6
    assert all('"merging_order"' in s for s in checks)
    assert Order.objects.get().person_id == groups[0][0].pk


def test_merge_all_reads_no_group_by_its_key(rule: Rule) -> None:
    """A policy's merge reads its members by primary key only: the key of an unenforced rule has no index.

    (Reading each group again by its key was a scan of the whole table per group.) The
    only statements that filter by the key are the scans' own: none with a given list.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrity.duplicates import service as duplicates

    groups = groups_of(3)
    scanned = duplicates.scan(rule, limit=100, sample=duplicates.GROUP_LIMIT).groups
    with CaptureQueriesContext(connection) as queries:
        result = merge_all.merge_all(rule, merge_all.OLDEST, groups=scanned, count_left=lambda: 0)
    assert len(result.merged) == 3
    by_key = [q["sql"] for q in queries.captured_queries if '"merging_person"."email" = ' in q["sql"]]
    assert by_key == []
    assert all(Person.objects.filter(email=g[0].email).count() == 1 for g in groups)


def test_merge_all_without_keeping_every_record(rule: Rule) -> None:
    """``keep_all=False`` (a job's): every group merged and counted; only the first and last records kept."""
    groups = groups_of(5)
    seen: list[tuple[int, int]] = []
    result = merge_all.merge_all(
        rule, merge_all.OLDEST, keep_all=False, progress=lambda r: seen.append((r.made, len(r.merged)))
    )
    assert seen == [(1, 1), (2, 2), (3, 2), (4, 2), (5, 2)]
    made = list(MergeRecord.objects.order_by("pk"))
    assert len(made) == 5 and result.made == 5
    assert [r.pk for r in result.merged] == [made[0].pk, made[-1].pk]
    assert all(Person.objects.filter(email=g[0].email).count() == 1 for g in groups)
