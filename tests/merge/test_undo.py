"""Undo of a merge on real PostgreSQL: exact restores, and refusals when later changes make one impossible."""

from __future__ import annotations

import pytest
from django.db import connection

from integrity import merge
from integrity.duplicates.rules import Rule
from integrity.merge import undo as merge_undo
from integrity.models import MergeRecord
from tests.helpers import (
    choices,
    dump,
    person,
    populate,
)
from tests.merging.models import (
    Badge,
    ClubMembership,
    Invoice,
    Note,
    Order,
    Person,
    Profile,
    Receipt,
    Seat,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("constraints_checked")]


def full_merge(rule: Rule) -> tuple[Person, Person, MergeRecord]:
    a, b = person(handle="ha", nickname=None), person(handle="hb", nickname="bee", name="Bea")
    populate(a, b)
    Invoice.objects.create(person=a)
    record = merge.merge(
        rule,
        a.pk,
        [b.pk],
        fields={"nickname": b.pk, "handle": b.pk, "passport": b.pk, "name": b.pk},
        resolutions=choices(rule, a, b),
    )
    return a, b, record


def test_undo_restores_exact_dumps(rule: Rule) -> None:
    a, b = person(handle="ha", nickname=None), person(handle="hb", nickname="bee", name="Bea")
    populate(a, b)
    Invoice.objects.create(person=a)
    resolutions = choices(rule, a, b)
    assert len(resolutions) == 2  # the seat and the club membership; only the duplicate has a profile
    before = dump()
    record = merge.merge(
        rule,
        a.pk,
        [b.pk],
        fields={"nickname": b.pk, "handle": b.pk, "passport": b.pk},
        resolutions=resolutions,
    )
    assert dump() != before
    undone = merge_undo.undo(record)
    assert dump() == before
    assert undone.undone_at is not None
    assert MergeRecord.objects.get(pk=record.pk).undone_at is not None


def test_undo_twice_is_refused(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    merge_undo.undo(record)
    after = dump()
    with pytest.raises(merge_undo.UndoRefused):
        merge_undo.undo(record)
    with pytest.raises(merge_undo.UndoRefused):
        merge_undo.undo(MergeRecord.objects.get(pk=record.pk))
    assert dump() == after


def undo_refused(record: MergeRecord) -> None:
    before = dump()
    with pytest.raises(merge_undo.UndoRefused):
        merge_undo.undo(record)
    assert dump() == before
    assert MergeRecord.objects.get(pk=record.pk).undone_at is None


def test_undo_refused_when_a_deleted_pk_was_recreated(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    Person.objects.create(pk=b.pk, email="new@example.com")
    undo_refused(record)


def test_undo_refused_when_a_deleted_child_pk_was_recreated(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    deleted_seat = next(d["rows"][0]["id"] for d in record.data["deleted"] if d["model"] == "merging.Seat")
    Seat.objects.create(pk=deleted_seat, person=person("x@example.com"), number=1)
    undo_refused(record)


def test_undo_refused_when_a_moved_reference_changed(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    other = person("other@example.com")
    Order.objects.filter(person=a).order_by("-pk").update(person=other)
    undo_refused(record)


def test_undo_refused_when_a_moved_row_was_deleted(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    Note.objects.filter(object_id=a.pk).delete()
    undo_refused(record)


def test_undo_refused_when_the_survivors_changed_field_was_edited(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    Person.objects.filter(pk=a.pk).update(nickname="edited")
    undo_refused(record)


def test_undo_allowed_when_an_unchanged_survivor_field_was_edited(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    Person.objects.filter(pk=a.pk).update(email="changed@example.com")
    merge_undo.undo(record)
    assert Person.objects.get(pk=a.pk).email == "changed@example.com"
    assert Person.objects.get(pk=b.pk).nickname == "bee"


def test_undo_refused_when_the_survivor_was_deleted(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for model in (Order, Seat, Badge, Receipt, ClubMembership, Profile):
        model.objects.filter(person=a).delete()
    Invoice.objects.all().delete()
    Person.objects.filter(mentor=a).update(mentor=None)
    Person.objects.filter(pk=a.pk).delete()
    undo_refused(record)


def test_undo_restores_cross_references_between_members(rule: Rule) -> None:
    a, b, c = person(), person(), person()
    for x, y in ((a, b), (b, c), (c, a)):
        x.mentor = y
        x.save()
    Order.objects.create(person=c)
    before = dump()
    record = merge.merge(rule, a.pk, [b.pk, c.pk])
    assert Person.objects.get(pk=a.pk).mentor_id == a.pk
    merge_undo.undo(record)
    assert dump() == before


def test_undo_refused_when_the_survivors_old_unique_value_was_taken(rule: Rule) -> None:
    a, b, record = full_merge(rule)
    assert Person.objects.get(pk=a.pk).handle == "hb"
    person("third@example.com", handle="ha")
    undo_refused(record)
