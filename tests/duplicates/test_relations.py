"""Every relation to a model: foreign keys, one-to-ones, many-to-many tables, through models, generic keys."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType

from integrity.duplicates.relations import (
    FOREIGN_KEY,
    GENERIC,
    MANY_TO_MANY,
    ONE_TO_ONE,
    Relation,
    relations_to,
)
from integrity.models import MergeRecord
from tests.merging.models import (
    Badge,
    Club,
    ClubMembership,
    Group,
    Invoice,
    Newsletter,
    Note,
    Passport,
    Person,
    Profile,
    Receipt,
    Tagged,
)

pytestmark = pytest.mark.django_db


def by_label(relations: list[Relation]) -> dict[str, Relation]:
    """By ``app.Holder.field``, the holder being the auto-created table for a many-to-many."""
    labels = [r.label for r in relations]
    assert len(labels) == len(set(labels)), labels
    return {f"{r.holder._meta.label}.{r.field.name}": r for r in relations}


def test_every_relation_to_person_with_its_kind_and_target() -> None:
    found = by_label(relations_to("default", Person))
    ct = ContentType.objects.get_for_model(Person).pk
    mine = {label: r for label, r in found.items() if label.startswith("merging.")}
    assert {label: (r.kind, r.target, r.column, r.content_type_id) for label, r in mine.items()} == {
        "merging.Badge.person": (FOREIGN_KEY, "id", "person_id", None),
        "merging.ClubMembership.person": (FOREIGN_KEY, "id", "person_id", None),
        "merging.Invoice.person": (FOREIGN_KEY, "handle", "person_id", None),
        "merging.Newsletter_readers.person": (MANY_TO_MANY, "id", "person_id", None),
        "merging.Note.object_id": (GENERIC, "id", "object_id", ct),
        "merging.Order.person": (FOREIGN_KEY, "id", "person_id", None),
        "merging.Person_groups.person": (MANY_TO_MANY, "id", "person_id", None),
        "merging.Person.mentor": (FOREIGN_KEY, "id", "mentor_id", None),
        "merging.Profile.person": (ONE_TO_ONE, "id", "person_id", None),
        "merging.Receipt.person": (FOREIGN_KEY, "id", "person_id", None),
        "merging.Seat.person": (FOREIGN_KEY, "id", "person_id", None),
        "merging.Tagged.object_id": (GENERIC, "id", "object_id", ct),
    }
    # Every other app's generic foreign keys could point at a person too.
    assert {r.kind for label, r in found.items() if label not in mine} <= {GENERIC}
    assert not any(r.parent_link for r in found.values())


def test_holders_and_fields() -> None:
    found = by_label(relations_to("default", Person))
    invoice = found["merging.Invoice.person"]
    assert invoice.holder is Invoice
    assert invoice.field is Invoice._meta.get_field("person")
    readers = found["merging.Newsletter_readers.person"]
    assert readers.holder is Newsletter.readers.through
    tagged = found["merging.Tagged.object_id"]
    assert tagged.holder is Tagged
    assert tagged.content_type is Tagged._meta.get_field("content_type")
    assert found["merging.Person.mentor"].holder is Person


def test_relations_are_sorted() -> None:
    relations = relations_to("default", Person)
    assert [(r.label, r.column) for r in relations] == sorted((r.label, r.column) for r in relations)


def test_forward_one_to_one_is_a_relation_to_its_target() -> None:
    found = by_label(relations_to("default", Passport))
    assert (found["merging.Person.passport"].kind, found["merging.Person.passport"].target) == (
        ONE_TO_ONE,
        "id",
    )


def test_both_sides_of_many_to_many_and_through_models() -> None:
    groups = by_label(relations_to("default", Group))
    assert groups["merging.Person_groups.group"].kind == MANY_TO_MANY
    clubs = by_label(relations_to("default", Club))
    assert clubs["merging.ClubMembership.club"].kind == FOREIGN_KEY
    assert clubs["merging.ClubMembership.club"].holder is ClubMembership
    assert not any(label.startswith("merging.Person.clubs") for label in clubs)


def test_labels_name_the_many_to_many_of_an_auto_created_table() -> None:
    labels = {r.label for r in relations_to("default", Person)}
    assert "merging.Invoice.person" in labels
    assert any(label.startswith("merging.Person.groups") for label in labels)
    assert any(label.startswith("merging.Newsletter.readers") for label in labels)
    assert not any("_groups" in label or "_readers" in label for label in labels)


def test_generic_relations_carry_the_content_type_of_the_model() -> None:
    for model in (Group, Passport):
        found = by_label(relations_to("default", model))
        assert found["merging.Note.object_id"].content_type_id == ContentType.objects.get_for_model(model).pk


def test_related_name_plus_foreign_keys_are_found() -> None:
    assert "merging.Receipt.person" in by_label(relations_to("default", Person))
    users = by_label(relations_to("default", User))
    assert users["integrity.MergeRecord.user"].holder is MergeRecord
    assert users["integrity.MergeRecord.undone_by"].kind == FOREIGN_KEY


def test_router_decides_which_holders_count() -> None:
    assert relations_to("other", Person) == []
    users = by_label(relations_to("other", User))
    assert "integrity.MergeRecord.user" in users
    assert not any(label.startswith("merging.") for label in users)


def test_rows_and_counts_of_a_foreign_key() -> None:
    a, b = Person.objects.create(email="a"), Person.objects.create(email="b")
    Badge.objects.create(person=a, code="1")
    Badge.objects.create(person=a, code="2")
    Badge.objects.create(code="nobody")
    rel = by_label(relations_to("default", Person))["merging.Badge.person"]
    assert rel.counts("default", [a.pk, b.pk, None]) == {a.pk: 2}
    assert rel.counts("default", [None]) == {}
    assert rel.rows("default", [a.pk]).count() == 2


def test_rows_and_counts_of_a_to_field_key() -> None:
    a = Person.objects.create(email="a", handle="ha")
    Invoice.objects.create(person=a)
    rel = by_label(relations_to("default", Person))["merging.Invoice.person"]
    assert rel.counts("default", ["ha", "zz"]) == {"ha": 1}


def test_generic_text_ids_are_matched_as_text_and_by_content_type() -> None:
    a = Person.objects.create(email="a")
    group = Group.objects.create(pk=a.pk, name="same id")
    Tagged.objects.create(target=a, tag="x")
    Tagged.objects.create(target=a, tag="y")
    Tagged.objects.create(target=group, tag="x")
    Note.objects.create(target=group, text="group")
    rel = by_label(relations_to("default", Person))["merging.Tagged.object_id"]
    assert rel.stored(a.pk) == str(a.pk)
    assert rel.counts("default", [a.pk]) == {a.pk: 2}
    note = by_label(relations_to("default", Person))["merging.Note.object_id"]
    assert note.stored(str(a.pk)) == a.pk
    assert note.counts("default", [a.pk]) == {}


def test_reverse_one_to_one_rows() -> None:
    a = Person.objects.create(email="a")
    Profile.objects.create(person=a)
    Receipt.objects.create(person=a, number="1")
    found = by_label(relations_to("default", Person))
    assert found["merging.Profile.person"].counts("default", [a.pk]) == {a.pk: 1}
    assert found["merging.Receipt.person"].counts("default", [a.pk]) == {a.pk: 1}
