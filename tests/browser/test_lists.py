"""Real-browser tests of the lists: nothing clipped at 1,400 px, each row's status on screen at 420 px, Resync selected.

Every list of the app: the sequences, the duplicate rules and a rule's
groups, the IntegrityError groups, and the admin's own changelists of the
merge and resync logs. As in the other browser tests, the data is written
before the browser starts and checked after it is closed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from demo import seed
from demo.shop.models import Product
from integrity.models import SequenceResync
from tests.helpers import (
    PASSWORD,
    browser_page,
    group,
    log_in,
    merge_record,
    next_of,
    resync_record,
    sequence_of,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

SEQUENCES = "/admin/integrity/sequence/"
# Each list, and the cell that holds each row's status (or, for a rule's groups, its size).
LISTS = {
    "sequences needing action": (SEQUENCES, "#sequence-table", "td.status"),
    "every sequence": (f"{SEQUENCES}?show=all", "#sequence-table", "td.status"),
    "rules": ("/admin/integrity/duplicaterule/?show=all", "#rule-table", "td.enforcement"),
    "a rule's groups": (
        "/admin/integrity/duplicaterule/rule/?rule=default:crm.Company:unique:vat_number",
        "#group-table",
        "td.num",
    ),
    "events": ("/admin/integrity/eventgroup/?state=all", "#event-table", "td.state"),
    "merge log": ("/admin/integrity/mergerecord/", "#result_list", "td.field-status"),
    "resync log": ("/admin/integrity/sequenceresync/", "#result_list", "td.field-change"),
}

# Every cell of the table shows all of itself, and the table fits its container and the window.
CLIPPED = """table => {
  const box = table.parentElement;
  const out = [];
  for (const cell of table.querySelectorAll('th, td')) {
    if (cell.scrollWidth > cell.clientWidth + 1) out.push(`${cell.className}: ${cell.innerText.slice(0, 40)}`);
  }
  if (table.scrollWidth > box.clientWidth + 1) out.push(`table ${table.scrollWidth} > box ${box.clientWidth}`);
  const right = table.getBoundingClientRect().right;
  if (right > window.innerWidth) out.push(`table right edge ${right} > window ${window.innerWidth}`);
  return out;
}"""

# Labels, headers, filter links, buttons and inputs that are visible: no two of them overlap.
OVERLAPS = """() => {
  const seen = [...document.querySelector('#content').querySelectorAll(
      'label, thead th, #changelist-filter a, #changelist-filter summary, button, input[type=submit], #searchbar')]
    .filter(e => e.offsetParent !== null)
    .map(e => [e, e.getBoundingClientRect()])
    .filter(([e, r]) => r.width > 2 && r.height > 2);  // not the visually hidden ones
  const out = [];
  for (let i = 0; i < seen.length; i++) {
    for (let j = i + 1; j < seen.length; j++) {
      const [a, ra] = seen[i], [b, rb] = seen[j];
      if (a.contains(b) || b.contains(a)) continue;
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 1 && h > 1) out.push(`${a.tagName} "${a.innerText || a.value}" / ${b.tagName} "${b.innerText || b.value}"`);
    }
  }
  return out;
}"""


@pytest.fixture
def superuser() -> Any:
    return get_user_model().objects.create_superuser(
        "browser-admin", "browser@example.com", PASSWORD, first_name="Ada", last_name="Lovelace"
    )


@pytest.fixture
def every_list_filled(superuser: Any) -> None:
    """The demo's stories, plus a row in each log and the events list, with long values where they can be."""
    seed.load()
    for lowered in (False, True):
        resync_record(
            superuser,
            model="metrics.Reading",
            table="metrics_reading",
            sequence="public.metrics_reading_id_seq",
            value_before=1_950_000_026,
            value_after=1_950_000_025 if lowered else 9_223_372_036_854_775_000,
            lowered=lowered,
        )
    merge_record(superuser, removed=list(range(13, 40)), repointed=123_456, deleted=27)
    group("crm_customer_email_ci_uniq", model="crm.Customer", table="crm_customer", count=1_234_567)


def _status_cell_on_screen(page: Page, table: str, status: str) -> None:
    cell = page.locator(f"{table} tbody tr").first.locator(status)
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    assert box is not None
    width, height = page.viewport_size["width"], page.viewport_size["height"]  # type: ignore[index]
    assert 0 <= box["x"] and box["x"] + box["width"] <= width, (table, box)
    assert 0 <= box["y"] and box["y"] + box["height"] <= height, (table, box)
    # Seen without scrolling the table sideways.
    assert cell.evaluate("c => c.closest('table').parentElement.scrollLeft") == 0


