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


NO_OVERLAP = """table => [...table.querySelectorAll("tr")].filter(tr => tr.querySelector("th[scope=row]")).map(tr => {
    const th = tr.querySelector("th[scope=row]").getBoundingClientRect();
    const td = tr.querySelector("td").getBoundingClientRect();
    return [tr.dataset.field || tr.dataset.relation || tr.dataset.choice || tr.dataset.fieldChoice, th.right - td.left];
})"""
COLUMNS = """table => [...table.querySelectorAll("th.member, tr[data-choice=survivor] td, tr[data-field-choice] td")]
    .map(cell => [cell.closest("tr").rowIndex, cell.cellIndex, Math.round(cell.getBoundingClientRect().left)])"""


@pytest.mark.parametrize("width", [420, 1400])
def test_the_merge_form_lines_up_with_the_comparison_and_no_label_overlaps(
    live_server, superuser, demo, width: int
) -> None:
    acme = Company.objects.get(name="Acme Ltd")
    base = live_server.url
    with browser_page(viewport={"width": width, "height": 900}) as page:
        log_in(page, base, superuser, "/admin/integrity/duplicaterule/")
        page.goto(f"{base}/admin/integrity/duplicaterule/group/?rule={VAT_KEY}&pk={acme.pk}")
        table = page.locator("#member-table")
        expect(table.locator("#merge-choices tr[data-choice=survivor] td")).to_have_count(3)
        overlaps = table.evaluate(NO_OVERLAP)
        columns = table.evaluate(COLUMNS)
    assert [row for row, over in overlaps if over > 0.5] == []  # every label ends before its row's values
    lefts: dict[int, set[int]] = {}
    for _row, column, left in columns:
        lefts.setdefault(column, set()).add(left)
    assert len(lefts) == 3 and all(len(found) == 1 for found in lefts.values())  # one left edge per member


def totals(page: Any) -> dict[str, str]:
    """The three numbers of ``#merge-totals`` (the preview's and the record's): moved, deleted, changed."""
    cells = page.locator("#merge-totals dd")
    return {cell.get_attribute("data-total"): cell.inner_text() for cell in cells.all()}


def test_the_previews_counts_are_the_merges_result_with_a_conflict_choice(
    live_server, superuser, demo
) -> None:
    """Choose the conflicting row on the preview: its numbers change at once, and the record says the same."""
    acme = Company.objects.get(name="Acme Ltd")
    others = list(Company.objects.filter(vat_number=acme.vat_number).exclude(pk=acme.pk).order_by("pk"))
    mine = BillingProfile.objects.get(company=acme)
    base = live_server.url
    with browser_page() as page:
        log_in(page, base, superuser, "/admin/integrity/duplicaterule/")
        page.goto(f"{base}/admin/integrity/duplicaterule/group/?rule={VAT_KEY}&pk={acme.pk}")
        expect(page.locator("h1")).to_have_text(f"vat_number = '{acme.vat_number}' – 3 rows")
        page.get_by_role("button", name="Preview the merge").click()
        expect(page.locator("#merge-pending")).to_be_visible()  # the numbers wait for the choice
        before = totals(page)

        # Keeping the survivor's own billing profile deletes the duplicate's instead of moving it.
        conflict_id = page.locator("fieldset.integrity-conflict.unresolved").get_attribute("data-conflict")
        conflict = page.locator(f'fieldset[data-conflict="{conflict_id}"]')
        conflict.get_by_label(f"Keep row {mine.pk}").check()
        expect(page.locator("#merge-pending")).to_have_count(0)  # re-read, without a click
        expect(conflict.get_by_label(f"Keep row {mine.pk}")).to_be_checked()
        previewed = totals(page)
        assert int(previewed["moved"]) == int(before["moved"]) - 1
        assert int(previewed["deleted"]) == int(before["deleted"]) + 1

        page.get_by_role("button", name="Yes, merge").click()
        expect(page.locator(".messagelist .success")).to_contain_text(
            f"{previewed['moved']} references moved, {previewed['deleted']} rows deleted"
        )
        assert totals(page) == previewed  # the record's own numbers
        # Before the Undo: the deleted rows themselves, readable.
        deleted = page.locator('table.integrity-deleted-rows[data-model="crm.Company"]')
        expect(deleted.locator("thead th")).to_contain_text(["ID", "name"])
        expect(deleted.locator("tbody tr")).to_have_count(2)
        expect(deleted).to_contain_text("acme ltd")
        expect(page.get_by_role("button", name="Undo this merge…")).to_be_visible()

    record = MergeRecord.objects.get()
    assert (record.repointed, record.deleted) == (int(previewed["moved"]), int(previewed["deleted"]))
    assert list(Company.objects.filter(vat_number=acme.vat_number)) == [acme]
    assert BillingProfile.objects.filter(company__in=[c.pk for c in others]).count() == 0
    assert list(BillingProfile.objects.filter(company=acme)) == [mine]


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
        bar = page.locator("progress#merge-all-bar")
        expect(bar).to_have_attribute("max", str(groups))
        expect(page.get_by_role("button", name=f"Yes, merge {groups} groups")).to_have_count(0)
        stop = page.locator("#merge-all-stop-js")
        # The admin's button style, not the browser's grey one.
        admin_button = page.evaluate(
            "() => { const b = document.createElement('a'); b.className = 'button'; document.body.append(b);"
            " const c = getComputedStyle(b).backgroundColor; b.remove(); return c; }"
        )
        # Read in one task: the batches replace the button (innerHTML swaps) while the test runs.
        current = "() => getComputedStyle(document.getElementById('merge-all-stop-js')).backgroundColor"
        assert page.evaluate(current) == admin_button
        stop.click()
        expect(status).to_contain_text("Stopped:")
        done_box = page.locator("#merge-all-done .success")
        expect(done_box.get_by_role("link", name="See them in the merge log")).to_be_visible()
        stopped = status.inner_text()
        page.wait_for_timeout(500)  # nothing asks for another batch after a stop
        assert status.inner_text() == stopped
        bar_value = bar.get_attribute("value") or ""
        record_links = [a.get_attribute("href") for a in done_box.locator("a[href*='/mergerecord/']").all()]

    match = re.search(r"Stopped: (\d+) groups merged", stopped)
    assert match, stopped
    done = int(match.group(1))
    assert 1 <= done < groups
    assert MergeRecord.objects.count() == done  # each finished group recorded
    assert int(bar_value) == done
    records = list(MergeRecord.objects.order_by("pk").values_list("pk", flat=True))
    ends = [f"/admin/integrity/mergerecord/{pk}/change/" for pk in (records[0], records[-1])]
    assert record_links[: len(set(ends))] == list(dict.fromkeys(ends))  # the run's first and last record
    left = Person.objects.values("email").annotate(n=Count("*")).filter(n__gt=1).count()
    assert left == groups - done  # every other group untouched
    assert Person.objects.count() == 2 * groups - done
