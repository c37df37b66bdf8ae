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
from integrity.duplicates.rules import rules_for
from integrity.models import SequenceResync
from tests.helpers import sequences_command as run

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
    body = lines[2 : 2 + len(run_json()[1])]
    assert all(line.split()[0] in ("default", "other") for line in body)
    # After the table: the fix of each type mismatch or capacity problem, then the summary.
    assert all(not line.startswith(("default ", "other ")) for line in lines[2 + len(body) : -1])
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
    assert out.splitlines()[-1] == "1 sequence, 0 behind, 0 fixed."
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


# --- integrity duplicates ---------------------------------------------------------------

EMAIL_CI = "default:crm.Customer:crm_customer_email_ci_uniq"
NAME_CI = "default:crm.Customer:configured:customer_name_ci"
VAT = "default:crm.Company:unique:vat_number"
COMPANY_NAME = "default:crm.Company:unique:name"
MEMBERSHIP = "default:crm.Membership:crm_membership_active_code_uniq"
DEVICE = "default:crm.Device:crm_device_vendor_serial_uniq"
LEGACY = "default:crm.LegacyContact:unique:email"
DRIFT = "Drift: the migrations say it exists, the database has no such index."
LOCKED = "Could not compare: another transaction holds a lock on the table (a migration?). Try again."
DUPLICATE_KEYS = {
    "database",
    "model",
    "key",
    "description",
    "fields",
    "expression",
    "condition",
    "nulls_distinct",
    "source",
    "enforcement",
    "reason",
    "index",
    "scanned",
    "groups",
    "rows",
    "extra_rows",
    "timed_out",
    "error",
    "sample",
}


