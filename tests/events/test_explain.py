"""Explanations of IntegrityError groups (integrity.events.explain), from real errors on real PostgreSQL.

Each test provokes the error the way the application would, parses it with
``integrity.events.violations`` and stores its group and samples as ``events.write``
does (``group_of`` in conftest, through the ORM so that the test's rollback
removes them). Sequence values are not transactional: ``keep_sequences`` puts
back those the tests move.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from demo.clinic.models import Doctor, current_locale
from demo.crm.models import Company
from demo.helpdesk.models import Ticket
from demo.shop.models import Order, Product
from integrity import sequences
from integrity.events import explain, violations
from integrity.models import EventGroup
from tests.helpers import (
    group_of,
    run,
    violation_of,
)
from tests.helpers import (
    set_sequence_next as set_next,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_sequences")]


# --- unique: primary keys -----------------------------------------------------------------------


def test_seed_001_sequence_behind_after_explicit_ids_offers_a_resync() -> None:
    set_next("shop_product_id_seq", 1)  # migration 0002 wrote products 1..8 with explicit ids
    v = violation_of(lambda: Product.objects.create(name="Trackpad"))
    assert v.primary_key and v.model == "shop.Product"

    result = explain.explain(group_of(v))

    assert result.code == explain.SEQUENCE_BEHIND
    assert result.cause == "Sequence behind"
    assert result.fix is not None and result.fix.kind == explain.RESYNC
    assert result.fix.sequence_key == "default:shop.Product:id"
    assert "shop.Product.id" in result.text and "public.shop_product_id_seq" in result.text
    assert "up to 8" in result.text


def test_after_the_resync_the_group_keeps_its_cause_sequence_behind() -> None:
    """Issue 14: the cause is the one decided from the evidence of the time, not from the state after the fix."""
    set_next("shop_product_id_seq", 1)
    group = group_of(violation_of(lambda: Product.objects.create(name="Trackpad")))
    assert explain.explain(group, keep=True).code == explain.SEQUENCE_BEHIND
    sequences.resync("default", "shop.Product", "id")

    result = explain.explain(EventGroup.objects.get(pk=group.pk))

    assert result.code == explain.SEQUENCE_BEHIND
    assert result.cause == "Sequence behind"
    assert "up to 8" in result.text


def test_a_group_never_explained_before_its_resync_is_explained_from_the_resync(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The resync itself says the sequence was behind: the group's cause is decided from it, not from now."""
    set_next("shop_product_id_seq", 1)
    group = group_of(violation_of(lambda: Product.objects.create(name="Trackpad")))
    with django_capture_on_commit_callbacks(execute=True):
        sequences.resync("default", "shop.Product", "id")

    result = explain.explain(EventGroup.objects.get(pk=group.pk))

    assert result.code == explain.SEQUENCE_BEHIND
    assert "would hand out 2 next" in result.text  # the failed insert took 1


def test_the_cause_is_decided_again_from_later_occurrences() -> None:
    set_next("shop_product_id_seq", 1)
    group = group_of(violation_of(lambda: Product.objects.create(name="Trackpad")))
    assert explain.explain(group, keep=True).code == explain.SEQUENCE_BEHIND
    sequences.resync("default", "shop.Product", "id")
    EventGroup.objects.filter(pk=group.pk).update(count=group.count + 1)  # it occurred again since

    result = explain.explain(EventGroup.objects.get(pk=group.pk))

    assert result.code == explain.EXPLICIT_IDS
    assert "is not behind now" in result.text


def test_seed_000_filtering_base_manager_is_named() -> None:
    hidden = Doctor.everyone.create(name="Dr. Haddad", locale="ar")
    set_next("clinic_doctor_id_seq", hidden.pk + 1)
    hidden.name = "Dr. Yasmin Haddad"
    token = current_locale.set("en")  # the base manager sees only "en": save() INSERTs the row again
    try:
        v = violation_of(hidden.save)
    finally:
        current_locale.reset(token)
    assert v.primary_key and v.model == "clinic.Doctor"

    result = explain.explain(group_of(v))

    assert result.code == explain.EXPLICIT_IDS
    assert result.fix is None
    assert "clinic.Doctor's base manager 'objects' filters rows" in result.text
    assert "Meta.base_manager_name" in result.text


# --- unique: other rules ------------------------------------------------------------------------


def test_existing_duplicates_link_to_the_rules_groups() -> None:
    """Migration 0002 dropped vat_number's constraint; adding it back fails on the duplicates."""
    Company.objects.create(name="Acme", vat_number="DE123")
    Company.objects.create(name="ACME GmbH", vat_number="DE123")
    v = violation_of(
        lambda: run("CREATE UNIQUE INDEX crm_company_vat_number_key ON crm_company (vat_number)")
    )
    assert v.kind == violations.UNIQUE and v.model == "crm.Company" and v.fields == ("vat_number",)

    result = explain.explain(group_of(v))

    assert result.code == explain.EXISTING_DUPLICATES
    assert result.cause == "Existing duplicates"
    assert result.fix is not None and result.fix.kind == explain.DUPLICATES
    assert result.fix.rule_key == "default:crm.Company:unique:vat_number"
    assert "crm.Company has 1 group of rows sharing vat_number (2 rows)" in result.text


