"""The merge service on real PostgreSQL: every relation re-pointed, conflicts, faults, races, the record."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from integrity import merge
from integrity.duplicates.rules import Rule
from integrity.merge import plan as merge_plan
from integrity.merge import undo as merge_undo
from integrity.merge.exceptions import (
    BadChoice,
    GroupGone,
    MergeBusy,
    NeedsChoice,
    NotDuplicates,
    StalePreview,
    Unsupported,
)
from integrity.models import MergeRecord
from tests.helpers import (
    choices,
    dump,
    in_thread,
    merge_holding_its_locks,
    person,
    populate,
    wait_for_lock_waiter,
)
from tests.merging.models import (
    Badge,
    Club,
    ClubMembership,
    Group,
    Invoice,
    Newsletter,
    Note,
    Order,
    Passport,
    Person,
    Profile,
    Receipt,
    Seat,
    Tagged,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("constraints_checked")]


def person_ct() -> ContentType:
    return ContentType.objects.get_for_model(Person)


def refused(call: Callable[[], Any], exc: type[Exception]) -> Any:
    """Run ``call`` expecting ``exc``; the database must be exactly as before."""
    before, records = dump(), MergeRecord.objects.count()
    with pytest.raises(exc) as info:
        call()
    assert dump() == before
    assert MergeRecord.objects.count() == records
    return info.value


def gone(*people: Person) -> bool:
    return not Person.objects.filter(pk__in=[p.pk for p in people]).exists()


# ---------------------------------------------------------------------------
# Every relation kind ends up on the survivor
# ---------------------------------------------------------------------------


def test_reverse_foreign_keys_move_to_the_survivor(rule: Rule) -> None:
    a, b, c = person(), person(), person()
    mine = Order.objects.create(person=a, total=Decimal("1.00"))
    theirs = [Order.objects.create(person=b, total=Decimal(i)) for i in range(3)]
    theirs.append(Order.objects.create(person=c, total=Decimal("9.50")))
    record = merge.merge(rule, a.pk, [b.pk, c.pk])
    assert gone(b, c)
    assert sorted(Order.objects.filter(person=a).values_list("pk", flat=True)) == sorted(
        [mine.pk, *(o.pk for o in theirs)]
    )
    assert Order.objects.get(pk=theirs[-1].pk).total == Decimal("9.50")
    assert record.repointed == 4
    assert record.removed == [str(b.pk), str(c.pk)]
    assert record.survivor == str(a.pk)
    assert record.deleted == 2


def test_related_name_plus_foreign_key_moves(rule: Rule) -> None:
    a, b = person(), person()
    receipt = Receipt.objects.create(person=b, number="R1")
    merge.merge(rule, a.pk, [b.pk])
    assert Receipt.objects.get(pk=receipt.pk).person_id == a.pk


def test_to_field_foreign_key_moves_to_the_survivors_handle(rule: Rule) -> None:
    a, b = person(handle="ha"), person(handle="hb")
    mine = Invoice.objects.create(person=a, amount=1)
    theirs = Invoice.objects.create(person=b, amount=2)
    merge.merge(rule, a.pk, [b.pk])
    assert gone(b)
    assert set(Invoice.objects.values_list("pk", "person_id")) == {(mine.pk, "ha"), (theirs.pk, "ha")}


def test_to_field_survivor_takes_the_duplicates_handle(rule: Rule) -> None:
    """The duplicate (holding the unique handle) is deleted before the survivor takes it."""
    a, b = person(handle="ha"), person(handle="hb")
    mine = Invoice.objects.create(person=a, amount=1)
    theirs = Invoice.objects.create(person=b, amount=2)
    merge.merge(rule, a.pk, [b.pk], fields={"handle": b.pk})
    assert Person.objects.get(pk=a.pk).handle == "hb"
    assert set(Invoice.objects.values_list("pk", "person_id")) == {(mine.pk, "hb"), (theirs.pk, "hb")}


def test_to_field_references_are_not_cut_when_the_survivor_has_no_handle(rule: Rule) -> None:
    """Invoices of a duplicate keep a person: the survivor takes the handle they reference."""
    a, b = person(), person(handle="hb")
    invoice = Invoice.objects.create(person=b, amount=2)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    assert [(c.name, c.after) for c in plan.changes] == [("handle", "hb")]
    record = merge.merge(rule, a.pk, [b.pk], token=plan.token)
    assert Person.objects.get(pk=a.pk).handle == "hb"
    assert Invoice.objects.get(pk=invoice.pk).person_id == "hb"
    merge_undo.undo(record)
    assert Person.objects.get(pk=a.pk).handle is None
    assert Person.objects.get(pk=b.pk).handle == "hb"
    assert Invoice.objects.get(pk=invoice.pk).person_id == "hb"


def test_to_field_two_referenced_handles_and_none_on_the_survivor_need_a_choice(rule: Rule) -> None:
    a, b, c = person(), person(handle="hb"), person(handle="hc")
    Invoice.objects.create(person=b)
    Invoice.objects.create(person=c)
    refused(lambda: merge.merge(rule, a.pk, [b.pk, c.pk]), BadChoice)
    merge.merge(rule, a.pk, [b.pk, c.pk], fields={"handle": c.pk})
    assert set(Invoice.objects.values_list("person_id", flat=True)) == {"hc"}


def test_self_referential_foreign_key_moves(rule: Rule) -> None:
    a, b = person(), person()
    mentee = person("mentee@example.com", mentor=b)
    b.mentor = mentee
    b.save()
    merge.merge(rule, a.pk, [b.pk])
    assert Person.objects.get(pk=mentee.pk).mentor_id == a.pk
    assert Person.objects.get(pk=a.pk).mentor_id is None


def test_a_survivor_referencing_a_duplicate_is_refused_it_would_reference_itself(rule: Rule) -> None:
    # Merging a row into its own child would make the survivor its own mentor (its own parent).
    b = person()
    a = person(mentor=b)
    with pytest.raises(Unsupported, match=rf"Row {a.pk} references row {b.pk} through merging.Person.mentor"):
        merge.merge(rule, a.pk, [b.pk])
    assert Person.objects.get(pk=a.pk).mentor_id == b.pk
    assert Person.objects.filter(pk=b.pk).exists()
    assert not MergeRecord.objects.exists()


def test_the_other_way_round_the_child_moves_to_the_survivor(rule: Rule) -> None:
    b = person()
    a = person(mentor=b)
    c = person(mentor=a)
    record = merge.merge(rule, b.pk, [a.pk])
    assert Person.objects.get(pk=c.pk).mentor_id == b.pk
    merge_undo.undo(record)
    assert Person.objects.get(pk=a.pk).mentor_id == b.pk
    assert Person.objects.get(pk=c.pk).mentor_id == a.pk


def test_reverse_one_to_one_moves_when_the_survivor_has_none(rule: Rule) -> None:
    a, b = person(), person()
    profile = Profile.objects.create(person=b, bio="hello")
    merge.merge(rule, a.pk, [b.pk])
    assert Profile.objects.get(pk=profile.pk).person_id == a.pk
    assert Profile.objects.get(pk=profile.pk).bio == "hello"


def test_forward_one_to_one_stays_unless_chosen_and_the_passport_is_never_deleted(rule: Rule) -> None:
    a, b = person(), person()
    b.passport = Passport.objects.create(number="P-B")
    b.save()
    merge.merge(rule, a.pk, [b.pk])
    assert Person.objects.get(pk=a.pk).passport_id is None
    assert Passport.objects.filter(number="P-B").exists()


def test_forward_one_to_one_taken_from_a_duplicate(rule: Rule) -> None:
    mine = Passport.objects.create(number="P-A")
    theirs = Passport.objects.create(number="P-B")
    a, b = person(passport=mine), person(passport=theirs)
    merge.merge(rule, a.pk, [b.pk], fields={"passport": b.pk})
    assert Person.objects.get(pk=a.pk).passport_id == theirs.pk
    assert set(Passport.objects.values_list("pk", flat=True)) == {mine.pk, theirs.pk}


def test_auto_many_to_many_moves_from_the_model_side(rule: Rule) -> None:
    g1, g2 = Group.objects.create(name="g1"), Group.objects.create(name="g2")
    a, b = person(), person()
    b.groups.add(g1, g2)
    merge.merge(rule, a.pk, [b.pk])
    assert set(Person.objects.get(pk=a.pk).groups.all()) == {g1, g2}


def test_auto_many_to_many_moves_from_the_other_side(rule: Rule) -> None:
    n1 = Newsletter.objects.create(title="n1")
    a, b = person(), person()
    n1.readers.add(b)
    merge.merge(rule, a.pk, [b.pk])
    assert list(n1.readers.all()) == [a]


def test_custom_through_rows_move_with_their_columns(rule: Rule) -> None:
    club = Club.objects.create(name="chess")
    a, b = person(), person()
    row = ClubMembership.objects.create(person=b, club=club, role="chair", joined=datetime.date(2020, 5, 1))
    merge.merge(rule, a.pk, [b.pk])
    moved = ClubMembership.objects.get(pk=row.pk)
    assert (moved.person_id, moved.club_id, moved.role, moved.joined) == (
        a.pk,
        club.pk,
        "chair",
        datetime.date(2020, 5, 1),
    )


def test_generic_integer_ids_move_and_other_content_types_stay(rule: Rule) -> None:
    a, b = person(), person()
    note = Note.objects.create(content_type=person_ct(), object_id=b.pk, text="about b")
    group_ct = ContentType.objects.get_for_model(Group)
    other = Note.objects.create(content_type=group_ct, object_id=b.pk, text="about group with b's id")
    merge.merge(rule, a.pk, [b.pk])
    assert Note.objects.get(pk=note.pk).object_id == a.pk
    assert Note.objects.get(pk=other.pk).object_id == b.pk


def test_generic_text_ids_move_through_the_generic_relation(rule: Rule) -> None:
    a, b = person(), person()
    Tagged.objects.create(target=b, tag="vip")
    other = Tagged.objects.create(content_type=ContentType.objects.get_for_model(Group), object_id=str(b.pk))
    merge.merge(rule, a.pk, [b.pk])
    assert [t.tag for t in Person.objects.get(pk=a.pk).tags.all()] == ["vip"]
    assert Tagged.objects.get(pk=other.pk).object_id == str(b.pk)


def test_every_relation_at_once_and_nothing_left_on_the_duplicate(rule: Rule) -> None:
    a, b = person(), person(handle="hb")
    club, group, news = (
        Club.objects.create(name="c"),
        Group.objects.create(name="g"),
        Newsletter.objects.create(),
    )
    Order.objects.create(person=b)
    Invoice.objects.create(person=b)
    Profile.objects.create(person=b)
    Seat.objects.create(person=b, number=1)
    Badge.objects.create(person=b, code="x")
    Receipt.objects.create(person=b, number="1")
    person("other@example.com", mentor=b)
    b.groups.add(group)
    news.readers.add(b)
    ClubMembership.objects.create(person=b, club=club)
    Note.objects.create(target=b, text="n")
    Tagged.objects.create(target=b, tag="t")
    record = merge.merge(rule, a.pk, [b.pk], fields={"handle": b.pk})
    assert record.repointed == 11  # the invoice already references the handle the survivor takes
    for model in (Order, Profile, Seat, Badge, Receipt, ClubMembership):
        assert list(model.objects.values_list("person_id", flat=True)) == [a.pk], model
    assert list(Invoice.objects.values_list("person_id", flat=True)) == ["hb"]
    assert Person.objects.get(email="other@example.com").mentor_id == a.pk
    assert list(Person.groups.through.objects.values_list("person_id", flat=True)) == [a.pk]
    assert list(Newsletter.readers.through.objects.values_list("person_id", flat=True)) == [a.pk]
    assert list(Note.objects.values_list("object_id", flat=True)) == [a.pk]
    assert list(Tagged.objects.values_list("object_id", flat=True)) == [str(a.pk)]


# ---------------------------------------------------------------------------
# Conflicts
# ---------------------------------------------------------------------------


def seats(rule: Rule) -> tuple[Person, Person, Seat, Seat]:
    a, b = person(), person()
    return (
        a,
        b,
        Seat.objects.create(person=a, number=7, row="A"),
        Seat.objects.create(person=b, number=7, row="B"),
    )


def test_child_rule_with_data_needs_a_choice(rule: Rule) -> None:
    a, b, mine, theirs = seats(rule)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    [conflict] = plan.conflicts
    assert conflict.holder is Seat
    assert not conflict.pure
    assert conflict.key == {"person": a.pk, "number": 7}
    assert [(r.pk, r.owner, r.values["row"]) for r in conflict.rows] == [
        (mine.pk, a.pk, "A"),
        (theirs.pk, b.pk, "B"),
    ]
    assert plan.unresolved == [conflict]
    exc = refused(lambda: merge.merge(rule, a.pk, [b.pk], token=plan.token), NeedsChoice)
    assert exc.status == 409
    assert [c.id for c in exc.plan.unresolved] == [conflict.id]


def test_child_conflict_keep_the_survivors_row(rule: Rule) -> None:
    a, b, mine, theirs = seats(rule)
    conflict = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts[0]
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], resolutions={conflict.id: mine.pk})
    assert plan.unresolved == []
    merge.merge(rule, a.pk, [b.pk], resolutions={conflict.id: mine.pk}, token=plan.token)
    assert list(Seat.objects.values_list("pk", "person_id", "row")) == [(mine.pk, a.pk, "A")]


def test_child_conflict_keep_the_duplicates_row(rule: Rule) -> None:
    a, b, mine, theirs = seats(rule)
    conflict = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts[0]
    merge.merge(rule, a.pk, [b.pk], resolutions={conflict.id: theirs.pk})
    assert list(Seat.objects.values_list("pk", "person_id", "row")) == [(theirs.pk, a.pk, "B")]


def test_child_conflict_resolution_must_be_one_of_its_rows(rule: Rule) -> None:
    a, b, mine, theirs = seats(rule)
    stranger = Seat.objects.create(person=person("x@example.com"), number=7)
    conflict = merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts[0]
    refused(lambda: merge.merge(rule, a.pk, [b.pk], resolutions={conflict.id: stranger.pk}), BadChoice)


def test_child_rows_identical_but_for_the_key_collapse_to_the_survivors(rule: Rule) -> None:
    a, b = person(), person()
    mine = Seat.objects.create(person=a, number=3, row="C")
    Seat.objects.create(person=b, number=3, row="C")
    Seat.objects.create(person=b, number=4, row="C")
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    assert [c.pure for c in plan.conflicts] == [True]
    assert plan.unresolved == []
    merge.merge(rule, a.pk, [b.pk])
    assert sorted(Seat.objects.values_list("number", "person_id")) == [(3, a.pk), (4, a.pk)]
    assert Seat.objects.get(number=3).pk == mine.pk


def test_reverse_one_to_one_the_survivor_already_has(rule: Rule) -> None:
    a, b = person(), person()
    mine, theirs = (
        Profile.objects.create(person=a, bio="mine"),
        Profile.objects.create(person=b, bio="theirs"),
    )
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    [conflict] = plan.conflicts
    assert conflict.holder is Profile
    refused(lambda: merge.merge(rule, a.pk, [b.pk]), NeedsChoice)
    merge.merge(rule, a.pk, [b.pk], resolutions={conflict.id: theirs.pk})
    assert list(Profile.objects.values_list("pk", "person_id", "bio")) == [(theirs.pk, a.pk, "theirs")]
    assert not Profile.objects.filter(pk=mine.pk).exists()


def test_auto_many_to_many_pair_the_survivor_has_collapses_keeping_its_row(rule: Rule) -> None:
    g = Group.objects.create(name="g")
    a, b, c = person(), person(), person()
    for p in (a, b, c):
        p.groups.add(g)
    through = Person.groups.through
    mine = through.objects.get(person=a).pk
    plan = merge_plan.build_plan(rule, a.pk, [b.pk, c.pk])
    assert [c.pure for c in plan.conflicts] == [True]
    assert plan.collapsed == 2
    merge.merge(rule, a.pk, [b.pk, c.pk])
    assert list(through.objects.values_list("pk", "person_id", "group_id")) == [(mine, a.pk, g.pk)]


def test_auto_many_to_many_pair_among_duplicates_only_keeps_one(rule: Rule) -> None:
    n = Newsletter.objects.create(title="n")
    a, b, c = person(), person(), person()
    n.readers.add(b, c)
    merge.merge(rule, a.pk, [b.pk, c.pk])
    assert list(n.readers.all()) == [a]


def test_through_pair_with_identical_columns_collapses(rule: Rule) -> None:
    club = Club.objects.create(name="c")
    a, b = person(), person()
    mine = ClubMembership.objects.create(person=a, club=club, role="member")
    ClubMembership.objects.create(person=b, club=club, role="member")
    merge.merge(rule, a.pk, [b.pk])
    assert list(ClubMembership.objects.values_list("pk", "person_id")) == [(mine.pk, a.pk)]


def test_through_pair_with_different_columns_needs_a_choice(rule: Rule) -> None:
    club = Club.objects.create(name="c")
    a, b = person(), person()
    ClubMembership.objects.create(person=a, club=club, role="member")
    theirs = ClubMembership.objects.create(
        person=b, club=club, role="chair", joined=datetime.date(2019, 1, 2)
    )
    exc = refused(lambda: merge.merge(rule, a.pk, [b.pk]), NeedsChoice)
    [conflict] = exc.plan.unresolved
    assert conflict.holder is ClubMembership
    merge.merge(rule, a.pk, [b.pk], resolutions={conflict.id: theirs.pk})
    assert list(ClubMembership.objects.values_list("pk", "person_id", "role", "joined")) == [
        (theirs.pk, a.pk, "chair", datetime.date(2019, 1, 2))
    ]


def test_generic_unique_collapses(rule: Rule) -> None:
    a, b = person(), person()
    mine = Tagged.objects.create(target=a, tag="vip")
    Tagged.objects.create(target=b, tag="vip")
    Tagged.objects.create(target=b, tag="new")
    merge.merge(rule, a.pk, [b.pk])
    assert sorted(Person.objects.get(pk=a.pk).tags.values_list("tag", flat=True)) == ["new", "vip"]
    assert Tagged.objects.get(tag="vip").pk == mine.pk


# ---------------------------------------------------------------------------
# Field values
# ---------------------------------------------------------------------------


def test_blank_survivor_field_takes_a_duplicates_value(rule: Rule) -> None:
    a, b = person(name="", nickname=None), person(name="Bea", nickname="bee")
    merge.merge(rule, a.pk, [b.pk], fields={"name": b.pk, "nickname": b.pk})
    a.refresh_from_db()
    assert (a.name, a.nickname) == ("Bea", "bee")


def test_unique_field_taken_from_a_duplicate(rule: Rule) -> None:
    a, b = person(handle="ha"), person(handle="hb")
    merge.merge(rule, a.pk, [b.pk], fields={"handle": b.pk})
    assert list(Person.objects.values_list("pk", "handle")) == [(a.pk, "hb")]


def test_mentor_taken_from_a_duplicate_that_pointed_at_a_member_becomes_the_survivor(rule: Rule) -> None:
    a = person()
    b = person(mentor=a)
    merge.merge(rule, a.pk, [b.pk], fields={"mentor": b.pk})
    assert Person.objects.get(pk=a.pk).mentor_id == a.pk


@pytest.mark.parametrize("name", ["nope", "id", "groups"])
def test_bad_field_name_is_refused(rule: Rule, name: str) -> None:
    a, b = person(), person(name="B")
    refused(lambda: merge.merge(rule, a.pk, [b.pk], fields={name: b.pk}), BadChoice)


def test_value_from_a_row_not_in_the_merge_is_refused(rule: Rule) -> None:
    a, b, c = person(), person(), person(name="C")
    refused(lambda: merge.merge(rule, a.pk, [b.pk], fields={"name": c.pk}), BadChoice)


def test_referenced_handle_cannot_be_emptied(rule: Rule) -> None:
    a, b = person(handle="ha"), person()
    Invoice.objects.create(person=a)
    refused(lambda: merge.merge(rule, a.pk, [b.pk], fields={"handle": b.pk}), BadChoice)


# ---------------------------------------------------------------------------
# Members: who can be merged
# ---------------------------------------------------------------------------


def test_null_references_stay_null(rule: Rule) -> None:
    a, b = person(), person()
    loose = [Badge.objects.create(code=str(i)) for i in range(3)]
    Badge.objects.create(person=b, code="b")
    merge.merge(rule, a.pk, [b.pk])
    assert set(Badge.objects.filter(pk__in=[x.pk for x in loose]).values_list("person_id", flat=True)) == {
        None
    }
    assert list(Badge.objects.filter(person__isnull=False).values_list("person_id", flat=True)) == [a.pk]


def test_null_key_is_nobodys_duplicate(nickname_rule: Rule) -> None:
    a, b = person(nickname="bee"), person(nickname="bee")
    blank, blank2 = person(nickname=None), person(nickname=None)
    refused(lambda: merge.merge(nickname_rule, a.pk, [blank.pk]), NotDuplicates)
    refused(lambda: merge.merge(nickname_rule, blank.pk, [blank2.pk]), NotDuplicates)
    refused(lambda: merge.merge(nickname_rule, blank.pk, [a.pk]), NotDuplicates)
    merge.merge(nickname_rule, a.pk, [b.pk])
    assert gone(b)


def test_rows_with_another_key_are_not_duplicates(rule: Rule) -> None:
    a, b = person(), person("other@example.com")
    exc = refused(lambda: merge.merge(rule, a.pk, [b.pk]), NotDuplicates)
    assert str(b.pk) in str(exc)


def test_missing_rows_are_gone(rule: Rule) -> None:
    a, b = person(), person()
    refused(lambda: merge.merge(rule, a.pk, [b.pk + 1000]), GroupGone)
    refused(lambda: merge.merge(rule, a.pk + 1000, [b.pk]), GroupGone)
    exc = refused(lambda: merge.merge(rule, a.pk, [a.pk]), BadChoice)
    assert exc.status == 400


# ---------------------------------------------------------------------------
# Stale previews
# ---------------------------------------------------------------------------


def test_new_reference_since_the_preview_is_stale(rule: Rule) -> None:
    a, b = person(), person()
    Order.objects.create(person=b)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    Order.objects.create(person=b)
    exc = refused(lambda: merge.merge(rule, a.pk, [b.pk], token=plan.token), StalePreview)
    assert exc.status == 409
    assert exc.plan.moving == 2
    merge.merge(rule, a.pk, [b.pk], token=exc.plan.token)
    assert Order.objects.filter(person=a).count() == 2


def test_reference_swapped_for_another_since_the_preview_is_stale(rule: Rule) -> None:
    a, b = person(), person()
    first = Order.objects.create(person=b)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    first.delete()
    Order.objects.create(person=b)
    refused(lambda: merge.merge(rule, a.pk, [b.pk], token=plan.token), StalePreview)


def test_new_group_member_since_the_preview_is_stale(rule: Rule) -> None:
    a, b = person(), person()
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    person()
    refused(lambda: merge.merge(rule, a.pk, [b.pk], token=plan.token), StalePreview)


def test_edited_member_since_the_preview_is_stale(rule: Rule) -> None:
    a, b = person(), person(nickname="bee")
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], fields={"nickname": b.pk})
    Person.objects.filter(pk=b.pk).update(nickname="wasp")
    refused(
        lambda: merge.merge(rule, a.pk, [b.pk], fields={"nickname": b.pk}, token=plan.token), StalePreview
    )


def test_confirming_other_choices_than_the_preview_is_stale(rule: Rule) -> None:
    a, b = person(), person(nickname="bee")
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    refused(
        lambda: merge.merge(rule, a.pk, [b.pk], fields={"nickname": b.pk}, token=plan.token), StalePreview
    )


# ---------------------------------------------------------------------------
# Faults: all or nothing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["locked", "conflicts", "repointed", "deleted", "recorded"])
def test_a_fault_at_any_step_changes_nothing(rule: Rule, at: str) -> None:
    a, b = person(), person(handle="hb", nickname="bee")
    populate(a, b)
    resolutions = choices(rule, a, b)

    def fail(name: str) -> None:
        if name == at:
            raise RuntimeError(f"fault at {name}")

    before = dump()
    with pytest.raises(RuntimeError, match=f"fault at {at}"):
        merge.merge(
            rule,
            a.pk,
            [b.pk],
            fields={"nickname": b.pk, "passport": b.pk},
            resolutions=resolutions,
            step=fail,
        )
    assert dump() == before
    assert not MergeRecord.objects.exists()


def test_a_database_fault_changes_nothing(rule: Rule) -> None:
    a, b = person(), person(handle="hb")
    populate(a, b)
    resolutions = choices(rule, a, b)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION merging_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no deleting people'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER merging_refuse BEFORE DELETE ON merging_person FOR EACH ROW EXECUTE FUNCTION merging_refuse()"
        )
    before = dump()
    with pytest.raises(DatabaseError, match="no deleting people"):
        merge.merge(rule, a.pk, [b.pk], fields={"handle": b.pk}, resolutions=resolutions)
    assert dump() == before
    assert not MergeRecord.objects.exists()


# ---------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_reference_to_a_duplicate_is_never_cascaded_away(rules_configured: None) -> None:
    from integrity.duplicates.rules import get_rule

    rule = get_rule("default:merging.Person:configured:email")
    a, b = person(), person()
    Order.objects.create(person=b)
    merger, merged, go_on = merge_holding_its_locks(rule, a.pk, [b.pk])

    def insert() -> int:
        with transaction.atomic():
            return Order.objects.create(person_id=b.pk, total=Decimal("5")).pk

    inserter, inserted = in_thread(insert)
    waiting = wait_for_lock_waiter()
    go_on.set()
    merger.join(30)
    inserter.join(30)
    assert waiting, "the insert did not wait for the merge's lock"
    assert "error" not in merged, merged
    assert isinstance(merged["result"], MergeRecord)
    assert gone(b)
    if "error" in inserted:
        assert isinstance(inserted["error"], IntegrityError), inserted
        assert Order.objects.count() == 1
    else:
        assert Order.objects.get(pk=inserted["result"]).person_id == a.pk
        assert Order.objects.count() == 2
    assert set(Order.objects.values_list("person_id", flat=True)) == {a.pk}


@pytest.mark.django_db(transaction=True)
def test_rows_locked_by_another_transaction_make_the_merge_busy(rules_configured: None) -> None:
    from integrity.duplicates.rules import get_rule

    rule = get_rule("default:merging.Person:configured:email")
    a, b = person(), person()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            list(Person.objects.select_for_update().filter(pk=b.pk))
            holding.set()
            release.wait(20)

    holder, _out = in_thread(hold)
    assert holding.wait(20)
    try:
        with override_settings(INTEGRITY_LOCK_TIMEOUT_MS=100), pytest.raises(MergeBusy):
            merge.merge(rule, a.pk, [b.pk])
    finally:
        release.set()
        holder.join(30)
    assert Person.objects.filter(pk=b.pk).exists()
    assert not MergeRecord.objects.exists()


# ---------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------


def many(a: Person, b: Person, n: int, tag: str) -> None:
    seat_rows: list[Seat] = []
    order_rows: list[Order] = []
    note_rows: list[Note] = []
    tag_rows: list[Tagged] = []
    badges: list[Badge] = []
    receipts: list[Receipt] = []
    ct = person_ct()
    for p in (a, b):
        for i in range(n):
            order_rows.append(Order(person=p))
            seat_rows.append(Seat(person=p, number=i if p is a else n + i))
            note_rows.append(Note(content_type=ct, object_id=p.pk, text=str(i)))
            tag_rows.append(Tagged(content_type=ct, object_id=str(p.pk), tag=f"{tag}{p.pk}-{i}"))
            badges.append(Badge(person=p, code=str(i)))
            receipts.append(Receipt(person=p, number=str(i)))
    Order.objects.bulk_create(order_rows)
    Seat.objects.bulk_create(seat_rows)
    Note.objects.bulk_create(note_rows)
    Tagged.objects.bulk_create(tag_rows)
    Badge.objects.bulk_create(badges)
    Receipt.objects.bulk_create(receipts)
    clubs = Club.objects.bulk_create([Club(name=f"{tag}{i}") for i in range(n)])
    ClubMembership.objects.bulk_create([ClubMembership(person=b, club=c) for c in clubs])
    groups = Group.objects.bulk_create([Group(name=f"{tag}{i}") for i in range(n)])
    b.groups.add(*groups)
    a.groups.add(*groups[: n // 2])  # conflicts that collapse
    news = Newsletter.objects.bulk_create([Newsletter(title=f"{tag}{i}") for i in range(n)])
    Newsletter.readers.through.objects.bulk_create(
        [Newsletter.readers.through(newsletter=x, person=b) for x in news]
    )
    Person.objects.bulk_create([Person(email=f"{tag}-mentee{i}@example.com", mentor=b) for i in range(n)])
    Invoice.objects.bulk_create([Invoice(person=b) for _ in range(n)])


def cost(rule: Rule, n: int) -> tuple[int, int, int]:
    a, b = person(f"cost{n}@example.com", handle=f"a{n}"), person(f"cost{n}@example.com", handle=f"b{n}")
    many(a, b, n, f"n{n}-")
    with CaptureQueriesContext(connection) as plan_queries:
        plan = merge_plan.build_plan(rule, a.pk, [b.pk], fields={"nickname": b.pk})
    assert plan.moving > n
    with CaptureQueriesContext(connection) as merge_queries:
        record = merge.merge(rule, a.pk, [b.pk], token=plan.token, fields={"nickname": b.pk})
    with CaptureQueriesContext(connection) as undo_queries:
        merge_undo.undo(record)
    return len(plan_queries), len(merge_queries), len(undo_queries)


def test_query_count_does_not_grow_with_the_number_of_child_rows(rule: Rule) -> None:
    cost(rule, 3)  # warm the content type cache
    small, large = cost(rule, 10), cost(rule, 200)
    assert small == large


# ---------------------------------------------------------------------------
# More: users, records, text keys, concurrent merges
# ---------------------------------------------------------------------------


def test_record_and_admin_log_name_the_user(rule: Rule, admin_user: Any) -> None:
    from django.contrib.admin.models import CHANGE, DELETION, LogEntry

    a, b = person(), person(nickname="bee")
    Seat.objects.create(person=a, number=1)
    Seat.objects.create(person=b, number=1)
    record = merge.merge(rule, a.pk, [b.pk], user=admin_user, fields={"nickname": b.pk})
    assert record.user == admin_user
    assert record.deleted == 2  # the duplicate and the collapsed seat
    assert record.data["fields"] == {"nickname": str(b.pk)}
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id) == (admin_user, CHANGE, str(record.pk))
    merge_undo.undo(record, user=admin_user)
    record.refresh_from_db()
    assert record.undone_by == admin_user
    assert LogEntry.objects.count() == 2
    plain = merge.merge(rule, a.pk, [b.pk], user=admin_user)
    assert LogEntry.objects.filter(object_id=str(plain.pk)).get().action_flag == DELETION


def test_no_user_no_log(rule: Rule) -> None:
    from django.contrib.admin.models import LogEntry

    a, b = person(), person()
    record = merge.merge(rule, a.pk, [b.pk])
    assert record.user is None
    merge_undo.undo(record)
    assert not LogEntry.objects.exists()


def test_keys_as_text_merge(rule: Rule) -> None:
    a, b = person(), person(nickname="bee")
    Order.objects.create(person=b)
    plan = merge_plan.build_plan(rule, str(a.pk), [str(b.pk)], fields={"nickname": str(b.pk)})
    merge.merge(rule, str(a.pk), [str(b.pk)], fields={"nickname": str(b.pk)}, token=plan.token)
    assert list(Person.objects.values_list("pk", "nickname")) == [(a.pk, "bee")]
    assert Order.objects.get().person_id == a.pk


def test_the_row_to_keep_is_chosen_after_the_preview(rule: Rule) -> None:
    a, b, mine, theirs = seats(rule)
    preview = merge_plan.build_plan(rule, a.pk, [b.pk])
    [conflict] = preview.unresolved
    refused(lambda: merge.merge(rule, a.pk, [b.pk], token=preview.token), NeedsChoice)
    # Chosen after that preview counted: refused with the preview of the choice, which then goes through.
    choice = {conflict.id: str(theirs.pk)}
    exc = refused(
        lambda: merge.merge(rule, a.pk, [b.pk], resolutions=choice, token=preview.token), StalePreview
    )
    assert "changed after the preview counted them" in str(exc)
    assert exc.plan is not None and exc.plan.collapsed == 1
    merge.merge(rule, a.pk, [b.pk], resolutions=choice, token=exc.plan.token)
    assert list(Seat.objects.values_list("pk", "person_id")) == [(theirs.pk, a.pk)]


def test_nulls_equal_rule_merges_null_keys(rules_configured: None) -> None:
    from integrity.duplicates.rules import get_rule

    rules = [{"model": "merging.Person", "fields": ["nickname"], "name": "nick", "nulls_equal": True}]
    with override_settings(INTEGRITY_DUPLICATE_RULES=rules):
        nulls = get_rule("default:merging.Person:configured:nick")
        a, b, named = person(), person("else@example.com"), person(nickname="x")
        merge.merge(nulls, a.pk, [b.pk])
        assert gone(b)
        refused(lambda: merge.merge(nulls, a.pk, [named.pk]), NotDuplicates)


@pytest.mark.django_db(transaction=True)
def test_two_merges_of_one_group_the_second_finds_it_gone(rules_configured: None) -> None:
    from integrity.duplicates.rules import get_rule

    rule = get_rule("default:merging.Person:configured:email")
    a, b = person(), person()
    Order.objects.create(person=b)
    first, first_out, go_on = merge_holding_its_locks(rule, a.pk, [b.pk])
    second, second_out = in_thread(lambda: merge.merge(rule, a.pk, [b.pk]))
    waiting = wait_for_lock_waiter()
    go_on.set()
    first.join(30)
    second.join(30)
    assert waiting
    assert isinstance(first_out.get("result"), MergeRecord), first_out
    assert isinstance(second_out.get("error"), GroupGone), second_out
    assert MergeRecord.objects.count() == 1
    assert Order.objects.get().person_id == a.pk


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_generic_reference_to_a_duplicate_ends_on_the_survivor(rules_configured: None) -> None:
    from integrity.duplicates.rules import get_rule

    rule = get_rule("default:merging.Person:configured:email")
    a, b = person(), person()
    merger, merged, go_on = merge_holding_its_locks(rule, a.pk, [b.pk])

    def insert() -> int:
        with transaction.atomic():
            return Note.objects.create(target=b, text="late").pk

    inserter, inserted = in_thread(insert)
    waiting = wait_for_lock_waiter()
    go_on.set()
    merger.join(30)
    inserter.join(30)
    assert waiting
    record = merged.get("result")
    assert isinstance(record, MergeRecord)
    # No constraint protects a generic key: the insert that waited for the
    # merge's table lock goes through after the commit, with the duplicate's
    # id; the merge waits for it and moves it to the survivor as well.
    late = Note.objects.get(pk=inserted["result"])
    assert late.object_id == a.pk
    record.refresh_from_db()
    assert [b.pk, [late.pk]] in [moves for m in record.data["moved"] for moves in m["from"]]
    merge_undo.undo(record)
    assert Note.objects.get(pk=late.pk).object_id == b.pk  # the undo moves it back with the rest
