"""Render the demo's main admin pages to the PNG files of ``docs/`` (shown in the README).

Run from the repository root, after a change to the pages::

    python docs/screenshots.py

It needs playwright (the Python package; no browser is downloaded: Debian's
``/usr/bin/chromium`` is used). Every run starts from scratch, so the pictures
are reproducible: it creates the database ``integrity_screenshots`` on the
embedded PostgreSQL server, starts ``python manage.py demo`` on it (the
README's demo command), logs in as admin / admin, triggers two real
IntegrityErrors on the demo's violations page, shoots each page in the light
and the dark colour scheme, then stops the demo and drops the database. The
PNG files are overwritten.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DATABASE = "integrity_screenshots"
USERNAME = PASSWORD = "admin"  # what the demo command prints
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
MAX_HEIGHT = 1200  # a taller page is cut after the last table row that fits: the top is what matters
MARGIN = 24  # below the content
TIMEOUT_MS = 30_000
VAT_RULE = "crm.Company"  # the rule with the three spellings of Acme Ltd
VAT_FIELD = "vat_number"
ACME_VAT = "GB123456789"  # the VAT number of its group

Scheme = Literal["light", "dark"]
SCHEMES: tuple[Scheme, ...] = ("light", "dark")


def server_url() -> str:
    """The embedded PostgreSQL server's URL (started if needed)."""
    sys.path.insert(0, str(ROOT))
    from demo import embedded

    return embedded.start()


def log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/integrity/")
    page.locator("#id_username").fill(USERNAME)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#login-form [type=submit]").click()
    expect(page).to_have_url(f"{base}/admin/integrity/")


def trigger_violations(page: Page, base: str) -> None:
    """Make real IntegrityErrors; the sequence one, made last, is the first group of the events page."""
    for name in ("unique", "sequence"):
        trigger(page, base, name)


def trigger(page: Page, base: str, name: str) -> None:
    """Click the Trigger button of one violations page: a 500 page, as expected."""
    path = f"/demo/violations/{name}/"
    page.goto(f"{base}/demo/violations/")
    with page.expect_response(lambda response: response.url.endswith(path)) as answer:
        page.locator(f"form[action$='{path}']").get_by_role("button", name="Trigger").click()
    if answer.value.status != 500:
        raise RuntimeError(f"violations page {name!r} answered {answer.value.status}, not 500")


def settle(page: Page) -> None:
    """Wait until the htmx requests a page fires on load have been answered."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("!document.querySelector('.htmx-request')")


def open_dashboard(page: Page, base: str) -> None:
    page.goto(f"{base}/admin/integrity/")


def open_sequences(page: Page, base: str) -> None:
    page.goto(f"{base}/admin/integrity/sequence/")
    expect(page.locator("#sequence-table")).to_contain_text("behind")


def open_vat_group(page: Page, base: str) -> None:
    """From the duplicate rules, the crm.Company vat_number rule, then its Acme Ltd group."""
    page.goto(f"{base}/admin/integrity/duplicaterule/")
    settle(page)
    row = page.locator("#rule-table tbody tr", has_text=VAT_RULE).filter(has_text=VAT_FIELD)
    row.locator("a.dup-count.found").first.click()
    group = page.locator("#group-table tbody tr", has_text=ACME_VAT)
    group.get_by_role("link", name="Compare side by side").first.click()
    expect(page.locator("#merge-form")).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text("Acme Ltd")


def open_merge_preview(page: Page, base: str) -> None:
    open_vat_group(page, base)
    page.get_by_role("button", name="Preview the merge").click()
    expect(page.locator("#merge-summary")).to_be_visible()


def open_event_group(page: Page, base: str) -> None:
    page.goto(f"{base}/admin/integrity/eventgroup/")
    settle(page)
    page.locator("#events-live").get_by_role("link", name="Details").first.click()
    expect(page.locator("#event-explanation")).to_be_visible()


SHOTS: list[tuple[str, Callable[[Page, str], None]]] = [
    ("1-dashboard", open_dashboard),
    ("2-sequences", open_sequences),
    ("3-duplicate-group", open_vat_group),
    ("4-merge-preview", open_merge_preview),
    ("5-event-group", open_event_group),
]


# The height to shoot: down to the end of the content, or, past MAX_HEIGHT, of the last table row that fits.
HEIGHT_JS = """([max, margin]) => {
  const bottom = (e) => e.getBoundingClientRect().bottom + window.scrollY;
  const content = document.querySelector("#content") || document.body;
  const full = Math.min(document.documentElement.scrollHeight, bottom(content) + margin);
  if (full <= max) return Math.ceil(full);
  let cut = 0;
  for (const row of content.querySelectorAll("tr")) {
    if (bottom(row) <= max) cut = Math.max(cut, bottom(row));
  }
  return Math.ceil(cut || max);
}"""


def shoot(page: Page, path: Path) -> None:
    settle(page)
    if "/admin/login/" in page.url:
        raise RuntimeError(f"{path.name}: landed on the login page")
    if not page.locator("#content-main").count():  # a server error page has none
        raise RuntimeError(f"{path.name}: {page.url} is not an admin page: {page.title()!r}")
    height = page.evaluate(HEIGHT_JS, [MAX_HEIGHT, MARGIN])
    page.screenshot(
        path=path,
        full_page=True,
        clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height},
        animations="disabled",
        caret="hide",
    )
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KB)")


def close_nav_sidebar(page: Page, base: str) -> None:
    """Fold the admin's navigation sidebar (remembered by the browser): it leaves the tables 280 px more."""
    page.goto(f"{base}/admin/integrity/sequence/")
    if page.locator("#main.shifted").count():
        page.locator("#toggle-nav-sidebar").click()
    expect(page.locator("#main")).not_to_have_class(re.compile(r"\bshifted\b"))


def check_scheme(page: Page, scheme: Scheme) -> None:
    """The admin follows prefers-color-scheme: its background must be dark exactly in the dark scheme."""
    rgb = page.evaluate(
        "getComputedStyle(document.body).backgroundColor.match(/[0-9.]+/g).slice(0, 3).map(Number)"
    )
    dark = sum(rgb) / 3 < 128
    if dark != (scheme == "dark"):
        raise RuntimeError(f"the {scheme} scheme shows a body background of rgb{tuple(rgb)}")


def shoot_scheme(browser: Browser, base: str, scheme: Scheme, first: bool) -> None:
    context = browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=1,
        color_scheme=scheme,
        locale="en-US",
        timezone_id="UTC",
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        log_in(page, base)
        check_scheme(page, scheme)
        close_nav_sidebar(page, base)
        if first:
            trigger_violations(page, base)
        for name, open_page in SHOTS:
            open_page(page, base)
            shoot(page, DOCS / f"{name}-{scheme}.png")
    finally:
        context.close()


def main() -> None:
    started = time.monotonic()
    sys.path.insert(0, str(ROOT))
    from demo import live

    with live.fresh_database(server_url(), DATABASE) as url, live.demo_server(url) as demo:
        print(f"demo up at {demo.base} after {time.monotonic() - started:.0f} s")
        expect.set_options(timeout=TIMEOUT_MS)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                for i, scheme in enumerate(SCHEMES):
                    shoot_scheme(browser, demo.base, scheme, first=i == 0)
            finally:
                browser.close()
    print(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
