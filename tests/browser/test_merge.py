"""Real-browser test of merging on the demo's data: group page, preview, a conflict to resolve, confirm, undo.

As in ``tests/browser/test_sequences.py``: the data is written before the browser starts and
checked after it is closed; the live server answers from its own thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from playwright.sync_api import expect

from demo import seed, seed_crm, seed_sales
from demo.crm.models import Company, Customer
from demo.sales.models import BillingProfile, CampaignTarget, Deal, Note
from integrity.models import MergeRecord
from tests.helpers import (
    PASSWORD,
    browser_page,
    log_in,
)
from tests.merging.models import Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases="__all__")]

VAT_KEY = "default:crm.Company:unique:vat_number"
TABLES = ["crm_company", "crm_customer", *seed_sales.TABLES]


@pytest.fixture
def demo() -> Iterator[None]:
    seed.load()
    yield
    seed_crm.undo_failed_concurrent_index()  # committed outside the test's reach


@pytest.fixture
def superuser() -> str:
    get_user_model().objects.create_superuser("merger", "merger@example.com", PASSWORD)
    return "merger"


def dump() -> dict[str, list[Any]]:
    out = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                f"SELECT row_to_json(t)::text FROM {connection.ops.quote_name(table)} t ORDER BY 1"
            )  # noqa: S608
            out[table] = [row[0] for row in cursor.fetchall()]
    return out


def test_merge_a_demo_group_after_its_preview_then_undo_it(live_server, superuser, demo) -> None:
    acme = Company.objects.get(name="Acme Ltd")
    spellings = list(Company.objects.filter(vat_number=acme.vat_number).order_by("pk"))
    assert [c.name for c in spellings] == ["Acme Ltd", " Acme Ltd", "acme ltd"]
    others = spellings[1:]
    other_billing = BillingProfile.objects.get(company=others[0])
    customers_of_others = Customer.objects.filter(company__in=[c.name for c in others]).count()
    before = dump()
    base = live_server.url
    group = f"/admin/integrity/duplicaterule/group/?rule={VAT_KEY}&pk={acme.pk}"

    with browser_page() as page:
        log_in(page, base, superuser, "/admin/integrity/duplicaterule/")
        page.goto(f"{base}{group}")
        form = page.locator("#merge-form")
        expect(form).to_be_visible()
        # Default survivor: the most referenced spelling.
        expect(form.locator(f"#survivor-{acme.pk}")).to_be_checked()
        page.get_by_role("button", name="Preview the merge").click()

        expect(page.locator("#merge-summary")).to_contain_text(
            f"2 rows of crm.Company will be merged into row {acme.pk}"
        )
        moves = page.locator("#merge-moves")
        expect(moves.locator('tr[data-relation="crm.Customer.company"] td.num').first).to_have_text(
            str(customers_of_others)
        )
        for relation in (
            "sales.Deal.company",
            "sales.Note.object_id",
            "sales.Tag.companies",
            "sales.CampaignTarget.company",
        ):
            expect(moves.locator(f'tr[data-relation="{relation}"]')).to_have_count(1)
        conflict = page.locator("fieldset.integrity-conflict.unresolved")
        expect(conflict).to_have_count(1)
        expect(conflict.locator("legend")).to_contain_text("sales.BillingProfile")

        page.get_by_role("button", name="Yes, merge").click()  # without choosing: refused
        expect(page.locator(".messagelist .error")).to_have_text(
            "Choose which row to keep for each conflict."
        )

        page.locator("fieldset.integrity-conflict.unresolved").get_by_label(
            f"Keep row {other_billing.pk}"
        ).check()
        page.get_by_role("button", name="Yes, merge").click()

        expect(page.locator(".messagelist .success")).to_contain_text(
            f"Merged 2 rows of crm.Company into row {acme.pk}"
        )
        expect(page.locator("#merge-status")).to_have_text("Merged")
        expect(page.locator("#survivor-link")).to_have_text(f"#{acme.pk}")

        page.get_by_role("button", name="Undo this merge…").click()
        page.get_by_role("button", name="Yes, undo the merge").click()
        expect(page.locator(".messagelist .success")).to_contain_text("The merge was undone")
        expect(page.locator("#merge-status")).to_contain_text("Undone")

    record = MergeRecord.objects.get()
    assert record.undone_at is not None and record.user is not None and record.user.username == "merger"
    assert record.data["deleted"][0]["model"] == "sales.BillingProfile"  # the survivor's own, chosen away
    assert dump() == before  # exactly what the database held before the merge


def test_the_merge_moved_everything_before_the_undo(live_server, superuser, demo) -> None:
    """The same merge, stopped before the undo: one Acme is left and every reference points at it."""
    acme = Company.objects.get(name="Acme Ltd")
    others = list(Company.objects.filter(vat_number=acme.vat_number).exclude(pk=acme.pk))
    billing = BillingProfile.objects.get(company=acme)
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, "/admin/integrity/duplicaterule/")
        page.goto(f"{base}/admin/integrity/duplicaterule/group/?rule={VAT_KEY}&pk={acme.pk}")
        page.get_by_role("button", name="Preview the merge").click()
        page.locator("fieldset.integrity-conflict.unresolved").get_by_label(f"Keep row {billing.pk}").check()
        page.get_by_role("button", name="Yes, merge").click()
        expect(page.locator(".messagelist .success")).to_contain_text("Merged 2 rows")

    assert list(Company.objects.filter(vat_number=acme.vat_number)) == [acme]
    assert not Customer.objects.filter(company__in=[c.name for c in others]).exists()
    assert Deal.objects.filter(company=acme).count() == 5
    assert (
        set(Note.objects.filter(object_id__in=[c.pk for c in others]).values_list("pk", flat=True)) == set()
    )
    assert CampaignTarget.objects.filter(company=acme).count() == 2  # Spring launch (collapsed) + Webinar
    assert list(BillingProfile.objects.filter(company=acme)) == [billing]


@override_settings(
    INTEGRITY_MERGE_BATCH=1,
    INTEGRITY_DUPLICATE_RULES=[{"model": "merging.Person", "fields": ["email"], "name": "email"}],
)
def test_merge_every_group_shows_progress_and_stops_between_batches(live_server, superuser) -> None:
    groups = 30
    Person.objects.bulk_create(Person(email=f"g{i}@example.com") for i in range(groups) for _ in range(2))
    base = live_server.url
    rule = "default:merging.Person:configured:email"
    with browser_page() as page:
        log_in(page, base, superuser, "/admin/integrity/duplicaterule/")
        page.goto(f"{base}/admin/integrity/duplicaterule/rule/?rule={rule}")
        page.locator("#merge-all-policy").select_option("oldest")
        page.get_by_role("button", name="Merge every group…").click()
        expect(page.locator("#merge-all-summary")).to_contain_text(f"{groups} groups, {2 * groups} rows.")
        page.get_by_role("button", name=f"Yes, merge {groups} groups").click()

        status = page.locator("#merge-all-status")
        expect(status).to_contain_text("groups merged,")  # progress, batch by batch
        expect(page.get_by_role("button", name=f"Yes, merge {groups} groups")).to_have_count(0)
        page.locator("#merge-all-stop-js").click()
        expect(status).to_contain_text("Stopped:")
        stopped = status.inner_text()
        page.wait_for_timeout(500)  # nothing asks for another batch after a stop
        assert status.inner_text() == stopped

    match = re.search(r"Stopped: (\d+) groups merged", stopped)
    assert match, stopped
    done = int(match.group(1))
    assert 1 <= done < groups
    assert MergeRecord.objects.count() == done  # each finished group recorded
    left = Person.objects.values("email").annotate(n=Count("*")).filter(n__gt=1).count()
    assert left == groups - done  # every other group untouched
    assert Person.objects.count() == 2 * groups - done
