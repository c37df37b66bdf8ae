"""``manage.py integrity duplicates``: every uniqueness rule checked against the data, for CI and cron.

Exit status: 0 when all is well; 1 when a scanned rule has duplicate groups,
and also when a scan timed out or failed (a check that could not finish has
not shown that the data is clean); 2 on bad arguments (unknown model or
database, a broken ``INTEGRITY_DUPLICATE_RULES``), in which case nothing is
done.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import OutputWrapper
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils.translation import gettext as _

from integrity.cli import UsageError, counted, format_table, resolve_databases, resolve_models, value_text
from integrity.conf import settings
from integrity.duplicates import enforce_cli, enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import Rule, describe, rules_for

DUPLICATE_COLUMNS = [
    ("database", "DATABASE"),
    ("model", "MODEL"),
    ("rule", "RULE"),
    ("enforcement", "ENFORCEMENT"),
    ("groups", "GROUPS"),
    ("rows", "ROWS"),
]
SAMPLE_GROUPS = 5  # groups shown per rule (JSON "sample" and the text details)


@dataclass
class Checked:
    """One rule, how the database enforces it, and what its scan found (if it was scanned)."""

    rule: Rule
    enforcement: enforcement.Enforcement
    result: duplicates.ScanResult | None = None
    timed_out: bool = False
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Duplicates found, or a scan that could not tell: exit status 1."""
        found = self.result is not None and self.result.total_groups > 0
        return found or self.timed_out or self.error is not None

    @property
    def rule_text(self) -> str:
        text = self.rule.description
        if self.rule.condition is not None:
            text += f" WHERE {self.rule.condition_text}"
        return text if self.rule.nulls_distinct else f"{text} NULLS NOT DISTINCT"

    @property
    def named(self) -> str:
        """The rule in the text output: ``crm.Customer: Lower(email)``, its database first when not the default.

        The key (an id, for ``integrity enforce`` and ``merge --rule``) is in ``--json``.
        """
        text = f"{self.rule.label}: {self.rule_text}"
        return text if self.rule.database == DEFAULT_DB_ALIAS else f"{self.rule.database} {text}"

    def as_json(self) -> dict[str, Any]:
        rule, result = self.rule, self.result
        return {
            "database": rule.database,
            "model": rule.label,
            "key": rule.key,
            "name": rule.name,
            "kind": rule.kind,
            "description": self.rule_text,
            "fields": list(rule.fields),
            "expression": rule.description if rule.is_expression else None,
            "condition": rule.condition_text or None,
            "nulls_distinct": rule.nulls_distinct,
            "source": rule.source,
            "enforcement": self.enforcement.state,
            "reason": self.enforcement.reason,
            "index": self.enforcement.index,
            "scanned": result is not None,
            "groups": None if result is None else result.total_groups,
            "rows": None if result is None else result.total_rows,
            "extra_rows": None if result is None else result.extra_rows,
            "timed_out": self.timed_out,
            "error": self.error,
            "sample": [
                {"key": list(g.key), "size": g.size, "pks": g.pks} for g in (result.groups if result else [])
            ],
        }

    def as_row(self) -> dict[str, Any]:
        groups: Any = None if self.result is None else self.result.total_groups
        if self.timed_out:
            groups = "timed out"
        elif self.error is not None:
            groups = "error"
        return {
            "database": self.rule.database,
            "model": self.rule.label,
            "rule": self.rule_text,
            "enforcement": self.enforcement.state,
            "groups": groups,
            "rows": None if self.result is None else self.result.total_rows,
        }


def add_parsers(sub: Any) -> None:
    """The ``duplicates`` sub-parser (``sub`` is the command's sub-parsers action)."""
    dup = sub.add_parser(
        "duplicates",
        help="Every uniqueness rule, whether the database enforces it, and its duplicate groups; "
        "exit 1 if a rule that is not enforced has duplicates.",
    )
    dup.add_argument("--database", nargs="+", action="extend", default=[], metavar="ALIAS")
    dup.add_argument("--model", nargs="+", action="extend", default=[], metavar="app_label.Model")
    dup.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    dup.add_argument(
        "--verify",
        action="store_true",
        help="Scan the rules the database enforces too (normally skipped).",
    )
    dup.add_argument(
        "--timeout",
        type=int,
        default=None,
        metavar="MS",
        help="Statement timeout of each scan in ms (default: INTEGRITY_SCAN_TIMEOUT_MS; 0: none).",
    )
    # Also accepted after the sub-command; 2 prints progress even when stderr is not a terminal.
    dup.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    dup.set_defaults(handler=duplicates_command)
    enforce_cli.add_parser(sub)


