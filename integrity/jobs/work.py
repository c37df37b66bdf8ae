"""The work of each kind of job, one function per kind: ``(job, unit) -> result``.

Each reports its progress per unit (a chunk of a scan, a rule, a batch of
groups, a sequence) through ``unit.progress``, which raises ``Cancelled`` when
a stop was asked: between two units, so whatever a unit changes (a merge, a
resync) is complete or untouched. Results are JSON, bounded in size.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity.conf import settings
from integrity.duplicates import build, enforce, enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import Rule, get_rule, rules_for
from integrity.jobs.runner import Cancelled, Unit
from integrity.merge import bulk
from integrity.models import EnforceRun, Job

LISTED = 100  # skipped groups, failed sequences... listed in a result at most


def _json(value: Any) -> Any:
    """``value`` as JSON holds it (dates, decimals, UUIDs as text), as the result is stored and read back."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def scan_groups(rule: Rule, unit: Unit) -> tuple[list[duplicates.Group], int, int, bool]:
    """(first groups, total groups, total rows, complete) of ``rule``, in chunks when the app has them.

    The one switch between the chunked scan (``integrity.duplicates.chunked``)
    and the one-statement scan with the job's own timeout.
    """
    try:
        from integrity.duplicates import chunked  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        chunked = None
    if chunked is not None:
        found = chunked.scan_chunked(
            rule,
            sample=settings.GROUP_SAMPLE_SIZE,
            should_stop=unit.should_stop,
            progress=lambda done, total: unit.progress(done, total, check=False),
        )
        return list(found.groups), found.total_groups, found.total_rows, found.complete
    unit.progress(0, 1, check=False)
    result = duplicates.scan(rule, limit=settings.JOB_RESULT_GROUPS, timeout_ms=settings.JOB_SCAN_TIMEOUT_MS)
    unit.progress(1, 1, check=False)
    return result.groups, result.total_groups, result.total_rows, True


def scan(job: Job, unit: Unit) -> dict[str, Any]:
    rule = get_rule(job.params["rule"])
    taken_at = timezone.now().isoformat()
    groups, total_groups, total_rows, complete = scan_groups(rule, unit)
    kept = groups[: settings.JOB_RESULT_GROUPS]
    result = {
        "rule": rule.key,
        "taken_at": taken_at,
        "total_groups": total_groups,
        "total_rows": total_rows,
        "complete": complete,
        "groups": _json([{"key": list(g.key), "size": g.size, "pks": g.pks} for g in kept]),
    }
    if unit.cancelled or not complete:
        unit.job.result = result
        raise Cancelled
    return result


def scan_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Every rule the database does not enforce, counted; a rule per unit."""
    found = rules_for()
    states = enforcement.classify(found)
    todo = [
        r for r in found if states[r.key].state in enforcement.NOT_ENFORCED_STATES and states[r.key].scannable
    ]
    rows: list[dict[str, Any]] = []
    unit.progress(0, len(todo))
    for i, rule in enumerate(todo, start=1):
        row: dict[str, Any] = {"rule": rule.key, "label": rule.label, "description": rule.description}
        try:
            row["groups"], row["rows"] = duplicates.totals(rule, timeout_ms=settings.JOB_SCAN_TIMEOUT_MS)
        except duplicates.ScanTimedOut:
            row["error"] = _("timed out after %(ms)s ms") % {"ms": settings.JOB_SCAN_TIMEOUT_MS}
        except DatabaseError as exc:
            row["error"] = str(exc).strip()
        rows.append(row)
        unit.progress(i, len(todo), rules=rows)
    return {"rules": rows, "taken_at": timezone.now().isoformat()}


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


def enforce_rule(job: Job, unit: Unit) -> dict[str, Any]:
    """The Enforce build of the run the page recorded; the run's page shows its steps."""
    rule = get_rule(job.params["rule"])
    run = EnforceRun.objects.get(pk=job.params["run"])
    plan = enforce.plan_for(rule)
    unit.progress(0, 1)
    if plan.action != enforce.BUILD or plan.token != job.params.get("token"):
        message = _("The rule's state changed since the confirmation was shown: nothing was changed.")
        build.record(run, status=EnforceRun.REFUSED, message=message)
        raise RuntimeError(message)
    build.execute(plan, run)
    if run.status != EnforceRun.DONE:
        raise RuntimeError(run.message)
    return {"run": run.pk, "message": run.message}


def resync_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Each sequence named moved past its data, one per unit (each its own transaction)."""
    from integrity import sequences

    keys = list(job.params["keys"])
    changed, failed = 0, []
    unit.progress(0, len(keys))
    for i, key in enumerate(keys, start=1):
        alias, label, column = key.split(":", 2)
        try:
            changed += int(sequences.resync(alias, label, column, user=job.user).changed)
        except (sequences.SequenceNotFound, sequences.ResyncRefused) as exc:
            failed.append(f"{label}.{column} ({alias}): {exc}")
        unit.progress(i, len(keys), changed=changed, failed=failed[:LISTED])
    return {"changed": changed, "failed": failed[:LISTED]}


def prune(job: Job, unit: Unit) -> dict[str, Any]:
    from integrity.events import retention

    unit.progress(0, 1)
    found = retention.prune(
        timedelta(seconds=int(job.params["older_than_seconds"])), dry_run=bool(job.params.get("dry_run"))
    )
    return {"samples": found.samples, "groups": found.groups, "reset": found.reset, "dry_run": found.dry_run}


WORK = {
    Job.SCAN: scan,
    Job.SCAN_ALL: scan_all,
    Job.MERGE_ALL: merge_all,
    Job.ENFORCE: enforce_rule,
    Job.RESYNC_ALL: resync_all,
    Job.PRUNE: prune,
}