def test_seed_003_max_plus_one_tickets_race() -> None:
    """Numbers computed as MAX + 1 in Python: two requests read the same MAX."""
    set_next("ticket_sequence", 1000)  # the sequence itself is fine here
    Ticket.objects.create(number=41, subject="Printer jammed")
    v = violation_of(lambda: Ticket.objects.create(number=41, subject="Printer jammed again"))
    now = timezone.now()

    began = [now - timedelta(seconds=1)] * 2  # both requests ran at the same time
    result = explain.explain(group_of(v, samples=[now, now + timedelta(seconds=1)], started=began))

    assert result.code == explain.RACE
    assert "helpdesk.Ticket.number" in result.text
    assert "a database sequence" in result.suggestions


def test_seed_003_ticket_sequence_behind_offers_its_resync() -> None:
    """The demo's story: numbers 1..N were MAX + 1 in Python, so ``ticket_sequence`` never moved."""
    Ticket.objects.bulk_create(Ticket(number=n, subject=f"Printer {n}") for n in (1, 2, 3))
    set_next("ticket_sequence", 1)  # the failed insert takes 1: the sequence is still behind afterwards
    v = violation_of(lambda: Ticket.objects.create(subject="Printer jammed again"))

    result = explain.explain(group_of(v))

    assert result.code == explain.SEQUENCE_BEHIND
    assert result.fix is not None and result.fix.sequence_key == "default:helpdesk.Ticket:number"


# --- other kinds --------------------------------------------------------------------------------


def test_foreign_key_to_a_missing_parent() -> None:
    v = violation_of(lambda: Order.objects.create(product_id=987654, quantity=1))
    assert v.kind == violations.FOREIGN_KEY

    result = explain.explain(group_of(v))

    assert result.code == explain.MISSING_PARENT
    assert result.cause == "Parent deleted or never created"
    assert "shop.Order.product" in result.text and "shop.Product" in result.text
    assert "checked at COMMIT" in result.text


def test_deleting_a_referenced_parent() -> None:
    order = Order.objects.create(product_id=1, quantity=1)
    v = violation_of(lambda: run("DELETE FROM shop_product WHERE id = %s", [order.product_id]))

    result = explain.explain(group_of(v))

    assert result.code == explain.STILL_REFERENCED
    assert "shop.Product" in result.text and "shop_order" in result.text


def test_not_null_names_the_field() -> None:
    v = violation_of(lambda: run("INSERT INTO shop_product (name, price) VALUES (NULL, 1)"))

    result = explain.explain(group_of(v))

    assert result.code == explain.MISSING_VALUE
    assert result.cause == "Missing value"
    assert "shop.Product.name" in result.text


def test_check_constraint_shows_its_definition() -> None:
    run(
        "CREATE TABLE explain_stock (id serial PRIMARY KEY, quantity int CONSTRAINT quantity_positive CHECK (quantity > 0))"
    )
    v = violation_of(lambda: run("INSERT INTO explain_stock (quantity) VALUES (-1)"))

    result = explain.explain(group_of(v))

    assert result.code == explain.CHECK_FAILED
    assert result.cause == "Check failed"
    assert "quantity_positive" in result.text and "CHECK ((quantity > 0))" in result.text
    assert "explain_stock" in result.text


def test_exclusion_constraint_reads_as_overlapping_rows() -> None:
    run(
        "CREATE TABLE explain_booking (id serial PRIMARY KEY, during int4range, "
        "CONSTRAINT no_double_booking EXCLUDE USING gist (during WITH &&))"
    )
    run("INSERT INTO explain_booking (during) VALUES ('[1,5)')")
    v = violation_of(lambda: run("INSERT INTO explain_booking (during) VALUES ('[3,8)')"))

    result = explain.explain(group_of(v))

    assert result.code == explain.OVERLAP
    assert result.cause == "Overlapping rows"
    assert "no_double_booking" in result.text and "EXCLUDE USING gist (during WITH &&)" in result.text


def test_unknown_kind_repeats_the_message() -> None:
    now = timezone.now()
    group = EventGroup.objects.create(
        fingerprint="x" * 40,
        database="default",
        kind=violations.UNKNOWN,
        message="something odd",
        count=1,
        first_seen=now,
        last_seen=now,
    )
    result = explain.explain(group)
    assert result.code == explain.UNKNOWN_CAUSE and result.cause == "Unknown"
    assert "something odd" in result.text and result.fix is None