def duplicates_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity duplicates``: every rule, its enforcement and its groups; exit 1 on duplicates or a failed scan."""
    models = resolve_models(options["model"])
    databases = resolve_databases(options["database"])
    timeout = options["timeout"]
    if timeout is not None and timeout < 0:
        raise UsageError("--timeout must be 0 (no limit) or a number of milliseconds.")
    try:
        found = rules_for(databases, models)
    except ImproperlyConfigured as exc:
        raise UsageError(str(exc)) from exc
    for alias in databases or list(connections):
        vendor = connections[alias].vendor
        if vendor != "postgresql":
            stderr.write(f"{alias}: duplicate check not available for {vendor} yet.")
    states = enforcement.classify(found)
    checked = [Checked(rule, states[rule.key]) for rule in found]
    _scan(checked, options["verify"], timeout, options["verbosity"], stderr)
    aliases = list(connections)
    checked.sort(
        key=lambda c: (
            not c.failed,
            enforcement.STATES.index(c.enforcement.state),
            aliases.index(c.rule.database),
            c.rule.label,
            c.rule.name,
        )
    )
    if options["json"]:
        payload = [c.as_json() for c in checked]
        stdout.write(json.dumps(payload, indent=2, cls=DjangoJSONEncoder))
    else:
        _write_duplicates(checked, timeout, stdout)
    if any(c.failed for c in checked):
        sys.exit(1)


def _scan(
    checked: list[Checked], verify: bool, timeout: int | None, verbosity: int, stderr: OutputWrapper
) -> None:
    """Scan every rule that is not enforced (all with ``verify``), one statement each."""
    todo = [
        c
        for c in checked
        if c.enforcement.scannable and (verify or c.enforcement.state != enforcement.ENFORCED)
    ]
    progress = verbosity >= 2 or (verbosity >= 1 and stderr.isatty())
    for number, item in enumerate(todo, 1):
        rule = item.rule
        if progress:
            stderr.write(f"scanning {number}/{len(todo)}: {rule.database} {rule.label} {item.rule_text}…")
        try:
            item.result = duplicates.scan(rule, limit=SAMPLE_GROUPS, timeout_ms=timeout)
        except duplicates.ScanTimedOut:
            item.timed_out = True
            stderr.write(f"{item.named}: scan timed out after {_timeout_ms(timeout)} ms.")
        except DatabaseError as exc:
            # e.g. a column an unapplied migration adds: report it, go on with the other rules.
            item.error = str(exc).strip().splitlines()[0]
            stderr.write(f"{item.named}: scan failed: {item.error}")


def _write_duplicates(checked: list[Checked], timeout: int | None, stdout: OutputWrapper) -> None:
    stdout.write(format_table([c.as_row() for c in checked], DUPLICATE_COLUMNS, numbers=("groups", "rows")))
    details = [
        c for c in checked if c.failed or c.enforcement.state in (enforcement.MISSING, enforcement.INVALID)
    ]
    for item in details:
        stdout.write("")
        stdout.write(f"{item.named} [{item.enforcement.state}]")
        if item.enforcement.reason and item.enforcement.state != enforcement.CONFIGURED_STATE:
            stdout.write(f"  {item.enforcement.reason}")
        if item.timed_out:
            stdout.write(f"  timed out after {_timeout_ms(timeout)} ms")
        if item.error is not None:
            stdout.write(f"  scan failed: {item.error}")
        for line in _group_lines(item):
            stdout.write(f"  {line}")
    with_groups = [c for c in checked if c.result is not None and c.result.total_groups]
    enforced = sum(c.enforcement.state == enforcement.ENFORCED for c in checked)
    groups = sum(c.result.total_groups for c in with_groups if c.result)
    rows = sum(c.result.total_rows for c in with_groups if c.result)
    summary = _(
        "%(rules)s, %(enforced)s enforced, %(with)s with duplicates (%(groups)s, %(rows)s), %(timed_out)s timed out"
    ) % {
        "rules": counted("%(n)s rule", "%(n)s rules", len(checked)),
        "enforced": f"{enforced:,}",
        "with": f"{len(with_groups):,}",
        "groups": counted("%(n)s group", "%(n)s groups", groups),
        "rows": counted("%(n)s row", "%(n)s rows", rows),
        "timed_out": f"{sum(c.timed_out for c in checked):,}",
    }
    errors = sum(c.error is not None for c in checked)
    stdout.write("")
    stdout.write(f"{summary}, {errors} failed." if errors else f"{summary}.")


def _timeout_ms(timeout: int | None) -> int:
    return settings.SCAN_TIMEOUT_MS if timeout is None else timeout


def _group_lines(item: Checked) -> list[str]:
    """``3 rows: email='ann@x' (pks 1, 4, 7)``, one line per sampled group."""
    if item.result is None:
        return []
    rule = item.rule
    parts = [describe(e) for e in rule.expressions] or list(rule.fields)
    lines = []
    for group in item.result.groups:
        key = ", ".join(f"{part}={value_text(value)}" for part, value in zip(parts, group.key, strict=True))
        pks = ", ".join(str(pk) for pk in group.pks) + (", …" if group.size > len(group.pks) else "")
        lines.append(f"{counted('%(n)s row', '%(n)s rows', group.size)}: {key} (pks {pks})")
    more = item.result.total_groups - item.result.offset - len(item.result.groups)
    if more > 0:
        lines.append(_("… and %(more)s") % {"more": counted("%(n)s more group", "%(n)s more groups", more)})
    return lines
