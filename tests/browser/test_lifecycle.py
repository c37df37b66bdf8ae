"""Real-browser tests of the events lifecycle (headless Chromium via Playwright): resolve, regress, bulk resolve.

The occurrence that regresses the group is written in a thread of its own:
Playwright's sync API runs an event loop in the test's thread, where Django
refuses database access.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from integrity.events import recording as events
from tests.helpers import PASSWORD, REQUEST, browser_page, log_in, violation, write_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

EVENTS = "/admin/integrity/eventgroup/"


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("lifecycle-admin", "lifecycle@example.com", PASSWORD)
    return "lifecycle-admin"


def occur(constraint: str = "shop_product_pkey") -> int:
    group_id = events.write(violation(constraint), "default", REQUEST)
    assert group_id is not None
    return group_id


def occur_in_thread() -> None:
    write_in_thread(occur)


def test_resolve_on_the_group_page_then_it_regresses(live_server, superuser) -> None:
    group_id = occur()
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, f"{EVENTS}group/?id={group_id}")
        expect(page.locator("#event-state-label")).to_have_text("Unresolved")

        page.locator("#event-resolve").click()

        expect(page).to_have_url(f"{base}{EVENTS}group/?id={group_id}")
        expect(page.locator("#event-state-label")).to_have_text("Resolved")
        expect(page.locator("#event-resolved")).to_contain_text("Resolved by lifecycle-admin at")
        expect(page.locator("#event-timeline li[data-kind=resolved]")).to_have_count(1)

        occur_in_thread()
        page.reload()

        expect(page.locator("#event-state-label")).to_have_text("Regressed")
        expect(page.locator("#event-regressed")).to_contain_text("it occurred again after it was resolved")
        expect(page.locator("#event-timeline li[data-kind=regressed]")).to_have_count(1)
        expect(page.locator("#event-reopen")).to_be_visible()


def test_bulk_resolve_on_the_list(live_server, superuser) -> None:
    first, second = occur("a_key"), occur("b_key")
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, EVENTS)
        expect(page.locator("#event-table tbody tr[data-group]")).to_have_count(2)

        page.locator(f'#event-table input[name=ids][value="{first}"]').check()
        page.locator("#events-resolve").click()

        expect(page.locator("#event-table tbody tr[data-group]")).to_have_count(1)
        expect(page.locator(f'#event-table tr[data-group="{second}"]')).to_have_count(1)
        expect(page.locator("body")).to_contain_text("1 group resolved.")
        page.goto(f"{base}{EVENTS}?state=resolved")
        expect(page.locator(f'#event-table tr[data-group="{first}"]')).to_have_count(1)
