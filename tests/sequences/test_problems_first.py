"""Problems first: the sequences and rules pages list what needs action by default; capacity is a status with its fix."""

from __future__ import annotations

import html
import re

from django.db import connections

from demo.helpdesk.models import Ticket
from demo.metrics.models import Reading
from demo.shop.models import Coupon, Product
from integrity.duplicates import enforcement
from integrity.duplicates.rules import rules_for
from integrity.sequences import service as sequences
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    COUPON_KEY,
    DB,
    LIST,
    LOWER,
    PRODUCT_KEY,
    clean_sequences,
    client_for,
    fill,
    make_ahead,
    make_behind,
    rows_of,
    set_next,
    table_rows,
    text,
)

RULES_PAGE = "/admin/integrity/duplicaterule/"
READING_KEY = "default:metrics.Reading:id"
TICKET_NUMBER_KEY = "default:helpdesk.Ticket:number"


def _mixed() -> None:
    make_behind(Product, 8)
    make_behind(Ticket, 5, using="other")
    make_ahead(Coupon, 3, 10)
    fill(Reading, range(1, 3))
    set_next(Reading, 2_000_000_000)  # an integer column: 93.1% of its range used


def _needs_action() -> set[str]:
    return {i.key for r in sequences.collect() for i in r.sequences if i.needs_action}


def _show_all_link(body: str) -> tuple[str, int]:
    match = re.search(r'<a href="([^"]*)"[^>]*>Show all \((\d+)\)</a>', body)
    assert match, "no Show all link"
    return html.unescape(match.group(1)), int(match.group(2))


def _pre_blocks(cell_html: str) -> list[str]:
    return [html.unescape(b) for b in re.findall(r'<pre class="integrity-sql">(.*?)</pre>', cell_html, re.S)]


def _row_html(body: str, row_id: str) -> str:
    match = re.search(rf'<tr id="{re.escape(row_id)}".*?</tr>', body, re.S)
    assert match, row_id
    return match.group(0)


@DB
def test_default_view_lists_only_the_rows_that_need_action() -> None:
    _mixed()
    client = client_for("viewer")
    every = table_rows(client.get(LIST, {"show": "all"}).content)

    response = client.get(LIST)

    shown = {r.key for r in table_rows(response.content)}
    assert shown == _needs_action()
    assert {PRODUCT_KEY, "other:helpdesk.Ticket:id", READING_KEY, TICKET_NUMBER_KEY} <= shown
    assert COUPON_KEY not in shown  # a gap is not a problem
    assert not [r for r in table_rows(response.content) if r.status in ("ok", "empty") and r.key not in shown]
    href, count = _show_all_link(response.content.decode())
    assert href == "?show=all" and count == len(every) > len(shown)
    assert f"Showing the {len(shown)} rows that need action." in text(response)
    back = client.get(f"{LIST}{href}")
    assert "Only those that need action" in text(back)
    assert {r.key for r in table_rows(back.content)} == {r.key for r in every}


@DB
def test_default_view_keeps_the_other_filters_and_show_all_counts_them() -> None:
    _mixed()
    client = client_for("viewer")
    response = client.get(LIST, {"database": "default"})

    assert {r.key for r in table_rows(response.content)} == {
        k for k in _needs_action() if k.startswith("default:")
    }
    href, count = _show_all_link(response.content.decode())
    assert "database=default" in href and "show=all" in href
    assert count == len(table_rows(client.get(f"{LIST}{href}").content))


@DB
def test_nothing_needs_action_says_so_with_the_show_all_link() -> None:
    client = client_for("viewer")
    response = client.get(LIST, {"app": "shop"})  # clean: every shop sequence is fine

    assert table_rows(response.content) == []
    every = table_rows(client.get(LIST, {"app": "shop", "show": "all"}).content)
    assert every
    assert f"Nothing needs action: {len(every)} sequences checked. Show all ({len(every)})" in text(response)
    assert "No sequence matches these filters." not in text(response)


