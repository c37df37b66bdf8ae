"""The merge room's job: merge every group of a rule, a batch of groups per unit (``integrity.jobs``)."""

from __future__ import annotations

from typing import Any

from integrity.conf import settings
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import get_rule
from integrity.jobs.runner import Unit
from integrity.merge import bulk
from integrity.models import Job

LISTED = 100  # skipped groups listed in the result at most


def merge_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Every group of the rule merged, a batch of ``INTEGRITY_MERGE_BATCH`` per unit, each group its own transaction."""
    rule = get_rule(job.params["rule"])
    policy = job.params["policy"]
    bulk.check_policy(policy)
    merged = 0
    skipped: list[list[str]] = []
    skip: list[str] = []
    total, _rows = duplicates.totals(rule)
    unit.progress(0, total)
    while True:
        # A stop is looked at between batches (unit.progress), so each batch is merged whole.
        batch = bulk.merge_all(rule, policy, user=job.user, limit=settings.MERGE_BATCH, skip=skip)
        merged += len(batch.merged)
        skip += [str(pk) for pk, _why in batch.skipped]
        skipped += [[str(pk), why] for pk, why in batch.skipped]
        done = merged + len(skip)
        outcome = {"merged": merged, "skipped_count": len(skip), "skipped": skipped[:LISTED]}
        last = batch.remaining <= 0 or not (batch.merged or batch.skipped)
        unit.progress(done, max(total, done + batch.remaining), check=not last, **outcome)
        if last:
            return outcome