def test_no_list_clips_a_column_at_1400_px(live_server, every_list_filled) -> None:
    base = live_server.url
    clipped: dict[str, list[str]] = {}
    with browser_page(viewport={"width": 1400, "height": 900}) as page:
        log_in(page, base, "browser-admin", SEQUENCES)
        for name, (path, table, _status) in LISTS.items():
            page.goto(f"{base}{path}")
            expect(page.locator(f"{table} tbody tr").first).to_be_visible()
            found = page.locator(table).evaluate(CLIPPED)
            if found:
                clipped[name] = found
            overlapping = page.evaluate(OVERLAPS)
            assert not overlapping, (name, overlapping)
    assert clipped == {}


def test_every_list_shows_the_status_of_its_first_row_at_420_px(live_server, every_list_filled) -> None:
    base = live_server.url
    with browser_page(viewport={"width": 420, "height": 800}) as page:
        log_in(page, base, "browser-admin", SEQUENCES)
        for name, (path, table, status) in LISTS.items():
            page.goto(f"{base}{path}")
            expect(page.locator(f"{table} tbody tr").first).to_be_visible()
            _status_cell_on_screen(page, table, status)
            overlapping = page.evaluate(OVERLAPS)
            assert not overlapping, (name, overlapping)
            assert page.evaluate("document.documentElement.scrollWidth") <= 420, name


def test_the_filter_sidebar_filters_in_one_click_and_highlights_the_choice(
    live_server, every_list_filled
) -> None:
    base = live_server.url
    with browser_page(viewport={"width": 1400, "height": 900}) as page:
        log_in(page, base, "browser-admin", SEQUENCES)
        sidebar = page.locator("#changelist-filter")
        expect(sidebar.locator("li.selected").first).to_have_text("Needs action")

        sidebar.get_by_role("link", name="ahead", exact=True).click()

        expect(page).to_have_url(re.compile(r"status=ahead"))
        expect(sidebar.locator("details[data-filter-title=status] li.selected")).to_have_text("ahead")
        statuses = page.locator("#sequence-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.status)"
        )
        assert statuses and set(statuses) == {"ahead"}
        expect(page.locator(".integrity-count")).to_have_text(re.compile(rf"^{len(statuses)} sequences?$"))

        page.locator("#searchbar").fill("coupon")
        page.locator("#changelist-search [type=submit]").click()
        expect(page).to_have_url(re.compile(r"q=coupon.*|.*status=ahead.*q=coupon"))
        expect(page.locator("#sequence-table tbody tr")).to_have_count(1)
        expect(page.locator("#sequence-table tbody tr td.model")).to_have_text("shop.Coupon")

        sidebar.get_by_role("link", name="Clear all filters").click()
        expect(sidebar.locator("details[data-filter-title=status] li.selected")).to_have_text("Needs action")


def test_resync_selected_confirms_then_resyncs_the_checked_rows(live_server, every_list_filled) -> None:
    base = live_server.url
    with browser_page(viewport={"width": 1400, "height": 900}) as page:
        log_in(page, base, "browser-admin", SEQUENCES)
        rows = page.locator("#sequence-table tbody tr")
        product = rows.filter(has=page.get_by_role("cell", name="shop.Product", exact=True)).filter(
            has=page.get_by_role("cell", name="default", exact=True)
        )
        reading = page.locator("#seq-default-metrics-Reading-id")  # critical capacity, not behind
        product.get_by_role("checkbox").check()
        reading.get_by_role("checkbox").check()

        page.get_by_role("button", name="Resync selected…").click()

        expect(page.locator("#content h1")).to_have_text("Resync selected sequences")
        expect(page.locator("#resync-skipped")).to_contain_text("public.metrics_reading_id_seq (Reading.id)")
        confirm = page.get_by_role("button", name="Yes, resync 1 sequence")
        expect(confirm).to_be_visible()
        confirm.click()

        expect(page.locator(".messagelist .success")).to_contain_text("1 sequence resynced.")
    assert next_of(sequence_of(Product)) == 9
    assert list(
        SequenceResync.objects.filter(model="shop.Product").values_list("value_after", flat=True)
    ) == [9]


def test_select_all_checks_every_row_of_the_page(live_server, every_list_filled) -> None:
    base = live_server.url
    with browser_page(viewport={"width": 1400, "height": 900}) as page:
        log_in(page, base, "browser-admin", SEQUENCES)
        boxes = page.locator("#sequence-table tbody input.action-select")
        expect(boxes.nth(1)).to_be_attached()  # count() does not wait: the table may still be loading

        page.locator("#sequence-table thead input.integrity-select-all").check()

        assert boxes.evaluate_all("boxes => boxes.every(b => b.checked)")
