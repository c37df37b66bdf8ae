"""Real-browser tests of "problems first": default views list only what needs action; the dashboard's Resync works.

As in the other browser tests, the data is written before the browser starts
and checked after it is closed (Playwright's sync API and Django's database
access don't mix in one thread).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from demo import seed
from demo.shop.models import Product
from integrity.models import SequenceResync
from integrity.sequences import service as sequences
from tests.helpers import PASSWORD, browser_page, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

DASHBOARD = "/admin/integrity/"
SEQUENCES = "/admin/integrity/sequence/"
RULES = "/admin/integrity/duplicaterule/"


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("browser-admin", "browser@example.com", PASSWORD)
    return "browser-admin"


def test_default_views_show_only_what_needs_action(live_server, superuser) -> None:
    seed.load()  # the demo's stories: sequences behind, a gap, near overflow; rules not enforced
    rows = [i for r in sequences.collect() for i in r.sequences]
    needing = {f"seq-{i.database}-{i.model}-{i.column}".replace(".", "-") for i in rows if i.needs_action}
    base = live_server.url
    with browser_page(viewport={"width": 1280, "height": 900}) as page:
        log_in(page, base, superuser, SEQUENCES)
        table_rows = page.locator("#sequence-table tbody tr")
        expect(table_rows).to_have_count(len(needing))
        shown = set(table_rows.evaluate_all("rows => rows.map(r => r.id)"))
        statuses = set(
            table_rows.evaluate_all(
                "rows => rows.map(r => r.querySelector('td.status .integrity-badge').textContent)"
            )
        )
        reading = page.locator("#seq-default-metrics-Reading-id")
        expect(reading.locator("td.status .integrity-badge").first).to_have_text("critical")
        reading.locator("summary", has_text="How to fix").click()
        expect(reading.locator("pre.integrity-sql").first).to_contain_text(
            'ALTER TABLE "public"."metrics_reading" ALTER COLUMN "id" TYPE bigint;'
        )
        expect(page.get_by_role("link", name="Lower…")).to_have_count(0)

        page.get_by_role("link", name=f"Show all ({len(rows)})").click()
        expect(page).to_have_url(f"{base}{SEQUENCES}?show=all")
        expect(table_rows).to_have_count(min(len(rows), 100))

        page.goto(f"{base}{RULES}")
        states = set(page.locator("tr[data-rule]").evaluate_all("rows => rows.map(r => r.dataset.state)"))
        expect(page.get_by_role("link", name=re.compile(r"^Show all \(\d+\)$"))).to_be_visible()
    assert shown == needing
    assert "ok" not in statuses and "ahead" not in statuses and "empty" not in statuses
    assert states and "enforced" not in states


RECTS = "els => els.map(e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y}; })"


def test_dashboard_lists_problems_and_its_resync_button_fixes_the_row(live_server, superuser) -> None:
    seed.load()
    base = live_server.url
    with browser_page(viewport={"width": 1280, "height": 900}) as page:
        log_in(page, base, superuser, DASHBOARD)
        panel = page.locator("section.integrity-problem-list", has_text="Sequences behind their data")
        item = panel.locator("li", has_text="shop.Product.id")
        expect(item).to_contain_text("next value 1, MAX 8")
        lists = page.locator("section.integrity-problem-list")
        expect(lists).to_have_count(4)
        # The lists share the width: two side by side at 1280 px. The page's
        # htmx fragments may still grow above the lists, so both boxes are read
        # in one step, once the page is idle.
        page.wait_for_load_state("networkidle")
        boxes = lists.evaluate_all(RECTS)
        assert boxes[0]["y"] == boxes[1]["y"] and boxes[1]["x"] > boxes[0]["x"]
        content = page.locator("#content").bounding_box()
        assert content and content["width"] > 1100

        item.get_by_role("button", name="Resync").click()

        expect(page).to_have_url(f"{base}{DASHBOARD}")
        expect(page.locator(".messagelist .success")).to_contain_text("next value 1 → 9")
        expect(panel.locator("li", has_text="shop.Product.id")).to_have_count(0)
        expect(panel.locator("li", has_text="shop.Order.id")).to_have_count(1)  # the others still wait

        page.set_viewport_size({"width": 420, "height": 900})
        narrow = lists.evaluate_all(RECTS)
        assert narrow[1]["y"] > narrow[0]["y"]  # stacked
    assert Product.objects.create(name="After resync").id == 9
    audit = SequenceResync.objects.get(model="shop.Product")
    assert (audit.value_before, audit.value_after) == (1, 9)
