"""The demo: ``demo.seed.load()`` reproduces each story, and ``manage.py demo --no-serve`` prepares it."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, transaction

from demo import seed
from demo.clinic.models import Doctor, current_locale
from demo.helpdesk.models import Ticket
from demo.shop.models import Product
from integrity import sequences
from integrity.sequences import SequenceInfo

pytestmark = pytest.mark.django_db(databases="__all__")

BEHIND = [
    ("shop.Product", "id"),
    ("shop.Order", "id"),
    ("metrics.Entry", "id"),
    ("helpdesk.Ticket", "number"),
]


def default_sequences() -> dict[tuple[str, str], SequenceInfo]:
    [report] = sequences.collect(["default"])
    return {(i.model, i.column): i for i in report.sequences}


def run_integrity(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("integrity", "sequences", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def loaded() -> dict[tuple[str, str], SequenceInfo]:
    seed.load()
    return default_sequences()


@pytest.mark.parametrize(("model", "column"), BEHIND)
def test_stories_with_a_sequence_behind(loaded, model, column):
    info = loaded[(model, column)]
    assert info.status == "behind"
    assert info.next_value is not None and info.max_value is not None
    assert info.next_value <= info.max_value


def test_exactly_the_story_sequences_are_behind(loaded):
    assert sorted(k for k, i in loaded.items() if i.status == "behind") == sorted(BEHIND)


def test_seed_001_products_collide_on_the_next_insert(loaded):
    """What the user of the demo sees before a resync: duplicate key on insert."""
    assert (loaded[("shop.Product", "id")].next_value, loaded[("shop.Product", "id")].max_value) == (1, 8)
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        Product.objects.create(name="Speaker")


def test_import_left_orders_behind(loaded):
    info = loaded[("shop.Order", "id")]
    assert (info.next_value, info.max_value) == (1, 500)


def test_coupons_have_a_gap(loaded):
    info = loaded[("shop.Coupon", "id")]
    assert (info.status, info.next_value, info.max_value) == ("ahead", 6, 3)


def test_readings_are_close_to_int4_overflow(loaded):
    info = loaded[("metrics.Reading", "id")]
    assert info.status == "ok"
    assert info.column_type == "integer"
    assert info.capacity_level == "critical"
    assert info.capacity is not None and 0.90 <= info.capacity < 1.0


def test_ticket_numbers_are_behind_with_a_type_mismatch(loaded):
    info = loaded[("helpdesk.Ticket", "number")]
    assert info.sequence == "public.ticket_sequence"
    assert (info.column_type, info.sequence_type) == ("integer", "bigint")
    assert info.type_mismatch is True
    assert (info.next_value, info.max_value) == (1, 40)
    # The other sequences of the demo are consistent with their columns.
    assert [k for k, i in loaded.items() if i.type_mismatch] == [("helpdesk.Ticket", "number")]


def test_invoices_are_empty_and_start_at_1000(loaded):
    info = loaded[("metrics.Invoice", "id")]
    assert (info.status, info.next_value, info.max_value) == ("empty", 1000, None)


def test_two_tables_named_entry_never_mix(loaded):
    archived = loaded[("metrics.ArchivedEntry", "id")]
    entry = loaded[("metrics.Entry", "id")]
    assert (archived.table, archived.status, archived.max_value) == ("archive.entry", "ok", 3)
    assert (entry.table, entry.status, entry.max_value) == ("public.entry", "behind", 5)


def test_legacy_serial_table_is_ok(loaded):
    info = loaded[("metrics.LegacyCounter", "id")]
    assert (info.kind, info.status, info.max_value) == ("serial", "ok", 3)


def test_seed_000_doctors_are_hidden_by_the_base_manager(loaded):
    assert Doctor.everyone.count() == 3
    assert current_locale.get() == "en"
    assert sorted(d.name for d in Doctor.objects.all()) == ["Dr. Amal", "Dr. Chen"]
    hidden = Doctor.everyone.get(locale="fr")
    hidden.name = "Dr. Benoît B."
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        hidden.save()


def test_load_twice_gives_the_same_stories(loaded):
    seed.load()
    again = default_sequences()
    assert {k: (i.status, i.next_value, i.max_value) for k, i in again.items()} == {
        k: (i.status, i.next_value, i.max_value) for k, i in loaded.items()
    }
    assert Product.objects.count() == 8
    assert Ticket.objects.count() == 40


def test_the_command_finds_the_stories_and_fix_repairs_them(loaded):
    code, out = run_integrity("--json", "--database", "default")
    assert code == 1
    payload: list[dict[str, Any]] = json.loads(out)
    assert sorted((r["model"], r["column"]) for r in payload if r["status"] == "behind") == sorted(BEHIND)

    code, out = run_integrity("--fix")
    assert code == 0
    for model, column in BEHIND:
        assert f"fixed default:{model}.{column} " in out
    after = default_sequences()
    for key in BEHIND:
        info = after[key]
        assert info.status == "ok", key
        assert info.next_value == loaded[key].max_value + 1
    coupon = after[("shop.Coupon", "id")]
    assert (coupon.status, coupon.next_value) == ("ahead", 6)
    assert all(i.status != "behind" for r in sequences.collect() for i in r.sequences)
    assert run_integrity()[0] == 0
    # And the inserts of each story work again.
    assert Product.objects.create(name="Speaker").pk == 9
    # The column's DEFAULT nextval('ticket_sequence') numbers new tickets.
    ticket = Ticket.objects.create(subject="Scanner")
    ticket.refresh_from_db()
    assert ticket.number == 41


def test_demo_command_prepares_everything_twice():
    for _ in range(2):
        out = io.StringIO()
        call_command("demo", "--no-serve", stdout=out)
        text = out.getvalue()
        assert "Admin login:  username 'admin'  password 'admin'" in text
        assert "http://127.0.0.1:8000/admin/integrity/" in text
        assert Product.objects.count() == 8
        assert default_sequences()[("shop.Product", "id")].status == "behind"
    user = get_user_model().objects.get(username="admin")
    assert user.is_staff and user.is_superuser and user.check_password("admin")


def test_demo_command_prints_the_address_it_would_serve(client):
    out = io.StringIO()
    call_command("demo", "0.0.0.0:9001", "--no-serve", stdout=out)
    assert "http://0.0.0.0:9001/admin/integrity/" in out.getvalue()
    assert client.login(username="admin", password="admin")
    response = client.get("/admin/integrity/sequence/")
    assert response.status_code == 200
    # The page the command points to shows the seeded stories to the admin it created.
    for model, column in BEHIND:
        row = re.search(rf'<tr[^>]*id="seq-default-{model.replace(".", "-")}-{column}"[^>]*>', response.text)
        assert row and 'data-status="behind"' in row.group(0), model
