"""The merge room's job: merge every group of a rule, from one chunked scan, a group at a time (``integrity.jobs``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from integrity.conf import settings
from integrity.duplicates import chunked
from integrity.duplicates.rules import RuleNotFound, get_rule
from integrity.duplicates.service import GROUP_LIMIT
from integrity.jobs.runner import Cancelled, Unit
from integrity.merge import bulk
from integrity.models import Job
from integrity.pages import PageAdmin, with_query

LISTED = 100  # skipped groups listed in the result at most
EVERY = 2**62  # groups the scan keeps: all of them (each with its first GROUP_LIMIT pks)
SCANNING, MERGING, DONE = "scanning", "merging", "done"  # the job's phase, as its progress says it


def merge_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Every group of the rule merged, each its own transaction, from one chunked scan of the table.

    The scan (units of ``INTEGRITY_SCAN_CHUNK_ROWS`` rows, each with the job's
    timeout) lists every group once; then each is merged as scanned (its
    members read again and checked under lock), a cancel looked at before each
    group; at the end one more (counting) scan says how many groups are left.
    """
    rule = get_rule(job.params["rule"])
    policy = job.params["policy"]
    bulk.check_policy(policy)
    records: list[int] = list(job.result.get("records", []))  # [first, last] made, kept when resumed
    timeout = settings.JOB_SCAN_TIMEOUT_MS  # the page's would end a job on a big table
    found = chunked.scan_chunked(
        rule,
        sample=GROUP_LIMIT,
        limit=EVERY,
        timeout_ms=timeout,
        should_stop=unit.should_stop,
        progress=lambda done, total: unit.progress(done, total, check=False, phase=SCANNING),
    )
    if not found.complete:
        raise Cancelled
    groups, total = found.groups, len(found.groups)
    del found
    unit.progress(0, total, phase=MERGING)
    every = settings.MERGE_BATCH

    def outcome(result: bulk.MergeAllResult) -> dict[str, Any]:
        made = (
            [records[0] if records else result.merged[0].pk, result.merged[-1].pk]
            if result.merged
            else records
        )
        return {
            "merged": result.made,
            "skipped_count": len(result.skipped),
            "skipped": [[str(pk), why] for pk, why in result.skipped[:LISTED]],
            "records": made,  # the first and the last merge record made
        }

    def progress(result: bulk.MergeAllResult) -> None:
        done = result.made + len(result.skipped)
        if done % every == 0 or done == total:  # the job's row written once a batch, not once a group
            unit.progress(done, total, check=False, **outcome(result))

    def count_left() -> int:
        left = chunked.scan_chunked(rule, limit=0, timeout_ms=timeout, should_stop=unit.should_stop)
        if not left.complete:
            raise Cancelled  # every group of the list is done; only the count of what is left was stopped
        return left.total_groups

    result = bulk.merge_all(
        rule,
        policy,
        groups=groups,
        user=job.user,
        should_stop=unit.should_stop,
        progress=progress,
        timeout_ms=timeout,
        count_left=count_left,
        keep_all=False,  # the job keeps counts and its first and last record, not every record
    )
    done = result.made + len(result.skipped)
    final = {**outcome(result), "phase": DONE if not result.stopped else MERGING}
    if result.stopped:
        unit.progress(done, total, check=False, **final)
        raise Cancelled
    # The list is done (a stop raised above): the groups there are now, skipped ones included.
    return {**final, "remaining": result.left}


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
