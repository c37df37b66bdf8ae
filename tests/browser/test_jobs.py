"""Real browser: merge every group as a job run by a real db_worker, followed on the job's page until it ends.

The data is written before the browser starts and checked after it is closed
(no database access while it is open); the worker is its own process.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from playwright.sync_api import expect

from integrity.duplicates.rules import Rule
from integrity.models import Job, MergeRecord
from tests.helpers import PASSWORD, browser_page, log_in
from tests.jobs.workers import db_worker
from tests.merging.models import Person

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "other"]),
    pytest.mark.usefixtures("restore_sequences"),  # the rows inserted move sequences
]


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_merge_every_group_runs_as_a_job_and_its_page_shows_it_finish(live_server, rule: Rule) -> None:
    Person.objects.bulk_create(
        Person(email=f"g{i}@example.com", name=str(j)) for i in range(40) for j in range(2)
    )
    get_user_model().objects.create_superuser("jobber", "j@example.com", PASSWORD)
    base = live_server.url
    rule_path = f"/admin/integrity/duplicaterule/rule/?rule={rule.key}"
    with db_worker(), browser_page() as page:
        log_in(page, base, "jobber", "/admin/integrity/duplicaterule/")
        page.goto(f"{base}{rule_path}")
        page.locator("#merge-all-form [type=submit]").click()
        page.get_by_role("button", name=re.compile("Yes, merge 40 groups")).click()
        expect(page).to_have_url(re.compile(r"/admin/integrity/job/\d+/$"))
        # The page polls while the job runs, then reloads with the result.
        expect(page.locator("#job-status")).to_have_attribute("data-status", "finished", timeout=90_000)
        expect(page.locator("#job-result")).to_contain_text("40 groups merged")
        expect(page.locator("#job-progress progress")).to_have_attribute("value", "40")
        expect(page.locator("#job-cancel")).to_have_count(0)
        page.locator("#merge-all-done a", has_text="See them in the merge log").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(40)
        page.goto(f"{base}/admin/integrity/job/")
        expect(page.locator("#job-table tbody tr").first).to_have_attribute("data-status", "finished")
    job = Job.objects.get()
    assert (job.kind, job.status, job.done, job.total) == (Job.MERGE_ALL, Job.FINISHED, 40, 40)
    assert MergeRecord.objects.count() == 40 and Person.objects.count() == 40


@override_settings(INTEGRITY_TASK_BACKEND="db", INTEGRITY_SCAN_CHUNK_ROWS=10)
def test_scan_every_rule_and_prune_start_jobs_from_their_pages(live_server, rule: Rule) -> None:
    Person.objects.bulk_create(
        Person(email=f"s{i}@example.com", name=str(j)) for i in range(12) for j in range(3)
    )
    get_user_model().objects.create_superuser("scanner", "s@example.com", PASSWORD)
    base = live_server.url
    with db_worker(INTEGRITY_SCAN_CHUNK_ROWS=10), browser_page() as page:
        log_in(page, base, "scanner", "/admin/integrity/duplicaterule/")
        page.locator("#scan-all-job-form [type=submit]").click()
        expect(page).to_have_url(re.compile(r"/admin/integrity/job/\d+/$"))
        expect(page.locator("#job-status")).to_have_attribute("data-status", "finished", timeout=90_000)
        named = re.compile(rf"^{re.escape(rule.label)}: {re.escape(rule.description)}$")
        row = page.locator("#job-result tr").filter(has=page.locator("td", has_text=named))
        expect(row.locator("td.num").first).to_have_text("12")
        expect(row.locator("td.num").nth(1)).to_have_text("36")
        page.goto(f"{base}/admin/integrity/eventgroup/")
        page.locator("#events-prune-days").fill("7")
        page.get_by_role("button", name="Prune as a job").click()
        expect(page).to_have_url(re.compile(r"/admin/integrity/job/\d+/$"))
        expect(page.locator("#job-status")).to_have_attribute("data-status", "finished", timeout=90_000)
        expect(page.locator("#job-result")).to_contain_text("0 samples and 0 groups removed")
    kinds = dict(Job.objects.values_list("kind", "status"))
    assert kinds == {Job.SCAN_ALL: Job.FINISHED, Job.PRUNE: Job.FINISHED}
    assert Person.objects.count() == 36  # a scan changes nothing
