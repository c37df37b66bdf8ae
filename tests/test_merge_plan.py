"""The merge preview: counts per relation, conflicts, field changes, token; read-only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrity import merge_plan
from integrity.merge_plan import BadChoice, GroupGone, NotDuplicates
from integrity.rules import Rule
from tests.conftest import dump
from tests.merging.models import (
    Club,
    ClubMembership,
    Group,
    Invoice,
    Note,
    Order,
    Person,
    Profile,
    Seat,
    Tagged,
)

pytestmark = pytest.mark.django_db


def person(email: str = "dup@example.com", **kw: object) -> Person:
    return Person.objects.create(email=email, **kw)


def moves_by_label(plan: merge_plan.Plan) -> dict[str, merge_plan.Move]:
    """By ``app.Holder.field`` (an auto-created many-to-many table is its own holder)."""
    return {f"{m.relation.holder._meta.label}.{m.relation.field.name}": m for m in plan.moves}


def test_plan_counts_what_references_each_member_and_changes_nothing(rule: Rule) -> None:
    a, b, c = person(), person(), person()
    Order.objects.create(person=a)
    for _ in range(3):
        Order.objects.create(person=b)
    Note.objects.create(target=c, text="x")
    Tagged.objects.create(target=b, tag="t")
    before = dump()
    plan = merge_plan.build_plan(rule, a.pk, [c.pk, b.pk])
    assert dump() == before
    assert plan.survivor == a
    assert plan.duplicates == [b, c]
    assert plan.members == [a, b, c]
    assert plan.group == [a.pk, b.pk, c.pk]
    moves = moves_by_label(plan)
    assert moves["merging.Order.person"].counts == {a.pk: 1, b.pk: 3}
    assert moves["merging.Order.person"].moving == 3
    assert moves["merging.Note.object_id"].counts == {c.pk: 1}
    assert moves["merging.Tagged.object_id"].counts == {b.pk: 1}
    assert plan.moving == 5
    assert plan.reference_totals() == {a.pk: 1, b.pk: 4, c.pk: 1}
    assert plan.conflicts == []
    assert plan.changes == []


def test_group_lists_members_not_chosen(rule: Rule) -> None:
    a, b, c = person(), person(), person()
    plan = merge_plan.build_plan(rule, b.pk, [a.pk])
    assert plan.group == [a.pk, b.pk, c.pk]
    assert plan.duplicates == [a]


def test_keys_as_text_are_primary_keys(rule: Rule) -> None:
    a, b = person(), person(nickname="bee")
    plan = merge_plan.build_plan(rule, str(a.pk), [str(b.pk)], fields={"nickname": str(b.pk)})
    assert plan.survivor == a
    assert plan.duplicates == [b]
    assert [(c.name, c.source, c.after) for c in plan.changes] == [("nickname", b.pk, "bee")]
    assert plan.token == merge_plan.build_plan(rule, a.pk, [b.pk], fields={"nickname": b.pk}).token


@pytest.mark.parametrize("raw", ["abc", "", None, "1.5"])
def test_a_key_that_cannot_be_a_primary_key_is_a_bad_choice(rule: Rule, raw: object) -> None:
    a = person()
    with pytest.raises(BadChoice):
        merge_plan.build_plan(rule, a.pk, [raw])
    with pytest.raises(BadChoice):
        merge_plan.to_pk(rule, raw)


def test_errors_tell_which_rows(rule: Rule) -> None:
    a, b = person(), person("else@example.com")
    with pytest.raises(NotDuplicates, match=str(b.pk)) as info:
        merge_plan.build_plan(rule, a.pk, [b.pk])
    assert info.value.status == 400
    with pytest.raises(GroupGone, match=str(a.pk + 99)) as gone:
        merge_plan.build_plan(rule, a.pk, [a.pk + 99])
    assert gone.value.status == 404


def test_token_is_stable_and_independent_of_the_order_of_duplicates(rule: Rule) -> None:
    a, b, c = person(), person(), person()
    Order.objects.create(person=b)
    first = merge_plan.build_plan(rule, a.pk, [b.pk, c.pk])
    assert len(first.token) == 40
    assert merge_plan.build_plan(rule, a.pk, [c.pk, b.pk]).token == first.token
    assert merge_plan.build_plan(rule, a.pk, [b.pk]).token != first.token
    assert merge_plan.build_plan(rule, b.pk, [a.pk, c.pk]).token != first.token


def test_token_changes_with_the_data(rule: Rule) -> None:
    a, b = person(), person(name="B")
    tokens = [merge_plan.build_plan(rule, a.pk, [b.pk]).token]
    order = Order.objects.create(person=b)
    tokens.append(merge_plan.build_plan(rule, a.pk, [b.pk]).token)
    order.person = a
    order.save()
    tokens.append(merge_plan.build_plan(rule, a.pk, [b.pk]).token)
    Person.objects.filter(pk=b.pk).update(name="Bea")
    tokens.append(merge_plan.build_plan(rule, a.pk, [b.pk]).token)
    tokens.append(merge_plan.build_plan(rule, a.pk, [b.pk], fields={"name": b.pk}).token)
    person()
    tokens.append(merge_plan.build_plan(rule, a.pk, [b.pk], fields={"name": b.pk}).token)
    assert len(set(tokens)) == len(tokens)


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
    # The rows to keep are chosen on the confirm form, after the preview: the token
    # guards the data the preview showed, not the choices made after it.
    assert keep_mine.token == keep_theirs.token == merge_plan.build_plan(rule, a.pk, [b.pk]).token


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


def test_field_changes(rule: Rule) -> None:
    a, b = person(name="A"), person(name="B", nickname="bee")
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], fields={"name": b.pk, "nickname": a.pk})
    assert [(c.name, c.before, c.after, c.source) for c in plan.changes] == [("name", "A", "B", b.pk)]


def test_survivor_without_handle_takes_the_referenced_one(rule: Rule) -> None:
    a, b = person(), person(handle="hb")
    Invoice.objects.create(person=b)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    assert [(c.name, c.before, c.after, c.source) for c in plan.changes] == [("handle", None, "hb", b.pk)]
    assert moves_by_label(plan)["merging.Invoice.person"].moving == 0


def test_unreferenced_handle_is_not_taken(rule: Rule) -> None:
    a, b = person(), person(handle="hb")
    assert merge_plan.build_plan(rule, a.pk, [b.pk]).changes == []


def test_query_count_of_a_plan_does_not_depend_on_rows(rule: Rule) -> None:
    def count(n: int) -> int:
        a, b = person(f"q{n}@example.com"), person(f"q{n}@example.com")
        Order.objects.bulk_create([Order(person=p) for p in (a, b) for _ in range(n)])
        Seat.objects.bulk_create([Seat(person=p, number=i, row=str(p.pk)) for p in (a, b) for i in range(n)])
        with CaptureQueriesContext(connection) as queries:
            plan = merge_plan.build_plan(rule, a.pk, [b.pk])
        assert len(plan.conflicts) == n
        return len(queries)

    count(1)
    assert count(5) == count(100)
