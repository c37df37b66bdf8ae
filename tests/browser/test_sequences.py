"""Real-browser tests (headless Chromium via Playwright): the Resync button, with and without JavaScript.

Playwright's sync API runs an event loop in the test's thread, which Django
refuses to mix with database access; so each test writes its data before the
browser starts and checks the database after the browser is closed. The live
server answers from its own thread.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Locator, Page, expect

from demo import seed
from demo.shop.models import Product
from integrity.models import SequenceResync
from tests.helpers import (
    PASSWORD,
    browser_page,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

SEQUENCES = "/admin/integrity/sequence/"


@pytest.fixture
def product_sequence_behind() -> None:
    """A data migration with explicit ids, in miniature: products 1..8 written with explicit ids, the sequence left at 1."""
    seed.reset()
    Product.objects.bulk_create(Product(id=i, name=f"Product {i}", price=i) for i in range(1, 9))


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("browser-admin", "browser@example.com", PASSWORD)
    return "browser-admin"


def product_row(page: Page) -> Locator:
    """The sequences table row of shop.Product on the default database, found by what it shows."""
    return (
        page.locator("#sequence-table tbody tr")
        .filter(has=page.get_by_role("cell", name="shop.Product", exact=True))
        .filter(has=page.get_by_role("cell", name="default", exact=True))
    )


def assert_next_product_id_is_9() -> None:
    assert Product.objects.create(name="After resync").id == 9
    audit = SequenceResync.objects.get(model="shop.Product")
    assert (audit.value_before, audit.value_after, audit.lowered) == (1, 9, False)
    assert audit.user is not None and audit.user.username == "browser-admin"


def test_dashboard_to_htmx_resync_swaps_the_row_in_place(live_server, superuser, product_sequence_behind):
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, "/admin/integrity/")
        card = page.locator("a.integrity-card", has_text="Sequences behind")
        expect(card).to_be_visible()
        assert int(card.locator(".integrity-card-value").inner_text()) >= 1

        card.click()
        expect(page).to_have_url(re.compile(re.escape(f"{base}{SEQUENCES}") + r"\?.*status=behind"))
        row = product_row(page)
        expect(row).to_have_count(1)
        expect(row.locator(".integrity-badge")).to_have_text("behind")
        expect(row.locator("td.num").first).to_have_text("1")
        url = page.url
        navigations: list[str] = []
        page.on(
            "framenavigated",
            lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
        )
        page.evaluate("window.__marker = 1")

        row.get_by_role("button", name="Resync").click()

        expect(row.locator(".integrity-badge")).to_have_text("ok")
        expect(page.locator("#integrity-messages .success")).to_contain_text("next value 1 → 9")
        expect(page.locator("#integrity-summary")).to_contain_text("0 sequences are behind their data.")
        expect(row.get_by_role("button", name="Resync")).to_have_count(0)
        expect(row.locator("td.num").first).to_have_text("9")
        assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the row"
        assert page.url == url
        assert navigations == []
        expect(page.locator("#sequence-table tbody tr")).to_have_count(1)
    assert_next_product_id_is_9()


def test_resync_without_javascript_posts_the_form_and_redirects(
    live_server, superuser, product_sequence_behind
):
    base = live_server.url
    with browser_page(java_script_enabled=False) as page:
        log_in(page, base, superuser, SEQUENCES)
        row = product_row(page)
        expect(row.locator(".integrity-badge")).to_have_text("behind")

        row.get_by_role("button", name="Resync").click()

        expect(page).to_have_url(f"{base}{SEQUENCES}")
        expect(page.locator(".messagelist .success")).to_contain_text("next value 1 → 9")
        expect(row).to_have_count(0)  # fixed: no longer among the rows that need action
        page.get_by_role("link", name=re.compile(r"^Show all \(\d+\)$")).click()
        expect(row.locator(".integrity-badge")).to_have_text("ok")
        expect(row.get_by_role("button", name="Resync")).to_have_count(0)
    assert_next_product_id_is_9()


def test_resync_all_confirms_then_resyncs_every_behind_sequence(live_server, superuser):
    seed.load()  # the demo's stories: four sequences behind, one ahead
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, SEQUENCES)
        expect(page.locator("#integrity-summary")).to_contain_text("4 sequences are behind their data.")

        page.get_by_role("link", name="Resync all behind…").click()
        expect(page.locator("h1")).to_have_text("Resync all behind sequences")
        expect(page.locator("table.integrity-table tbody tr")).to_have_count(4)
        page.get_by_role("button", name="Yes, resync 4 sequences").click()

        expect(page).to_have_url(f"{base}{SEQUENCES}")
        expect(page.locator(".messagelist .success")).to_have_text("4 sequences resynced.")
        expect(page.locator("#integrity-summary")).to_contain_text("0 sequences are behind their data.")
        expect(page.locator("#sequence-table tr[data-status=behind]")).to_have_count(0)
        page.goto(f"{base}{SEQUENCES}?show=all")
        expect(page.locator("#sequence-table tr[data-status=ahead]")).to_have_count(1)  # never lowered
    assert SequenceResync.objects.filter(lowered=False).count() == 4
