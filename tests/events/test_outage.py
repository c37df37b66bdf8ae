"""Issue 14, section 1: a sequence that runs out (DataErrors 2200H and 22003) is recorded and explained.

Real errors through the real middleware (the demo's "a sequence at its
maximum" page) and ``integrity.capture()``; the group page shows the
capacity row's fix: the SQL to widen the column and the sequence to bigint,
and the Django migration.
"""

from __future__ import annotations

import pytest
from django.db import DataError, connection

import integrity
from demo.helpdesk.models import Ticket
from integrity.models import EventGroup
from tests.helpers import client_for, text

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.usefixtures("restore_sequences"),
]

GROUP = "/admin/integrity/eventgroup/group/"


def test_a_sequence_at_its_maximum_is_recorded_and_explained_with_the_widening() -> None:
    response = client_for("anonymous", raise_request_exception=False).post("/demo/violations/sequence-max/")
    assert response.status_code == 500

    group = EventGroup.objects.get(sqlstate="2200H")
    assert group.kind == "sequence limit"
    assert group.sequence == "violations_coupon_id_seq"
    assert (
        group.model == "violations.Coupon" and group.columns == ["id"] and group.table == "violations_coupon"
    )
    assert "reached maximum value" in group.message

    page = client_for("superuser").get(GROUP, {"id": group.pk})
    assert page.status_code == 200
    shown = text(page)
    assert "Sequence at its maximum" in shown
    assert "public.violations_coupon_id_seq" in shown and "reached its maximum 2,147,483,647" in shown
    assert "at 100% of its range" in shown
    assert 'ALTER TABLE "public"."violations_coupon" ALTER COLUMN "id" TYPE bigint;' in shown
    assert 'ALTER SEQUENCE "public"."violations_coupon_id_seq" AS bigint NO MAXVALUE;' in shown
    assert "migrations.AlterField(" in shown and "models.BigAutoField(" in shown
    assert "?capacity=warning" in page.content.decode()


def test_a_second_occurrence_counts_in_the_same_group() -> None:
    client = client_for("anonymous", raise_request_exception=False)
    assert client.post("/demo/violations/sequence-max/").status_code == 500
    assert client.post("/demo/violations/sequence-max/").status_code == 500
    assert EventGroup.objects.get(sqlstate="2200H").count == 2


def test_integer_out_of_range_from_a_bigint_sequence_names_the_table_and_the_column() -> None:
    """ticket_sequence is bigint, helpdesk_ticket.number integer: past 2147483647 every insert fails."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval('ticket_sequence', 2147483647)")
    with pytest.raises(DataError), integrity.capture():
        Ticket.objects.create(subject="One ticket too many")

    group = EventGroup.objects.get(sqlstate="22003")
    assert group.kind == "out of range"
    assert group.table == "helpdesk_ticket" and group.model == "helpdesk.Ticket"

    shown = text(client_for("superuser").get(GROUP, {"id": group.pk}))
    assert "Column too small for its sequence" in shown
    assert "helpdesk.Ticket.number is integer, but sequence public.ticket_sequence (bigint)" in shown
    assert 'ALTER TABLE "public"."helpdesk_ticket" ALTER COLUMN "number" TYPE bigint;' in shown
    assert "models.BigIntegerField(" in shown and "name='number'" in shown


def test_other_data_errors_are_not_recorded() -> None:
    """Only a sequence's DataErrors: an invalid integer (22P02) quotes the value, and is no outage."""
    with pytest.raises(DataError), integrity.capture(), connection.cursor() as cursor:
        cursor.execute("SELECT 'secret'::integer")
    assert not EventGroup.objects.exists()


def test_the_events_command_lists_the_outage() -> None:
    from io import StringIO

    from django.core.management import call_command

    client_for("anonymous", raise_request_exception=False).post("/demo/violations/sequence-max/")
    out = StringIO()
    call_command("integrity", "events", "--kind", "sequence-limit", stdout=out)
    assert "sequence limit" in out.getvalue() and "Sequence at its maximum" in out.getvalue()
