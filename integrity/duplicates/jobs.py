"""The duplicates room's jobs: scan a rule, scan every unenforced rule, an Enforce build; a scan's result page.

Run by ``integrity.jobs`` (``tasks.WORK`` names them): each ``(job, unit) -> result``
reports per unit through ``unit.progress``, which raises ``Cancelled`` between
two units when a stop was asked. Results are JSON, bounded.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django_tables2 import RequestConfig

from integrity.conf import settings
from integrity.duplicates import build, chunked, enforce, enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import Rule, RuleNotFound, get_rule, rules_for
from integrity.duplicates.tables import GroupTable
from integrity.jobs.runner import Cancelled, Unit
from integrity.models import EnforceRun, Job
from integrity.pages import PageAdmin


def as_json(value: Any) -> Any:
    """``value`` as JSON holds it (dates, decimals, UUIDs as text), as the result is stored and read back."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def scan_groups(rule: Rule, unit: Unit, *, limit: int) -> chunked.ChunkedScan:
    """The rule's ``limit`` largest groups and its totals, in chunks of ``INTEGRITY_SCAN_CHUNK_ROWS`` rows.

    Each unit of the chunked scan has the job's own timeout; a cancel stops it
    between two units (``complete`` is then False).
    """
    return chunked.scan_chunked(
        rule,
        sample=settings.GROUP_SAMPLE_SIZE,
        limit=limit,
        timeout_ms=settings.JOB_SCAN_TIMEOUT_MS,
        should_stop=unit.should_stop,
        progress=lambda done, total: unit.progress(done, total, check=False),
    )


def scan(job: Job, unit: Unit) -> dict[str, Any]:
    rule = get_rule(job.params["rule"])
    taken_at = timezone.now().isoformat()
    found = scan_groups(rule, unit, limit=settings.JOB_RESULT_GROUPS)
    result = {
        "rule": rule.key,
        "taken_at": taken_at,
        "total_groups": found.total_groups,
        "total_rows": found.total_rows,
        "complete": found.complete,
        "groups": as_json([{"key": list(g.key), "size": g.size, "pks": g.pks} for g in found.groups]),
    }
    if unit.cancelled or not found.complete:
        unit.job.result = result
        raise Cancelled
    return result


def scan_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Every rule the database does not enforce, counted (chunked, like a scan job); a rule per unit."""
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
            # Totals only: no group is kept, and no progress per chunk (a unit here is a rule).
            counted = chunked.scan_chunked(
                rule, limit=0, timeout_ms=settings.JOB_SCAN_TIMEOUT_MS, should_stop=unit.should_stop
            )
        except duplicates.ScanTimedOut:
            row["error"] = _("timed out after %(ms)s ms") % {"ms": settings.JOB_SCAN_TIMEOUT_MS}
        except DatabaseError as exc:
            row["error"] = str(exc).strip()
        else:
            if not counted.complete:
                raise Cancelled  # mid-rule: the rules counted so far are the result, not this one's part
            row["groups"], row["rows"] = counted.total_groups, counted.total_rows
        rows.append(row)
        unit.progress(i, len(todo), rules=rows)
    return {"rules": rows, "taken_at": timezone.now().isoformat()}


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


def stored_groups(result: dict[str, Any]) -> list[duplicates.Group]:
    """The groups a scan job kept, as the rule page's table shows them."""
    return [
        duplicates.Group(tuple(g["key"]), int(g["size"]), list(g["pks"])) for g in result.get("groups", [])
    ]


def scan_result(admin: PageAdmin, request: HttpRequest, job: Job) -> dict[str, Any]:
    """A scan job's page: the stored groups as the rule page's table, paginated, with when they were taken."""
    if job.result.get("groups") is None:
        return {}
    try:
        rule = get_rule(job.params.get("rule", ""))
    except RuleNotFound:
        return {"rule_gone": True}
    groups = stored_groups(job.result)
    site = admin.admin_site.name
    table = GroupTable(groups, rule=rule, group_url=reverse(f"{site}:integrity_duplicaterule_group"))
    RequestConfig(request, paginate={"per_page": max(settings.GROUPS_PER_PAGE, 1)}).configure(table)
    rule_url = reverse(f"{site}:integrity_duplicaterule_rule") + "?" + urlencode({"rule": rule.key})
    return {
        "rule": rule,
        "table": table,
        "taken_at": parse_datetime(job.result.get("taken_at", "")),
        "kept": len(groups),
        "rule_url": rule_url,
    }