def dup(*args: str, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    try:
        call_command("integrity", "duplicates", *args, stdout=out, stderr=err, **options)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def dup_json(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Exit status and the JSON list keyed by rule key (the order is checked on its own)."""
    code, out, _ = dup("--json", *args)
    return code, {item["key"]: item for item in json.loads(out)}


@pytest.fixture
def crm_duplicates() -> dict[str, list[int]]:
    """Emails differing by case (the Lower(email) index dropped: drift) and a VAT number twice."""
    from demo.crm.models import Company, Customer

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX crm_customer_email_ci_uniq")
    emails = ["ann@x", "ANN@x", "Ann@x", "bob@x", "BOB@x", "cy@x"]
    customers = [Customer.objects.create(email=e, name=f"name {i}").pk for i, e in enumerate(emails)]
    companies = [Company.objects.create(name=n, vat_number="DE1").pk for n in ("A", "B")]
    return {"ann": customers[:3], "bob": customers[3:5], "vat": companies}


def test_duplicates_json_lists_every_rule_with_its_enforcement_and_groups(crm_duplicates):
    code, payload = dup_json()
    assert code == 1
    assert set(payload) == {rule.key for rule in rules_for()}
    for item in payload.values():
        assert DUPLICATE_KEYS <= item.keys()
    email = payload[EMAIL_CI]
    assert (email["database"], email["model"], email["fields"], email["expression"]) == (
        "default",
        "crm.Customer",
        [],
        "Lower(email)",
    )
    assert (email["enforcement"], email["reason"], email["index"]) == ("missing", DRIFT, None)
    assert (email["groups"], email["rows"], email["extra_rows"], email["timed_out"]) == (2, 5, 3, False)
    assert email["sample"] == [
        {"key": ["ann@x"], "size": 3, "pks": crm_duplicates["ann"]},
        {"key": ["bob@x"], "size": 2, "pks": crm_duplicates["bob"]},
    ]
    vat = payload[VAT]
    assert (vat["fields"], vat["expression"], vat["condition"], vat["groups"], vat["rows"]) == (
        ["vat_number"],
        None,
        None,
        1,
        2,
    )
    assert vat["sample"] == [{"key": ["DE1"], "size": 2, "pks": crm_duplicates["vat"]}]
    assert (payload[LEGACY]["enforcement"], payload[LEGACY]["groups"], payload[LEGACY]["sample"]) == (
        "missing",
        0,
        [],
    )
    assert payload[NAME_CI]["enforcement"] == "configured" and payload[NAME_CI]["groups"] == 0
    membership = payload[MEMBERSHIP]
    assert membership["description"] == "code WHERE active=True"
    assert (membership["condition"], membership["enforcement"], membership["index"]) == (
        "active=True",
        "enforced",
        "crm_membership_active_code_uniq",
    )
    assert payload[DEVICE]["nulls_distinct"] is False
    enforced = [item for item in payload.values() if item["enforcement"] == "enforced"]
    assert enforced and all(
        (i["scanned"], i["groups"], i["rows"], i["sample"]) == (False, None, None, []) for i in enforced
    )
    assert {item["database"] for item in payload.values()} == {"default", "other"}


def test_duplicates_json_turns_decimals_into_strings():
    Product.objects.bulk_create(Product(id=100 + i, name=f"p{i}", price="9.50") for i in range(2))
    rule = {"model": "shop.Product", "fields": ["price"], "name": "price"}
    with override_settings(INTEGRITY_DUPLICATE_RULES=[rule]):
        code, payload = dup_json("--model", "shop.Product")
    assert code == 1
    assert payload["default:shop.Product:configured:price"]["sample"] == [
        {"key": ["9.50"], "size": 2, "pks": [100, 101]}
    ]


def test_duplicates_problems_come_first(crm_duplicates):
    _, out, _ = dup("--json", "--database", "default")
    order = [(item["key"], item["enforcement"], item["groups"]) for item in json.loads(out)]
    assert [key for key, _, _ in order[:2]] == [VAT, EMAIL_CI]  # duplicates found
    states = [state for _, state, groups in order[2:]]
    assert states == sorted(states, key=["missing", "invalid", "configured", "enforced"].index)


def test_duplicates_table_output(crm_duplicates):
    code, out, err = dup()
    assert code == 1
    lines = out.splitlines()
    headers = ["DATABASE", "MODEL", "RULE", "ENFORCEMENT", "GROUPS", "ROWS"]
    assert lines[0].split() == headers
    starts = [lines[0].index(h) for h in headers]

    def cells(line: str) -> list[str]:
        ends = [*starts[1:], None]
        return [line[s:e].strip() for s, e in zip(starts, ends, strict=True)]

    body = {tuple(cells(line)[:3]): cells(line)[3:] for line in lines[2 : lines.index("")]}
    assert body[("default", "crm.Customer", "Lower(email)")] == ["missing", "2", "5"]
    assert body[("default", "crm.Company", "vat_number")] == ["missing", "1", "2"]
    assert body[("default", "crm.Membership", "code WHERE active=True")] == ["enforced", "-", "-"]
    assert body[("default", "crm.Device", "vendor, serial NULLS NOT DISTINCT")] == ["enforced", "-", "-"]
    assert body[("default", "crm.Customer", "Lower(Trim(name))")] == ["configured", "0", "0"]
    assert body[("default", "crm.LegacyContact", "email")] == ["missing", "0", "0"]
    ann, bob = (", ".join(map(str, crm_duplicates[k])) for k in ("ann", "bob"))
    details = out[out.index("crm.Customer: Lower(email) [missing]") :].splitlines()[:4]
    assert details == [
        "crm.Customer: Lower(email) [missing]",
        f"  {DRIFT}",
        f"  3 rows: Lower(email)='ann@x' (pks {ann})",
        f"  2 rows: Lower(email)='bob@x' (pks {bob})",
    ]
    assert "crm.LegacyContact: email [missing]\n  The model has managed = False" in out
    enforced = sum(1 for row in body.values() if row[0] == "enforced")
    assert (
        lines[-1]
        == f"{len(body)} rules, {enforced} enforced, 2 with duplicates (3 groups, 7 rows), 0 timed out."
    )
    assert err == "legacy: duplicate check not available for sqlite yet.\n"


def test_duplicates_sample_is_capped_and_says_how_many_more():
    """7 groups of 12: the first 5 groups, each with its first 10 primary keys (INTEGRITY_GROUP_SAMPLE_SIZE)."""
    from demo.crm.models import Customer

    made = Customer.objects.bulk_create(Customer(email=f"{i}@x", name=f"n{i % 7}") for i in range(84))
    pks = {f"n{g}": [c.pk for c in made if c.name == f"n{g}"] for g in range(7)}
    code, out, _ = dup("--model", "crm.Customer")
    assert code == 1
    details = out[out.index("crm.Customer: Lower(Trim(name)) [configured]") :].splitlines()
    first = ", ".join(str(pk) for pk in pks["n0"][:10])
    assert details[1:7] == [
        f"  12 rows: Lower(Trim(name))='n0' (pks {first}, …)",
        *[
            f"  12 rows: Lower(Trim(name))='n{g}' (pks {', '.join(map(str, pks[f'n{g}'][:10]))}, …)"
            for g in range(1, 5)
        ],
        "  … and 2 more groups",
    ]
    _, payload = dup_json("--model", "crm.Customer")
    assert payload[NAME_CI]["sample"] == [
        {"key": [f"n{g}"], "size": 12, "pks": pks[f"n{g}"][:10]} for g in range(5)
    ]
    assert (payload[NAME_CI]["groups"], payload[NAME_CI]["rows"]) == (7, 84)


def test_duplicates_exit_status_0_when_no_rule_that_is_not_enforced_has_duplicates():
    code, out, err = dup()
    assert code == 0
    _, payload = dup_json()
    enforced = sum(item["enforcement"] == "enforced" for item in payload.values())
    assert out.splitlines()[-1] == (
        f"{len(payload)} rules, {enforced} enforced, 0 with duplicates (0 groups, 0 rows), 0 timed out."
    )
    assert (
        f"crm.Company: vat_number [missing]\n  {DRIFT}" in out
    )  # not enforced, but clean: listed, no failure


def test_duplicates_verify_scans_enforced_rules_too():
    """A deferrable constraint lets duplicates in until COMMIT: only --verify looks."""
    from demo.crm.models import Company

    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE crm_company ADD CONSTRAINT vat_later UNIQUE (vat_number) DEFERRABLE INITIALLY DEFERRED"
        )
    companies = [Company.objects.create(name=n, vat_number="DE1").pk for n in ("A", "B")]
    code, payload = dup_json("--model", "crm.Company")
    assert code == 0
    assert {k: (v["enforcement"], v["index"], v["groups"]) for k, v in payload.items()} == {
        COMPANY_NAME: ("enforced", "crm_company_name_key", None),
        VAT: ("enforced", "vat_later", None),
    }
    code, payload = dup_json("--model", "crm.Company", "--verify")
    assert code == 1
    assert (payload[COMPANY_NAME]["groups"], payload[VAT]["groups"]) == (0, 1)
    assert payload[VAT]["sample"] == [{"key": ["DE1"], "size": 2, "pks": companies}]
    Company.objects.all().delete()  # or the deferred check fails when the test ends


def test_duplicates_model_and_database_limit_the_rules():
    _, payload = dup_json("--model", "crm.Customer")
    assert set(payload) == {EMAIL_CI, NAME_CI}
    _, payload = dup_json("--model", "helpdesk.Ticket", "SHOP.tag")
    assert set(payload) == {
        "default:helpdesk.Ticket:unique:number",
        "other:helpdesk.Ticket:unique:number",
        "default:shop.Tag:unique:name",
    }
    _, payload = dup_json("--database", "other")
    assert {item["database"] for item in payload.values()} == {"other"}
    assert not [key for key in payload if ":crm." in key]
    _, both = dup_json("--database", "default", "--database", "other")
    assert len(both) == len(rules_for())


def test_duplicates_on_a_database_that_is_not_postgresql():
    code, out, err = dup("--database", "legacy")
    assert code == 0
    assert out.splitlines()[-1] == "0 rules, 0 enforced, 0 with duplicates (0 groups, 0 rows), 0 timed out."
    assert err == "legacy: duplicate check not available for sqlite yet.\n"


@pytest.mark.parametrize(
    ("args", "settings_rules", "message"),
    [
        (["--model", "nope.Nope"], None, "Unknown model(s): nope.Nope (use app_label.ModelName)."),
        (["--database", "nope"], None, "Unknown database alias(es): nope; known: default, other, legacy."),
        (["--timeout", "-1"], None, "--timeout must be 0 (no limit) or a number of milliseconds."),
        (
            [],
            [{"model": "crm.Customer", "fields": ["nmae"]}],
            "INTEGRITY_DUPLICATE_RULES: crm.Customer has no field",
        ),
    ],
)
def test_duplicates_bad_arguments_are_exit_status_2(args, settings_rules, message):
    rules = settings_rules if settings_rules is not None else []
    with override_settings(INTEGRITY_DUPLICATE_RULES=rules), pytest.raises(CommandError) as excinfo:
        call_command("integrity", "duplicates", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert excinfo.value.returncode == 2
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope.Nope"], "Unknown model(s): nope.Nope (use app_label.ModelName)."),
        (["--verify", "--database", "nope"], "Unknown database alias(es): nope;"),
        (["--timeout", "soon"], "argument --timeout: invalid int value: 'soon'"),
    ],
)
def test_duplicates_bad_arguments_exit_with_status_2_from_the_shell(args, message):
    result = manage("integrity", "duplicates", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.fixture
def company_locked() -> Any:
    """Another connection holds crm_company in ACCESS EXCLUSIVE mode (a migration rewriting it)."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute("SET lock_timeout = '10s'")
        other.execute("LOCK TABLE crm_company IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        other.rollback()
        other.close()


def test_duplicates_a_scan_that_times_out_is_reported_and_the_others_go_on(company_locked):
    from demo.crm.models import Customer

    Customer.objects.bulk_create(Customer(email=f"{n}@x", name=n) for n in ("Ann", "ann "))
    with override_settings(INTEGRITY_LOCK_TIMEOUT_MS=100):
        code, out, err = dup("--model", "crm.Company", "crm.Customer", "--timeout", "200")
        _, payload = dup_json("--model", "crm.Company", "crm.Customer", "--timeout", "200")
    assert code == 1
    for key, named in ((COMPANY_NAME, "crm.Company: name"), (VAT, "crm.Company: vat_number")):
        item = payload[key]
        assert (item["enforcement"], item["reason"], item["timed_out"], item["groups"]) == (
            "missing",
            LOCKED,
            True,
            None,
        )
        assert f"{named}: scan timed out after 200 ms." in err
    assert payload[NAME_CI]["groups"] == 1  # the other table was scanned
    [vat_row] = [line for line in out.splitlines() if line.startswith("default ") and " vat_number " in line]
    assert vat_row.split() == ["default", "crm.Company", "vat_number", "missing", "timed", "out", "-"]
    assert f"crm.Company: vat_number [missing]\n  {LOCKED}\n  timed out after 200 ms" in out
    assert out.splitlines()[-1].endswith(", 2 timed out.")


def test_duplicates_a_scan_that_fails_is_reported_and_the_others_go_on():
    """A column the database does not have (drift): that rule fails, the rest is checked."""
    from demo.crm.models import Customer

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX crm_customer_email_ci_uniq")
        cursor.execute("ALTER TABLE crm_customer DROP COLUMN name")
        cursor.execute("INSERT INTO crm_customer (email) VALUES ('a@x'), ('A@x')")
    code, out, err = dup("--model", "crm.Customer")
    assert code == 1
    assert "crm.Customer: Lower(Trim(name)): scan failed: column crm_customer.name does not exist" in err
    assert (
        "crm.Customer: Lower(Trim(name)) [configured]\n  scan failed: column crm_customer.name does not exist"
        in out
    )
    assert (
        out.splitlines()[-1]
        == "2 rules, 0 enforced, 1 with duplicates (1 group, 2 rows), 0 timed out, 1 failed."
    )
    assert Customer.objects.filter(email__iexact="a@x").count() == 2  # the connection goes on


def test_duplicates_progress_on_stderr_with_verbosity_2_and_stdout_stays_json(crm_duplicates):
    code, out, err = dup("--json", "--database", "default", "-v", "2")
    assert code == 1
    payload = json.loads(out)
    scanned = [item for item in payload if item["scanned"]]
    progress = [line for line in err.splitlines() if line.startswith("scanning ")]
    assert len(progress) == len(scanned) == 5
    assert progress[0].startswith("scanning 1/5: default ")
    assert "scanning 5/5: default crm.Customer Lower(Trim(name))…" in progress
    assert any(line.endswith(": default crm.Customer Lower(email)…") for line in progress)
    _, _, quiet = dup("--json", "--database", "default")  # stderr is no terminal: no progress
    assert "scanning" not in quiet
