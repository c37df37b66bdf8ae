"""Real browser: a POST-only address opened directly, and a page without the permission it needs.

A bookmark or a refresh of a form's address (undo, merge, resync, ...) must
land on an admin page that says what to do and links back to the page with
the button, never a blank 405; a 403 names the permission that is missing.
The POST-only addresses are found from the app's own URL patterns (every
sample GET that answers 405), so a new one is covered at once.

As in the other browser tests, the data is written before the browser starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Page, expect

from demo import seed_crm
from integrity import permissions
from tests.helpers import PASSWORD, VAT_KEY, browser_page, log_in, make_user
from tests.pages import ADMIN, SAMPLES, app_patterns, load_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

ADMIN_USER = "post-only-admin"


def can_log_in(user: User) -> str:
    """``user`` with the browser tests' password; their username."""
    user.set_password(PASSWORD)
    user.save()
    return user.username


@pytest.fixture
def post_only_urls() -> Iterator[list[str]]:
    """Every address of the app that answers a GET with 405, on the demo's data."""
    demo = load_demo(ADMIN_USER)
    found = {
        sample.path
        for name in app_patterns()
        for sample in SAMPLES[name](demo)
        if sample.method == "GET" and sample.send(demo.client).status_code == 405
    }
    can_log_in(User.objects.get(username=ADMIN_USER))
    yield sorted(found)
    seed_crm.undo_failed_concurrent_index()


def expect_admin_page(page: Page) -> None:
    expect(page.locator("#header")).to_be_visible()  # the admin's own header, styled
    expect(page.locator(".breadcrumbs")).to_contain_text("Data integrity")
    expect(page.locator("#content-main .messagelist li")).to_be_visible()


def test_get_on_every_post_only_address_is_an_admin_page_saying_what_to_do(
    live_server, post_only_urls
) -> None:
    expected = {
        f"{ADMIN}sequence/resync/",
        f"{ADMIN}duplicaterule/merge/",
        f"{ADMIN}duplicaterule/merge-all/",
        f"{ADMIN}eventgroup/state/",
        f"{ADMIN}duplicaterule/scan-job/",
        f"{ADMIN}duplicaterule/scan-all-job/",
        f"{ADMIN}eventgroup/prune/",
    }
    assert expected <= set(post_only_urls)
    undo = [u for u in post_only_urls if u.endswith("/undo/")]
    assert len(undo) == 1
    [cancel] = [u for u in post_only_urls if u.endswith("/cancel/")]
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, ADMIN_USER, ADMIN)
        for url in post_only_urls:
            response = page.goto(f"{base}{url}")
            assert response is not None and response.status == 405, url
            assert response.headers["allow"] == "POST", url
            expect_admin_page(page)
            message = page.locator("#content-main .messagelist li")
            expect(message).to_contain_text("only takes the form of its page")
            expect(message).to_contain_text("nothing was changed")
            back = page.locator("#content-main p a").first
            expect(back).to_be_visible()
            href = back.get_attribute("href")
            assert href and href != url, url
            # The way back leads to a page that works: the one with the button.
            answer = page.goto(f"{base}{href}")
            assert answer is not None and answer.status == 200, (url, href)
        # The undo's way back is its merge record, where the Undo button is.
        page.goto(f"{base}{undo[0]}")
        page.locator("#content-main p a", has_text="Back to its page").click()
        expect(page.locator("#undo-form")).to_be_visible()
        # A job's Cancel leads back to the job's page, and to the Jobs list.
        page.goto(f"{base}{cancel}")
        expect(page.locator(".breadcrumbs")).to_contain_text("Jobs")
        expect(page.locator("#content-main p a", has_text="Back to the jobs")).to_be_visible()
        page.locator("#content-main p a", has_text="Back to its page").click()
        expect(page.locator("h1")).to_contain_text("Scan")


@pytest.fixture
def viewer() -> str:
    """Staff who may see the duplicates, nothing more (and staff with no permission at all)."""
    user = make_user("staff", [], username="viewer-only")
    user.user_permissions.add(Permission.objects.get(codename="view_duplicaterule"))
    can_log_in(make_user("staff", [], username="no-perms"))
    return can_log_in(user)


def test_a_403_is_an_admin_page_naming_the_missing_permission(live_server, viewer) -> None:
    base = live_server.url
    pages = {
        f"{ADMIN}sequence/": permissions.VIEW_SEQUENCES,
        f"{ADMIN}duplicaterule/enforce/?rule={VAT_KEY}": permissions.ENFORCE_DUPLICATES,
        f"{ADMIN}eventgroup/": permissions.VIEW_EVENTS,
    }
    with browser_page() as page:
        log_in(page, base, viewer, f"{ADMIN}duplicaterule/")
        for url, perm in pages.items():
            response = page.goto(f"{base}{url}")
            assert response is not None and response.status == 403, url
            expect_admin_page(page)
            expect(page.locator("#content-main .messagelist li")).to_contain_text(perm)
    with browser_page() as page:
        log_in(page, base, "no-perms", "/admin/")
        response = page.goto(f"{base}{ADMIN}")
        assert response is not None and response.status == 403
        expect_admin_page(page)
        expect(page.locator("#content-main .messagelist li")).to_contain_text(permissions.VIEW_SEQUENCES)
