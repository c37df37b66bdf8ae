"""Real-browser test of an event group's life with its charts (headless Chromium via Playwright).

Resolve from the list (bulk) and from the group's page, ignore until a date,
see regressed after a new occurrence; the list's sparklines and the group
page's bar charts show one bar per hour or day, the busy hours taller. The
occurrences are written in a thread of their own: Playwright's sync API runs
an event loop in the test's thread, where Django refuses database access.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from integrity.events import recording as events
from integrity.events import trends
from tests.helpers import PASSWORD, REQUEST, browser_page, log_in, violation, write_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

EVENTS = "/admin/integrity/eventgroup/"
NOW = timezone.now()


@pytest.fixture(autouse=True)
def _patient_writes(settings) -> None:
    # The machine a browser test runs on is busy: the recording's 50 ms could cut a write this test needs.
    settings.INTEGRITY_EVENT_WRITE_TIMEOUT_MS = 5000


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("trends-admin", "trends@example.com", PASSWORD)
    return "trends-admin"


def occur(constraint: str, *ago: timedelta) -> int:
    group_id = None
    for delta in ago or (timedelta(0),):
        group_id = events.write(violation(constraint), "default", REQUEST, now=timezone.now() - delta)
    assert group_id is not None
    return group_id


def occur_in_thread(constraint: str) -> None:
    write_in_thread(lambda: occur(constraint))


def bar_counts(page: Page, selector: str) -> list[int]:
    return [
        int(c)
        for c in page.locator(f"{selector} rect.bar").evaluate_all("bars => bars.map(b => b.dataset.count)")
    ]


def bar_heights(page: Page, selector: str) -> list[float]:
    return page.locator(f"{selector} rect.bar").evaluate_all("bars => bars.map(b => b.getBBox().height)")


def test_resolve_ignore_and_regress_with_the_charts(live_server, superuser) -> None:
    hour = timedelta(hours=1)
    busy = occur("busy_key", timedelta(0), hour, hour, hour, 5 * hour, timedelta(days=3))
    quiet = occur("quiet_key")
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, EVENTS)
        spark = f'#event-table tr[data-group="{busy}"] svg.integrity-sparkline'
        expect(page.locator(spark)).to_be_visible()
        counts = bar_counts(page, spark)
        assert len(counts) == trends.HOURS and sum(counts) == 5  # three days ago is outside the 48 hours
        assert counts[-1] == 1 and counts[-2] == 3 and counts[-6] == 1
        heights = bar_heights(page, spark)
        assert heights[-2] == max(heights) and heights[-1] == pytest.approx(heights[-2] / 3, abs=0.05)
        assert heights[0] == 0  # an empty hour is a bar of height 0
        expect(page.locator(spark)).to_have_attribute("aria-label", "5 occurrences in the last 48 hours")

        # Resolve from the list: the checked group leaves the open groups.
        page.locator(f'#event-table input[name=ids][value="{quiet}"]').check()
        page.locator("#events-resolve").click()
        expect(page.locator("body")).to_contain_text("1 group resolved.")
        expect(page.locator(f'#event-table tr[data-group="{quiet}"]')).to_have_count(0)

        # The group page: both bar charts, a bar per hour and per day.
        page.goto(f"{base}{EVENTS}group/?id={busy}")
        hourly, daily = "#event-chart-hourly", "#event-chart-daily"
        expect(page.locator(hourly)).to_be_visible()
        expect(page.locator(daily)).to_be_visible()
        expect(page.locator(f"{hourly} rect.bar")).to_have_count(trends.HOURS)
        expect(page.locator(f"{daily} rect.bar")).to_have_count(trends.DAYS)
        assert sum(bar_counts(page, daily)) == 6 and sum(bar_counts(page, hourly)) == 5
        tallest = page.locator(f'{hourly} rect.bar[data-count="3"] title')
        expect(tallest).to_have_count(1)
        assert (tallest.text_content() or "").startswith("3 occurrences, ")

        # Ignore until a date, then resolve from the page.
        tomorrow = timezone.localdate() + timedelta(days=2)
        page.locator("#event-ignore-until").fill(tomorrow.isoformat())
        page.locator("#event-ignore").click()
        expect(page.locator("#event-state-label")).to_have_text("Ignored")
        expect(page.locator("#event-ignored")).to_contain_text(f"Ignored until {tomorrow.isoformat()}")
        page.locator("#event-resolve").click()
        expect(page.locator("#event-state-label")).to_have_text("Resolved")

        # A new occurrence: regressed, and counted in the current hour's bar.
        occur_in_thread("busy_key")
        page.reload()
        expect(page.locator("#event-state-label")).to_have_text("Regressed")
        assert bar_counts(page, hourly)[-1] == 2

        # The list too shows the resolved group from the list regressed once it occurs again.
        occur_in_thread("quiet_key")
        page.goto(f"{base}{EVENTS}")
        expect(page.locator(f'#event-table tr[data-group="{quiet}"] .event-state-regressed')).to_have_text(
            "Regressed"
        )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_charts_take_the_admins_colours(live_server, superuser, scheme: str) -> None:
    busy = occur("busy_key", timedelta(0), timedelta(hours=2))
    with browser_page(color_scheme=scheme) as page:
        log_in(page, live_server.url, superuser, f"{EVENTS}group/?id={busy}")
        bar = page.locator('#event-chart-hourly rect.bar[data-count="1"]').first
        fill = bar.evaluate("b => getComputedStyle(b).fill")
        link = page.locator("#event-chart-hourly").evaluate(
            "svg => getComputedStyle(document.body).getPropertyValue('--link-fg').trim()"
        )
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert fill != background and fill not in ("rgb(0, 0, 0)", "none")
        assert link  # the admin's variable the bars are drawn in
        expect(page.locator("#event-chart-hourly title").first).to_contain_text("Occurrences per hour")
