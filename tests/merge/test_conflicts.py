"""Conflicts a merge would cause in child rows, as the plan shows them: ids, data, purity, resolutions; read-only."""

from __future__ import annotations

import pytest

from integrity.duplicates.rules import Rule
from integrity.merge import plan as merge_plan
from tests.helpers import (
    moves_by_label,
    person,
)
from tests.merging.models import Club, ClubMembership, Group, Profile, Seat

pytestmark = pytest.mark.django_db


def test_conflict_resolutions_are_chosen_after_the_preview(rule: Rule) -> None:
    a, b = person(), person()
    mine = Seat.objects.create(person=a, number=1, row="a")
    theirs = Seat.objects.create(person=b, number=1, row="b")
    [conflict] = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    keep_mine = merge_plan.build_plan(rule, a.pk, [b.pk], resolutions={conflict.id: mine.pk})
    keep_theirs = merge_plan.build_plan(rule, a.pk, [b.pk], resolutions={conflict.id: str(theirs.pk)})
    assert keep_mine.conflicts[0].keep == mine.pk
    assert keep_theirs.conflicts[0].keep == theirs.pk
    assert keep_theirs.conflicts[0].losers == [mine.pk]
    # The rows kept are part of what the preview counts: its token covers them (second half),
    # beside the data it showed (first half), so that a confirm only ever does what was counted.
    unresolved = merge_plan.build_plan(rule, a.pk, [b.pk]).token
    assert len({keep_mine.token, keep_theirs.token, unresolved}) == 3
    assert keep_mine.token[:20] == keep_theirs.token[:20] == unresolved[:20]
    assert merge_plan.choices_differ(unresolved, keep_mine)


def test_conflict_ids_are_stable_and_differ_per_key(rule: Rule) -> None:
    a, b = person(), person()
    for n in (1, 2):
        Seat.objects.create(person=a, number=n, row="a")
        Seat.objects.create(person=b, number=n, row="b")
    first = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    again = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == 2
    assert sorted(c.key["number"] for c in first) == [1, 2]
    assert {c.label for c in first} == {"merging.Seat (merging_seat_person_number)"}


def test_collapsed_rows_are_not_counted_as_moving(rule: Rule) -> None:
    g1, g2 = Group.objects.create(name="1"), Group.objects.create(name="2")
    a, b = person(), person()
    a.groups.add(g1)
    b.groups.add(g1, g2)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    move = moves_by_label(plan)["merging.Person_groups.person"]
    assert move.counts == {a.pk: 1, b.pk: 2}
    assert move.collapsed == 1
    assert move.moving == 1
    assert plan.collapsed == 1


def test_keeping_the_duplicates_row_collapses_the_survivors(rule: Rule) -> None:
    club = Club.objects.create(name="c")
    a, b = person(), person()
    ClubMembership.objects.create(person=a, club=club, role="x")
    theirs = ClubMembership.objects.create(person=b, club=club, role="y")
    [conflict] = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], resolutions={conflict.id: theirs.pk})
    move = moves_by_label(plan)["merging.ClubMembership.person"]
    assert move.moving == 1  # the duplicate's row moves; the survivor's is deleted
    assert plan.collapsed == 1


def test_profile_conflict_lists_both_rows_with_their_data(rule: Rule) -> None:
    a, b = person(), person()
    mine, theirs = Profile.objects.create(person=a, bio="A"), Profile.objects.create(person=b, bio="B")
    [conflict] = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    assert [(r.pk, r.owner, r.values["bio"]) for r in conflict.rows] == [
        (mine.pk, a.pk, "A"),
        (theirs.pk, b.pk, "B"),
    ]
    assert not conflict.pure


def test_identical_profiles_are_pure(rule: Rule) -> None:
    a, b = person(), person()
    mine = Profile.objects.create(person=a)
    Profile.objects.create(person=b)
    [conflict] = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    assert conflict.pure
    assert conflict.keep == mine.pk


def test_null_extra_columns_count_as_identical(rule: Rule) -> None:
    club = Club.objects.create(name="c")
    a, b = person(), person()
    ClubMembership.objects.create(person=a, club=club, joined=None)
    ClubMembership.objects.create(person=b, club=club, joined=None)
    [conflict] = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts
    assert conflict.pure


def test_rows_of_other_people_are_no_conflict(rule: Rule) -> None:
    a, b, other = person(), person(), person("other@example.com")
    Seat.objects.create(person=b, number=1, row="b")
    Seat.objects.create(person=other, number=1, row="o")
    assert merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts == []
