"""Sequences on schemas real projects have: shared by tables, feeding text columns, odd names.

Every shape is built with plain SQL inside the test's transaction (rolled back
afterwards); sequence values are not transactional, so ``restore_sequences``
(from the sequence tests) puts them back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from demo.shop.models import Coupon
from integrity import sequences
from tests.keys.models import OddName
from tests.sequences.test_service import (  # noqa: F401 - restore_sequences is an autouse fixture
    COUPON_SEQ,
    info,
    next_of,
    restore_sequences,
    run,
    set_next,
)
from tests.test_command import run as command

pytestmark = pytest.mark.django_db(databases="__all__")

LIST = "/admin/integrity/sequence/"
RESYNC = "/admin/integrity/sequence/resync/"
LOWER = "/admin/integrity/sequence/lower/"
DASHBOARD = "/admin/integrity/"
ODD_SCHEMA = '"Odd ""Schema"""'  # the schema  Odd "Schema"
ODD_SEQ = f'{ODD_SCHEMA}."we""ird seq"'  # the sequence  we"ird seq  in it


@pytest.fixture
def superuser_client(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def shared() -> None:
    """shop.Coupon's sequence also feeds a table no model knows (a legacy copy), which holds id 500."""
    Coupon.objects.bulk_create(Coupon(id=i, code=f"c{i}") for i in (1, 2, 3))
    run(f"CREATE TABLE legacy_coupon (id bigint DEFAULT nextval('{COUPON_SEQ}') PRIMARY KEY)")
    run("INSERT INTO legacy_coupon (id) VALUES (500)")


# --- shared sequences ---------------------------------------------------------


def test_a_shared_sequence_is_behind_the_other_tables_max(shared: None) -> None:
    set_next(COUPON_SEQ, 4)  # just past Coupon's own MAX
    row = info("shop.Coupon")
    assert (row.max_value, row.status) == (500, "behind")
    assert row.shared_with == ["public.legacy_coupon.id"]


def test_lower_never_goes_below_the_other_tables_max(shared: None) -> None:
    set_next(COUPON_SEQ, 900)
    assert info("shop.Coupon").status == "ahead"
    result = sequences.resync("default", "shop.Coupon", "id", lower=True)
    assert result.value_after == 501
    assert next_of(COUPON_SEQ) == 501
    run("INSERT INTO legacy_coupon DEFAULT VALUES")  # the next insert of either table collides with nothing
    assert Coupon.objects.create(code="new").pk == 502


def test_resync_moves_past_every_table_it_feeds(shared: None) -> None:
    set_next(COUPON_SEQ, 4)
    assert sequences.resync("default", "shop.Coupon", "id").value_after == 501


def test_the_page_says_the_sequence_is_shared(shared: None, superuser_client: Client) -> None:
    set_next(COUPON_SEQ, 4)
    response = superuser_client.get(LIST, {"status": "behind"})
    assert response.status_code == 200
    assert "shared by public.legacy_coupon.id" in response.content.decode()


def test_the_command_says_the_sequence_is_shared(shared: None) -> None:
    set_next(COUPON_SEQ, 4)
    code, out, _err = command("--model", "shop.Coupon")
    assert code == 1
    assert (
        f"default:shop.Coupon.id: public.{COUPON_SEQ.split('.')[1]} is shared by public.legacy_coupon.id"
        in out
    )


def test_a_sequence_shared_by_two_models_names_the_model(superuser_client: Client) -> None:
    run(f'ALTER TABLE "keys Odd Table" ALTER COLUMN "Odd Col" SET DEFAULT nextval(\'{COUPON_SEQ}\')')
    OddName.objects.create(counter=700)
    set_next(COUPON_SEQ, 10)
    row = info("shop.Coupon")
    assert row.shared_with == ["keys.OddName.Odd Col"]
    assert (row.max_value, row.status) == (700, "behind")


# --- columns whose values can't be compared -----------------------------------


@pytest.fixture
def invoice_codes() -> None:
    """shop.Coupon.code is text, filled by  'INV-' || nextval(...)."""
    run("CREATE SEQUENCE coupon_code_seq")
    run("ALTER TABLE shop_coupon ALTER COLUMN code SET DEFAULT 'INV-' || nextval('coupon_code_seq')")
    Coupon.objects.bulk_create(Coupon(id=i, code=f"INV-{i}") for i in (1, 2))


def test_a_text_column_fed_by_an_expression_is_not_comparable(invoice_codes: None) -> None:
    row = info("shop.Coupon", "code")
    assert row.status == "not comparable"
    assert "character varying" in row.reason
    assert info("shop.Coupon", "id").status in {"ok", "behind", "ahead"}  # the rest still works


def test_an_integer_column_fed_by_an_expression_is_not_comparable(superuser_client: Client) -> None:
    run("CREATE SEQUENCE odd_counter_seq")
    run('ALTER TABLE "keys Odd Table" ALTER COLUMN "Odd Col" SET DEFAULT nextval(\'odd_counter_seq\') * 10')
    row = info("keys.OddName", "Odd Col")
    assert row.status == "not comparable"
    assert "* 10" in row.reason
    with pytest.raises(sequences.ResyncRefused, match="not the sequence's nextval"):
        sequences.resync("default", "keys.OddName", "Odd Col")


def test_pages_and_command_work_with_a_not_comparable_column(
    invoice_codes: None, superuser_client: Client
) -> None:
    page = superuser_client.get(LIST)
    assert page.status_code == 200
    assert "not comparable" in page.content.decode()
    assert superuser_client.get(DASHBOARD).status_code == 200
    code, out, _err = command("--json", "--model", "shop.Coupon")
    [row] = [r for r in json.loads(out) if r["column"] == "code"]
    assert row["status"] == "not comparable" and row["reason"]
    code, out, _err = command("--model", "shop.Coupon")
    assert "not comparable" in out


def test_resync_of_a_not_comparable_column_is_refused(invoice_codes: None, superuser_client: Client) -> None:
    response = superuser_client.post(RESYNC, {"key": "default:shop.Coupon:code"})
    assert response.status_code == 409
    assert "not an integer" in response.content.decode()


def test_lowering_a_sequence_that_also_feeds_an_expression_is_refused(shared: None) -> None:
    run(f"ALTER TABLE shop_coupon ALTER COLUMN code SET DEFAULT 'INV-' || nextval('{COUPON_SEQ}')")
    set_next(COUPON_SEQ, 900)
    with pytest.raises(sequences.ResyncRefused, match="can't be compared"):
        sequences.resync("default", "shop.Coupon", "id", lower=True)
    assert next_of(COUPON_SEQ) == 900


# --- names that need quoting ----------------------------------------------------


@pytest.fixture
def odd_names() -> None:
    """keys.OddName (table "keys Odd Table", id sequence "keys Odd Table_id_seq"): its counter is
    fed by the sequence  we"ird seq  of the schema  Odd "Schema"."""
    run(f"CREATE SCHEMA {ODD_SCHEMA}")
    run(f"CREATE SEQUENCE {ODD_SEQ}")
    run(f'ALTER TABLE "keys Odd Table" ALTER COLUMN "Odd Col" SET DEFAULT nextval(\'{ODD_SEQ}\')')
    run('INSERT INTO "keys Odd Table" (id, "Odd Col") VALUES (40, 70)')


def test_odd_names_are_listed(odd_names: None, superuser_client: Client) -> None:
    assert info("keys.OddName", "id").status == "behind"
    assert info("keys.OddName", "Odd Col").status == "behind"
    assert info("keys.OddName", "Odd Col").sequence == 'Odd "Schema".we"ird seq'
    response = superuser_client.get(LIST, {"app": "keys"})
    assert response.status_code == 200


def test_resync_of_odd_names_through_the_page(odd_names: None, superuser_client: Client) -> None:
    for column, expected in (("id", 41), ("Odd Col", 71)):
        response = superuser_client.post(RESYNC, {"key": f"default:keys.OddName:{column}"})
        assert response.status_code == 302, response.content
        assert info("keys.OddName", column).next_value == expected
    assert next_of(ODD_SEQ) == 71


def test_fix_of_odd_names_from_the_command(odd_names: None) -> None:
    code, out, err = command("--fix", "--model", "keys.OddName")
    assert code == 0
    assert "could not fix" not in err
    assert "fixed default:keys.OddName.Odd Col" in out
    assert info("keys.OddName", "id").next_value == 41
    assert info("keys.OddName", "Odd Col").next_value == 71


def test_lower_of_odd_names(odd_names: None, superuser_client: Client) -> None:
    run("SELECT setval(%s::regclass, 500, false)", [ODD_SEQ])
    assert superuser_client.get(LOWER, {"key": "default:keys.OddName:Odd Col"}).status_code == 200
    response = superuser_client.post(LOWER, {"key": "default:keys.OddName:Odd Col"})
    assert response.status_code == 302
    assert next_of(ODD_SEQ) == 71
