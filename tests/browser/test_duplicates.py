"""Real-browser tests of the duplicates pages (headless Chromium via Playwright).

As in ``tests/browser/test_sequences.py``: the data is written before the browser starts (the
live server answers from its own thread), nothing touches the database while
the browser is open.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Locator, Page, Request, expect

from demo import seed
from demo.crm.models import Company, Customer
from tests.helpers import (
    PASSWORD,
    browser_page,
    log_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

RULES_PAGE = "/admin/integrity/duplicaterule/"
VAT_KEY = "default:crm.Company:unique:vat_number"  # missing in the database: migration 0002 dropped it
TAG_KEY = "default:shop.Tag:unique:name"  # enforced


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("browser-admin", "browser@example.com", PASSWORD)
    return "browser-admin"


@pytest.fixture
def companies_imported_three_times() -> None:
    """One company under three spellings sharing a VAT number, another under two."""
    seed.reset()
    rows = [
        ("Acme Ltd", "GB123456789"),
        (" Acme Ltd", "GB123456789"),
        ("acme ltd", "GB123456789"),
        ("Globex GmbH", "DE811907980"),
        ("Globex", "DE811907980"),
        ("Initech", "FR40303265045"),
    ]
    Company.objects.bulk_create(Company(name=n, vat_number=v) for n, v in rows)
    Customer.objects.bulk_create(
        Customer(email=f"c{i}@example.com", name=f"C{i}", company_id="Acme Ltd") for i in range(2)
    )


def rule_row(page: Page, key: str) -> Locator:
    return page.locator(f'#rule-table tr[data-rule="{key}"]')


def test_counts_fill_in_lazily_then_a_group_opens_side_by_side(
    live_server, superuser, companies_imported_three_times
) -> None:
    base = live_server.url
    counted: list[str] = []

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.path == f"{RULES_PAGE}count/":
            counted.append(parse_qs(parts.query)["rule"][0])

    with browser_page() as page:
        log_in(page, base, superuser, "/admin/integrity/")
        page.on("request", on_request)

        response = page.goto(f"{base}{RULES_PAGE}?show=all")  # enforced rules too (not shown by default)
        # The page arrives without any count: a placeholder per rule not enforced.
        assert response is not None
        served = response.text()
        assert re.search(rf'data-rule="{re.escape(VAT_KEY)}".*?counting…', served, re.S)
        assert "2 groups" not in served

        vat = rule_row(page, VAT_KEY)
        expect(vat.locator("td.groups")).to_have_text("2 groups")  # filled in by its own request
        expect(vat.locator("td.rows")).to_have_text("5")
        expect(vat.locator(".integrity-badge")).to_have_text("missing")
        tag = rule_row(page, TAG_KEY)
        expect(tag.locator("td.groups")).to_have_text("— verify")
        assert VAT_KEY in counted
        assert TAG_KEY not in counted  # enforced: never scanned
        assert len(counted) == len(set(counted))  # one request per rule

        vat.get_by_role("link", name="2 groups").click()
        expect(page.locator("#integrity-summary")).to_contain_text(
            "2 groups of duplicates, 5 rows involved: 3 would have to go for the rule to hold."
        )
        first = page.locator("#group-table tbody tr").first
        expect(first.locator("td.key")).to_have_text("vat_number GB123456789")

        first.get_by_role("link", name="Compare side by side").click()
        members = page.locator("#member-table th.member")
        expect(members).to_have_count(3)
        name = page.locator('#member-table tr[data-field="name"]')
        vat_number = page.locator('#member-table tr[data-field="vat_number"]')
        expect(name.locator("td")).to_have_text(["Acme Ltd", "␣Acme Ltd", "acme ltd"])
        # The leading space is a marker of its own, styled unlike the text and named in its title.
        marker = name.locator("td").nth(1).locator(".integrity-invisible")
        expect(marker).to_have_count(1)
        expect(marker).to_have_attribute("title", "U+0020 SPACE")
        border = "el => getComputedStyle(el).borderTopStyle"
        assert marker.evaluate(border) == "dotted"
        expect(vat_number.locator(".integrity-invisible")).to_have_count(0)  # only where members differ
        expect(name).to_have_class(re.compile(r"\bdiffers\b"))
        expect(vat_number).not_to_have_class(re.compile(r"\bdiffers\b"))
        # The highlight is visible: the differing row is painted unlike an agreeing one.
        painted = "el => getComputedStyle(el).backgroundColor"
        assert name.locator("td").first.evaluate(painted) != vat_number.locator("td").first.evaluate(painted)
        references = page.locator('#member-table tr[data-relation="crm.Customer.company"] td')
        expect(references).to_have_text(["2", "0", "0"])
        expect(page.locator("#merge-form")).to_be_visible()  # a superuser may merge the group


def test_without_javascript_the_placeholder_is_a_link_to_the_rule(
    live_server, superuser, companies_imported_three_times
) -> None:
    base = live_server.url
    with browser_page(java_script_enabled=False) as page:
        log_in(page, base, superuser, RULES_PAGE)
        vat = rule_row(page, VAT_KEY)
        # Nothing fills it in: the link says what it does instead of "counting…" forever.
        expect(vat.locator("td.groups")).to_have_text(
            "Count the duplicates of this rule", use_inner_text=True
        )

        vat.get_by_role("link", name="Count the duplicates of this rule").click()

        expect(page.locator("#integrity-summary")).to_contain_text("2 groups of duplicates, 5 rows involved")