@DB
def test_capacity_is_a_status_with_its_fix_and_the_sql_fixes_it() -> None:
    _mixed()
    body = client_for("viewer").get(LIST).content.decode()

    row = _row_html(body, "seq-default-metrics-Reading-id")
    badges = re.findall(r'<span class="integrity-badge ([^"]*)"[^>]*>([^<]*)</span>', row)
    assert ("critical", "critical") in badges
    assert not [b for b in badges if b[1] == "ok"]
    assert "93.1% of the range is used: widen the column and the sequence to bigint" in html.unescape(row)
    sql, migration = _pre_blocks(row)
    assert sql.splitlines() == [
        'ALTER TABLE "public"."metrics_reading" ALTER COLUMN "id" TYPE bigint;',
        'ALTER SEQUENCE "public"."metrics_reading_id_seq" AS bigint NO MAXVALUE;',
    ]
    assert "migrations.AlterField(\n    model_name='reading',\n    name='id',\n" in migration
    assert "field=models.BigAutoField(" in migration and "primary_key=True" in migration
    assert 'migrations.RunSQL(\'ALTER SEQUENCE "public"."metrics_reading_id_seq" AS bigint' in migration

    with connections["default"].cursor() as cursor:  # rolled back with the test
        for statement in sql.splitlines():
            cursor.execute(statement)
    fixed = next(i for r in sequences.collect(["default"]) for i in r.sequences if i.key == READING_KEY)
    assert (fixed.column_type, fixed.sequence_type, fixed.capacity_level) == ("bigint", "bigint", "ok")
    assert not fixed.needs_action


@DB
def test_type_mismatch_is_a_status_with_the_sql_that_widens_the_column() -> None:
    body = client_for("viewer").get(LIST).content.decode()

    row = _row_html(body, "seq-default-helpdesk-Ticket-number")
    assert '<span class="integrity-badge critical">type mismatch</span>' in row
    assert "can hand out values the column (integer) cannot hold" in html.unescape(row)
    sql, migration = _pre_blocks(row)
    assert sql == 'ALTER TABLE "public"."helpdesk_ticket" ALTER COLUMN "number" TYPE bigint;'
    assert "name='number'" in migration and "field=models.BigIntegerField(" in migration

    with connections["default"].cursor() as cursor:
        cursor.execute(sql)
    fixed = next(i for r in sequences.collect(["default"]) for i in r.sequences if i.key == TICKET_NUMBER_KEY)
    assert not fixed.type_mismatch and not fixed.needs_action


@DB
def test_a_gap_is_no_call_to_action_and_lowering_stays_in_the_details() -> None:
    _mixed()
    body = client_for("resyncer").get(LIST, {"show": "all"}).content.decode()

    coupon = next(r for r in table_rows(body.encode()) if r.key == COUPON_KEY)
    assert coupon["actions"] == ""
    assert "Lower…" not in body
    row = _row_html(body, "seq-default-shop-Coupon-id")
    details = re.search(r'<details class="integrity-details gap">.*?</details>', row, re.S)
    assert details and "A gap of 6 unused values: harmless, nothing to do." in html.unescape(details.group(0))
    assert f'href="{LOWER}?key=default%3Ashop.Coupon%3Aid"' in details.group(0)
    assert "Lower this sequence…" in details.group(0)


@DB
def test_rules_page_defaults_to_the_rules_not_enforced() -> None:
    client = client_for("superuser")
    found = rules_for()
    states = enforcement.classify(found)

    response = client.get(RULES_PAGE)

    shown = {r.attrs["data-rule"] for r in rows_of(response.content, "data-rule")}
    expected = {r.key for r in found if states[r.key].state in enforcement.NOT_ENFORCED_STATES}
    assert shown == expected and shown
    href, count = _show_all_link(response.content.decode())
    assert href == "?show=all" and count == len(found) > len(shown)
    every = client.get(f"{RULES_PAGE}{href}")
    assert {r.attrs["data-rule"] for r in rows_of(every.content, "data-rule")} == {r.key for r in found}


@DB
def test_rules_page_says_when_nothing_needs_action() -> None:
    client = client_for("superuser")
    response = client.get(RULES_PAGE, {"app": "auth"})  # auth's rules are all enforced

    assert rows_of(response.content, "data-rule") == []
    every = rows_of(client.get(RULES_PAGE, {"app": "auth", "show": "all"}).content, "data-rule")
    assert every
    assert f"Nothing needs action: {len(every)} rules checked, every one enforced by the database." in text(
        response
    )
