"""``manage.py integrity sequences``: output, exit status, --fix, --model, --database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from demo.metrics.models import Entry
from demo.shop.models import Coupon, Order, Product
from integrity import sequences
from integrity.models import SequenceResync

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED_KEYS = {
    "database",
    "model",
    "table",
    "column",
    "sequence",
    "next_value",
    "max_value",
    "status",
    "capacity",
    "type_mismatch",
}

pytestmark = pytest.mark.django_db(databases="__all__")


def run(*args: str) -> tuple[int, str, str]:
    """Run the command as a user would; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    try:
        call_command("integrity", "sequences", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def run_json(*args: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, _ = run("--json", *args)
    return code, json.loads(out)


def row(payload: list[dict[str, Any]], model: str, column: str = "id", database: str = "default") -> dict:
    [found] = [r for r in payload if (r["database"], r["model"], r["column"]) == (database, model, column)]
    return found


def current(model: type, database: str = "default") -> sequences.SequenceInfo:
    [report] = sequences.collect([database], [model])
    [info] = [i for i in report.sequences if i.column == "id"]
    return info


@pytest.fixture
def shop() -> None:
    """shop.Product behind (ids 1..5 written explicitly), shop.Coupon ahead (a gap), shop.Order ok.

    TRUNCATE ... RESTART IDENTITY is transactional, so the sequences go back
    to what they were when the test's transaction is rolled back.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE shop_order, shop_product_tags, shop_product, shop_coupon RESTART IDENTITY CASCADE"
        )
    Product.objects.bulk_create(Product(id=i, name=f"product {i}") for i in range(1, 6))
    for code in ("A", "B", "C"):
        Coupon.objects.create(code=code)
    Coupon.objects.filter(code="C").delete()
    Order.objects.create(product_id=1)
    Order.objects.create(product_id=2)


def test_json_lists_every_sequence_with_the_documented_keys(shop):
    code, payload = run_json()
    assert code == 1
    assert isinstance(payload, list) and payload
    for item in payload:
        assert DOCUMENTED_KEYS <= item.keys()
        assert isinstance(item["capacity"], float) and 0.0 <= item["capacity"] <= 1.0
        assert isinstance(item["type_mismatch"], bool)
    assert {item["database"] for item in payload} == {"default", "other"}
    product = row(payload, "shop.Product")
    assert product["table"] == "public.shop_product"
    assert product["sequence"] == "public.shop_product_id_seq"
    assert (product["next_value"], product["max_value"], product["status"]) == (1, 5, "behind")
    assert product["type_mismatch"] is False
    coupon = row(payload, "shop.Coupon")
    assert (coupon["next_value"], coupon["max_value"], coupon["status"]) == (4, 2, "ahead")
    order = row(payload, "shop.Order")
    assert (order["next_value"], order["max_value"], order["status"]) == (3, 2, "ok")
    ticket_number = row(payload, "helpdesk.Ticket", column="number", database="other")
    assert ticket_number["sequence"] == "public.ticket_sequence"
    assert ticket_number["type_mismatch"] is True


def test_table_output_has_a_header_a_rule_and_aligned_columns(shop):
    code, out, err = run()
    assert code == 1
    lines = out.splitlines()
    headers = ["DATABASE", "MODEL", "COLUMN", "SEQUENCE", "NEXT", "MAX", "STATUS", "CAPACITY"]
    assert lines[0].split() == headers
    assert set(lines[1].replace(" ", "")) == {"-"}
    starts = [lines[0].index(h) for h in headers]
    [product] = [line for line in lines if " shop.Product " in line]
    cells = ["default", "shop.Product", "id", "public.shop_product_id_seq", "1", "5", "behind", "0.0%"]
    for start, cell in zip(starts, cells, strict=True):
        assert product[start:].split()[0] == cell, (product, start, cell)
    body = lines[2:-1]
    assert len(body) == len(run_json()[1])
    assert lines[-1] == f"{len(body)} sequences, 1 behind, 0 fixed."
    assert "legacy: sequence check not available for sqlite yet." in err


def test_problems_come_first(shop):
    _, payload = run_json("--database", "default")
    assert payload[0]["status"] == "behind"
    assert [r["model"] for r in payload if r["status"] == "behind"] == ["shop.Product"]


def test_exit_status_0_when_nothing_is_behind(shop):
    code, out, _ = run("--model", "shop.Order", "shop.Coupon")
    assert code == 0
    assert out.splitlines()[-1] == "2 sequences, 0 behind, 0 fixed."


def test_fix_moves_behind_sequences_forward_and_leaves_ahead_ones(shop):
    code, out, _ = run("--fix")
    assert code == 0
    assert "fixed default:shop.Product.id (public.shop_product_id_seq): next value 1 -> 6" in out.splitlines()
    assert ", 0 behind, 1 fixed." in out.splitlines()[-1]
    product = current(Product)
    assert (product.status, product.next_value) == ("ok", 6)
    coupon = current(Coupon)
    assert (coupon.status, coupon.next_value) == ("ahead", 4)
    assert all(i.status != "behind" for r in sequences.collect() for i in r.sequences)
    # What the user gets: the next insert no longer collides.
    assert Product.objects.create(name="new").pk == 6
    record = SequenceResync.objects.get(model="shop.Product")
    assert (record.database, record.value_before, record.value_after, record.user_id) == (
        "default",
        1,
        6,
        None,
    )


def test_fix_with_json_prints_the_state_after_the_fix(shop):
    code, payload = run_json("--fix", "--model", "shop.Product", "shop.Coupon")
    assert code == 0
    assert (row(payload, "shop.Product")["status"], row(payload, "shop.Product")["next_value"]) == ("ok", 6)
    assert (row(payload, "shop.Coupon")["status"], row(payload, "shop.Coupon")["next_value"]) == ("ahead", 4)


def test_fix_when_nothing_is_behind_changes_nothing(shop):
    code, out, _ = run("--fix", "--model", "shop.Coupon")
    assert code == 0
    assert out.splitlines()[-1] == "1 sequences, 0 behind, 0 fixed."
    assert current(Coupon).next_value == 4
    assert not SequenceResync.objects.exists()


def test_model_limits_the_output(shop):
    code, payload = run_json("--model", "shop.Product")
    assert code == 1
    assert [(r["database"], r["model"], r["column"]) for r in payload] == [("default", "shop.Product", "id")]
    code, payload = run_json("--model", "shop.Coupon", "--model", "shop.Order")
    assert code == 0
    assert sorted(r["model"] for r in payload) == ["shop.Coupon", "shop.Order"]


def test_model_accepts_m2m_tables_and_any_case(shop):
    _, payload = run_json("--model", "shop.Product_tags", "SHOP.coupon")
    assert sorted(r["model"] for r in payload) == ["shop.Coupon", "shop.Product_tags"]


def test_model_living_on_two_databases_is_shown_for_both(shop):
    _, payload = run_json("--model", "helpdesk.Ticket")
    assert sorted((r["database"], r["column"]) for r in payload) == [
        ("default", "id"),
        ("default", "number"),
        ("other", "id"),
        ("other", "number"),
    ]


def test_database_limits_the_output(shop):
    code, payload = run_json("--database", "default")
    assert code == 1
    assert {r["database"] for r in payload} == {"default"}
    assert row(payload, "shop.Product")["status"] == "behind"
    code, payload = run_json("--database", "other")
    assert code == 0
    assert {r["database"] for r in payload} == {"other"}
    assert not [r for r in payload if r["model"].startswith("shop.")]


def test_several_databases_after_one_flag_or_repeated(shop):
    _, once = run_json("--database", "default", "other")
    _, twice = run_json("--database", "default", "--database", "other")
    assert {r["database"] for r in once} == {r["database"] for r in twice} == {"default", "other"}
    assert len(once) == len(twice)


def test_a_database_without_sequence_support_is_reported_not_an_error(shop):
    code, out, err = run("--database", "legacy")
    assert code == 0
    assert out.splitlines()[-1] == "0 sequences, 0 behind, 0 fixed."
    assert err.strip() == "legacy: sequence check not available for sqlite yet."


def test_fix_reports_a_busy_table_and_keeps_going(shop):
    """A writer holds the table: --fix says so, fixes the rest, and exits 1."""
    Entry.objects.create(id=10**6, note="restored")
    assert current(Entry).status == "behind"
    with connection.cursor() as cursor:
        # Should the lock timeout not apply, fail (QueryCanceled) instead of waiting forever.
        cursor.execute("SET LOCAL statement_timeout = '20s'")
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute("LOCK TABLE entry IN ROW EXCLUSIVE MODE")  # what an INSERT holds
        with override_settings(INTEGRITY_LOCK_TIMEOUT_MS=100):
            code, out, err = run("--fix", "--model", "metrics.Entry", "shop.Product")
    finally:
        other.rollback()
        other.close()
    assert code == 1
    assert (
        'could not fix default:metrics.Entry.id (public.entry_id_seq): Table "public"."entry" is busy' in err
    )
    assert "fixed default:shop.Product.id" in out
    assert out.splitlines()[-1] == "2 sequences, 1 behind, 1 fixed."
    assert current(Entry).status == "behind"
    assert current(Product).status == "ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope.Nope"], "Unknown model(s): nope.Nope (use app_label.ModelName)."),
        (["--model", "shop.Product", "shop.Nope"], "Unknown model(s): shop.Nope"),
        (["--model", "Product"], "Unknown model(s): Product"),
        (["--database", "nope"], "Unknown database alias(es): nope; known: default, other, legacy."),
        (["--database", "default", "--database", "nope"], "Unknown database alias(es): nope;"),
    ],
)
def test_bad_arguments_are_exit_status_2_and_change_nothing(shop, args, message):
    with pytest.raises(CommandError) as excinfo:
        call_command("integrity", "sequences", "--fix", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert excinfo.value.returncode == 2
    assert message in str(excinfo.value)
    assert (current(Product).status, current(Product).next_value) == ("behind", 1)
    assert not SequenceResync.objects.exists()


def test_a_sub_command_is_required():
    with pytest.raises(CommandError, match="subcommand|required"):
        call_command("integrity", stdout=io.StringIO())


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py ...`` in a subprocess; only for arguments that touch no database.

    A subprocess would use the real (non-test) database, so nothing that reads
    or writes data is run this way.
    """
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope.Nope"], "Unknown model(s): nope.Nope (use app_label.ModelName)."),
        (["--fix", "--database", "nope"], "Unknown database alias(es): nope; known: default, other, legacy."),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_with_status_2_from_the_shell(args, message):
    result = manage("integrity", "sequences", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
