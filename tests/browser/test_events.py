"""Real-browser tests of the events page (headless Chromium via Playwright): new events appear by themselves.

Unlike the other browser tests, these write while the page is open: that is
what they test. Playwright's sync API runs an event loop in the test's
thread, where Django refuses database access, so the write happens in a
thread of its own (``write_in_thread``), which closes its connections when
done. The live server answers from its own thread too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from playwright.sync_api import Page, Request, expect

from integrity.events import recording as events
from tests.helpers import (
    PASSWORD,
    REQUEST,
    browser_page,
    group,
    log_in,
    violation,
    write_in_thread,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

EVENTS = "/admin/integrity/eventgroup/"


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("browser-admin", "browser@example.com", PASSWORD)
    return "browser-admin"


@pytest.fixture
def one_old_group() -> None:
    group("shop_product_name_key", ago=timedelta(hours=2), count=3)


def record_pkey_violation() -> None:
    events.write(violation("shop_product_pkey"), "default", REQUEST)


def rows(page: Page) -> Any:
    return page.locator("#event-table tbody tr[data-group]")


def watch_navigations(page: Page) -> list[str]:
    navigations: list[str] = []
    page.on(
        "framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None
    )
    return navigations


@override_settings(INTEGRITY_EVENTS_POLL_SECONDS=1)
def test_a_new_event_appears_without_a_reload(live_server, superuser, one_old_group) -> None:
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, EVENTS)
        expect(rows(page)).to_have_count(1)
        expect(page.locator("#integrity-summary")).to_contain_text("1 group of IntegrityErrors")
        url = page.url
        navigations = watch_navigations(page)
        page.evaluate("window.__marker = 1")

        write_in_thread(record_pkey_violation)

        expect(rows(page)).to_have_count(2)
        newest = rows(page).first
        expect(newest.locator("td.constraint")).to_have_text("shop_product_pkey")
        expect(newest.locator("td.kind")).to_have_text("unique")
        expect(page.locator("#integrity-summary")).to_contain_text("2 groups of IntegrityErrors")
        assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapping the table"
        assert page.url == url
        assert navigations == []
        # The filter sidebar is still there once (the poll swaps the table, not the page into itself).
        expect(page.locator("#changelist-filter")).to_have_count(1)

        newest.get_by_role("link", name="Details").click()
        expect(page.locator("#event-summary tr[data-term=count] td")).to_have_text("1")


@override_settings(INTEGRITY_EVENTS_POLL_SECONDS=1)
def test_polling_pauses_while_the_tab_is_hidden(live_server, superuser, one_old_group) -> None:
    base = live_server.url
    polls: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.startswith(f"{base}{EVENTS}") and request.headers.get("hx-request") == "true":
            polls.append(request.url)

    with browser_page() as page:
        log_in(page, base, superuser, EVENTS)
        page.on("request", on_request)
        page.wait_for_timeout(2500)
        assert polls, "the page does not poll while visible"

        page.evaluate(
            "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        page.wait_for_timeout(300)  # a poll already in flight may finish
        polls.clear()
        page.wait_for_timeout(2500)
        assert polls == [], "the page kept polling while hidden"

        page.evaluate(
            "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )
        page.wait_for_timeout(500)
        assert polls, "coming back to the tab did not refresh the table at once"


def test_without_javascript_refresh_reloads_the_page(live_server, superuser, one_old_group) -> None:
    base = live_server.url
    with browser_page(java_script_enabled=False) as page:
        log_in(page, base, superuser, f"{EVENTS}?range=24h")
        expect(rows(page)).to_have_count(1)

        write_in_thread(record_pkey_violation)
        page.wait_for_timeout(1500)
        expect(rows(page)).to_have_count(1)  # nothing polls without JavaScript

        page.get_by_role("link", name="Refresh").click()

        expect(page).to_have_url(f"{base}{EVENTS}?range=24h")
        expect(rows(page)).to_have_count(2)
