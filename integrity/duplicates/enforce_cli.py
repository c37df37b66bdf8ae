"""``manage.py integrity enforce RULE [--dry-run] [--json]``: build the index of a rule whose duplicates are gone.

Exit status: 0 when the rule is enforced (now or already; with ``--dry-run``,
when there is SQL to run: it is printed and nothing is done); 1 when the build
is refused or fails (duplicates came in, the table stayed locked, another
build of the rule is running) and nothing was changed; 2 on bad arguments: an
unknown rule, or one Enforce cannot build (its migration is not applied: the
``migrate`` command is printed; a configured rule: the model ``Meta`` code is
printed; an unmanaged model, a missing table).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import OutputWrapper
from django.db import DatabaseError, connections

from integrity.cli import UsageError
from integrity.duplicates import build, enforce
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import RuleNotFound, get_rule
from integrity.models import EnforceRun

SAMPLE_GROUPS = 5


def add_parser(sub: Any) -> None:
    """The ``enforce`` sub-parser."""
    parser = sub.add_parser(
        "enforce",
        help="Build the unique index a rule declares once its duplicates are gone (CONCURRENTLY); "
        "exit 1 if refused, 2 if the rule is unknown or cannot be built this way.",
    )
    parser.add_argument(
        "rule", metavar="RULE", help="The rule's key, as 'integrity duplicates --json' prints it."
    )
    parser.add_argument("--dry-run", action="store_true", help="Print the SQL; change nothing.")
    parser.add_argument("--json", action="store_true", help="Print a JSON object instead of text.")
    parser.set_defaults(handler=enforce_command)


def enforce_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity enforce``: see the module for the exit status."""
    try:
        rule = get_rule(options["rule"])
    except RuleNotFound:
        raise UsageError(f"Unknown rule {options['rule']!r} (keys: 'integrity duplicates --json').") from None
    if connections[rule.database].vendor != "postgresql":
        raise UsageError(f"{rule.database}: Enforce is only available on PostgreSQL.")
    plan = enforce.plan_for(rule)
    payload: dict[str, Any] = {
        "rule": rule.key,
        "action": plan.action,
        "reason": plan.reason or plan.enforcement.reason,
        "index": plan.index or plan.enforcement.index,
        "sql": plan.statements if plan.action == enforce.BUILD else [],
        "migrate_command": plan.migrate_command or None,
        "meta_code": plan.meta_code or None,
        "dry_run": options["dry_run"],
        "status": None,
        "message": "",
        "groups": [],
    }
    code = _outcome(plan, options["dry_run"], payload)
    _write(payload, options["json"], stdout, rule.display_name)
    if code:
        sys.exit(code)


def _outcome(plan: enforce.Plan, dry_run: bool, payload: dict[str, Any]) -> int:
    if plan.action == enforce.ENFORCED:
        payload["status"] = "enforced"
        return 0
    if plan.action != enforce.BUILD:
        payload["status"] = "refused"
        return 1 if plan.enforcement.busy else 2
    if dry_run:
        payload["status"] = "dry-run"
        return 0
    run = build.execute(plan, build.new_run(plan))
    payload.update(status=run.status, message=run.message, run=run.pk)
    if run.duplicates:
        payload["groups"] = _groups(plan)
    return 0 if run.status == EnforceRun.DONE else 1


def _groups(plan: enforce.Plan) -> list[dict[str, Any]]:
    try:
        result = duplicates.scan(plan.rule, limit=SAMPLE_GROUPS)
    except (duplicates.ScanTimedOut, DatabaseError):
        return []
    return [{"key": list(g.key), "size": g.size, "pks": g.pks} for g in result.groups]


def _write(payload: dict[str, Any], as_json: bool, stdout: OutputWrapper, named: str) -> None:
    """The outcome: ``payload`` as JSON (the rule by its key), or as text (the rule as ``named``)."""
    if as_json:
        stdout.write(json.dumps(payload, indent=2, default=str))
        return
    status = payload["status"]
    lines = [f"{named}: {payload['action']}"]
    if payload["reason"]:
        lines.append(f"  {payload['reason']}")
    if payload["sql"]:
        lines += ["", *(f"{s};" for s in payload["sql"]), ""]
    if payload["migrate_command"]:
        lines += ["", payload["migrate_command"]]
    if payload["meta_code"]:
        lines += ["", payload["meta_code"]]
    if status == "dry-run":
        lines.append("Dry run: nothing was changed.")
    elif payload["message"]:
        lines.append(payload["message"])
    lines += [f"  {g['size']} rows: {g['key']} (pks {g['pks']})" for g in payload["groups"]]
    stdout.write("\n".join(lines))
