"""The merge preview: counts per relation, field changes, token, query count; read-only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrity.duplicates.rules import Rule
from integrity.merge import plan as merge_plan
from integrity.merge.exceptions import BadChoice, GroupGone, NotDuplicates
from tests.helpers import (
    dump,
    moves_by_label,
    person,
)
from tests.merging.models import Invoice, Note, Order, Person, Seat, Tagged

pytestmark = pytest.mark.django_db


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
