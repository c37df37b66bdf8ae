"""An event group's Resync fix names the sequence as a person knows it and shows the SQL its button runs."""

from __future__ import annotations

import html
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from demo.shop.models import Product
from integrity.events import recording as events
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    DB,
    PRODUCT_KEY,
    REQUEST,
    RESYNC,
    clean_sequences,
    client_for,
    make_behind,
    text,
    violation,
)

GROUP = "/admin/integrity/eventgroup/group/"


@DB
def test_the_resync_fix_names_the_sequence_and_shows_the_setval_it_runs() -> None:
    make_behind(Product, 8)
    made_id = events.write(violation("shop_product_pkey"), "default", REQUEST)
    assert made_id is not None
    client = client_for("superuser")

    page = client.get(GROUP, {"id": made_id})
    shown = text(page)
    assert "Moves sequence public.shop_product_id_seq (Product.id) just past the column's MAX" in shown
    assert PRODUCT_KEY not in shown
    block = re.search(
        r'<pre id="event-resync-sql"[^>]*><code>(.*?)</code></pre>', page.content.decode(), re.S
    )
    assert block is not None
    statements = [s for s in html.unescape(block.group(1)).split(";\n") if s]
    with CaptureQueriesContext(connection) as captured:
        assert client.post(RESYNC, {"key": PRODUCT_KEY}).status_code == 302

    executed = [q["sql"] for q in captured.captured_queries]
    assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"
    assert all(s in executed for s in statements[1:-1])
    assert statements[2] == 'SELECT setval(\'"public"."shop_product_id_seq"\'::regclass, 9, false)'
    assert Product.objects.create(name="after").pk == 9
