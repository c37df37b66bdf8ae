"""The merge room's job: merge every group of a rule, a batch of groups per unit (``integrity.jobs``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from integrity.conf import settings
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import RuleNotFound, get_rule
from integrity.jobs.runner import Unit
from integrity.merge import bulk
from integrity.models import Job
from integrity.pages import PageAdmin, with_query

LISTED = 100  # skipped groups listed in the result at most


def merge_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Every group of the rule merged, a batch of ``INTEGRITY_MERGE_BATCH`` per unit, each group its own transaction."""
    rule = get_rule(job.params["rule"])
    policy = job.params["policy"]
    bulk.check_policy(policy)
    merged = 0
    skipped: list[list[str]] = []
    skip: list[str] = []
    records: list[int] = list(job.result.get("records", []))  # [first, last] made, kept when resumed
    # Counted once, with the job's timeout: the page's would end a job on a big table before it starts.
    total, _rows = duplicates.totals(rule, timeout_ms=settings.JOB_SCAN_TIMEOUT_MS)
    unit.progress(0, total)
    while True:
        # A stop is looked at between batches (unit.progress), so each batch is merged whole.
        batch = bulk.merge_all(
            rule,
            policy,
            user=job.user,
            limit=settings.MERGE_BATCH,
            skip=skip,
            timeout_ms=settings.JOB_SCAN_TIMEOUT_MS,  # each batch finds its groups: the job's timeout, too
        )
        merged += len(batch.merged)
        if batch.merged:
            records = [records[0] if records else batch.merged[0].pk, batch.merged[-1].pk]
        skip += [str(pk) for pk, _why in batch.skipped]
        skipped += [[str(pk), why] for pk, why in batch.skipped]
        done = merged + len(skip)
        outcome = {
            "merged": merged,
            "skipped_count": len(skip),
            "skipped": skipped[:LISTED],
            "records": records,  # the first and the last merge record made
        }
        last = batch.remaining <= 0 or not (batch.merged or batch.skipped)
        unit.progress(done, max(total, done + batch.remaining), check=not last, **outcome)
        if last:
            return outcome


def merge_result(admin: PageAdmin, request: HttpRequest, job: Job) -> dict[str, Any]:
    """A merge-all job's page: links to the first and the last record it made, and to the merge log."""
    records = [int(pk) for pk in job.result.get("records", [])]
    if not records:
        return {}
    site = admin.admin_site.name
    first, last = records[0], records[-1]
    log_url = reverse(f"{site}:integrity_mergerecord_changelist")
    try:
        log_url = with_query(log_url, model__exact=get_rule(job.params.get("rule", "")).label)
    except RuleNotFound:
        pass  # the rule is gone: the whole log
    return {
        "first": first,
        "last": last,
        "first_url": reverse(f"{site}:integrity_mergerecord_change", args=[first]),
        "last_url": reverse(f"{site}:integrity_mergerecord_change", args=[last]),
        "log_url": log_url,
    }
