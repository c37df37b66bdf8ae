"""The confirmation pages of the sequences show the SQL they run: the very statements, values inlined.

A developer copies the ``setval`` into a data migration: what the page shows
must be what the resync executes, compared here with the statements captured
while the confirmed POST runs.
"""

from __future__ import annotations

import html
import re
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from demo.metrics.models import Entry
from demo.shop.models import Coupon, Product, Tag
from integrity import sequences
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    COUPON_KEY,
    DB,
    LOWER,
    PRODUCT_KEY,
    RESYNC_ALL,
    clean_sequences,
    client_for,
    make_ahead,
    make_behind,
    next_of,
    sequence_of,
)


def shown_sql(response: Any, block_id: str) -> str:
    """The text of the page's SQL block ``block_id`` (integrity/sql.html), as a person copies it."""
    match = re.search(rf'<pre id="{block_id}"[^>]*><code>(.*?)</code></pre>', response.content.decode(), re.S)
    assert match, f"no SQL block #{block_id} on the page"
    return html.unescape(match.group(1))


def statements(text: str) -> list[str]:
    return [s.strip() for s in text.split(";\n") if s.strip()]


def executed_setvals(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "setval(" in q["sql"]]


def executed_locks(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith("LOCK TABLE")]


@DB
def test_the_lower_page_shows_the_statements_the_lowering_runs() -> None:
    make_ahead(Coupon, 3, 10)
    client = client_for("superuser")

    page = client.get(LOWER, {"key": COUPON_KEY})
    shown = statements(shown_sql(page, "lower-sql"))
    with CaptureQueriesContext(connection) as captured:
        assert client.post(LOWER, {"key": COUPON_KEY}).status_code == 302

    assert shown[0] == "BEGIN" and shown[-1] == "COMMIT"
    assert shown[1:-1] == [*executed_locks(captured), *executed_setvals(captured)]
    assert shown[2] == 'SELECT setval(\'"public"."shop_coupon_id_seq"\'::regclass, 4, false)'
    assert next_of(sequence_of(Coupon)) == 4


@DB
def test_resync_all_shows_each_resync_as_it_runs_it() -> None:
    make_behind(Product, 8)
    make_behind(Entry, 5)
    client = client_for("superuser")

    page = client.get(RESYNC_ALL)
    shown = statements(shown_sql(page, "resync-all-sql"))
    keys = re.findall(r'name="key" value="([^"]+)"', page.content.decode())
    with CaptureQueriesContext(connection) as captured:
        assert client.post(RESYNC_ALL, {"key": keys}).status_code == 302

    setvals = executed_setvals(captured)
    assert len(setvals) >= 2 and PRODUCT_KEY in keys
    assert [s for s in shown if "setval(" in s] == setvals
    assert [s for s in shown if s.startswith("LOCK TABLE")] == executed_locks(captured)
    assert shown.count("BEGIN") == shown.count("COMMIT") == len(setvals)  # one transaction each
    assert next_of(sequence_of(Product)) == 9


@DB
def test_the_sql_block_is_selectable_text_with_a_copy_button() -> None:
    make_ahead(Coupon, 3, 10)
    page = client_for("superuser").get(LOWER, {"key": COUPON_KEY}).content.decode()

    block = page[page.index('<div class="integrity-code') :]
    block = block[: block.index("</div>")]
    assert '<pre id="lower-sql"' in block and "user-select" not in block  # plain text, no JS needed
    assert 'data-copy="lower-sql"' in block and "navigator.clipboard.writeText" in block


@DB
def test_nothing_to_change_shows_no_sql() -> None:
    make_ahead(Coupon, 3, 4)  # next value 4 = MAX + 1: nothing to lower
    info = next(i for i in sequences.collect(["default"])[0].sequences if i.key == COUPON_KEY)

    assert sequences.resync_sql("default", "shop.Coupon", "id", lower=True) == []
    page = client_for("superuser").get(LOWER, {"key": COUPON_KEY}).content.decode()
    assert 'id="lower-sql"' not in page
    assert info.display_name == "public.shop_coupon_id_seq (Coupon.id)"


@DB
def test_resync_all_reads_the_sql_of_every_sequence_in_a_constant_number_of_queries() -> None:
    client = client_for("superuser")
    make_behind(Product, 8)
    with CaptureQueriesContext(connection) as one:
        first = shown_sql(client.get(RESYNC_ALL), "resync-all-sql")
    make_behind(Entry, 5)
    make_behind(Tag, 4)
    with CaptureQueriesContext(connection) as three:
        second = shown_sql(client.get(RESYNC_ALL), "resync-all-sql")

    assert second.count("setval(") == first.count("setval(") + 2
    assert len(three.captured_queries) == len(one.captured_queries)
