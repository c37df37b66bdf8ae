"""``manage.py integrity sequences``: every sequence's status for CI and cron, and ``--fix``.

Exit status: 0 when no sequence is behind, 1 when one is (and was not
fixed), 2 on bad arguments (unknown model or database).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import OutputWrapper
from django.core.management.color import Style
from django.utils.translation import ngettext

from integrity.cli import Paint, format_table, resolve_databases, resolve_models, style_for
from integrity.sequences import service as sequences
from integrity.sequences.fixes import widen_fix

SEQUENCE_COLUMNS = [
    ("database", "DATABASE"),
    ("model", "MODEL"),
    ("column", "COLUMN"),
    ("sequence", "SEQUENCE"),
    ("next_value", "NEXT"),
    ("max_value", "MAX"),
    ("status", "STATUS"),
    ("capacity", "CAPACITY"),
]


def add_parsers(sub: Any) -> None:
    """The ``sequences`` sub-parser (``sub`` is the command's sub-parsers action)."""
    seq = sub.add_parser("sequences", help="Status of every sequence; exit 1 if any is behind.")
    seq.add_argument("--database", nargs="+", action="extend", default=[], metavar="ALIAS")
    seq.add_argument("--model", nargs="+", action="extend", default=[], metavar="app_label.Model")
    seq.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    seq.add_argument("--fix", action="store_true", help="Resync every behind sequence (forward only).")
    seq.set_defaults(handler=sequences_command)


NUMBERS = ("next_value", "max_value", "capacity")


def _table_row(info: sequences.SequenceInfo) -> dict[str, Any]:
    """The row as the table shows it: the status a person reads, a capacity past a threshold marked."""
    row = {**info.as_json(), "status_code": info.status}
    shown = info.shown_status
    if shown != info.status:
        row["status"] = shown
    elif info.type_mismatch:
        row["status"] = f"{info.status}, {sequences.TYPE_MISMATCH}"
    if info.capacity is not None and info.capacity_level != "ok":
        row["capacity"] = f"{info.capacity:.1%} {info.capacity_level}"
    return row


def _level(row: dict[str, Any]) -> str:
    """How bad the row's status is: "error", "warning" or "ok"."""
    if row["status_code"] == sequences.BEHIND or row["capacity_level"] == "critical" or row["type_mismatch"]:
        return "error"
    if row["status_code"] in (sequences.UNREADABLE, sequences.BUSY, sequences.NOT_COMPARABLE):
        return "warning"
    return "warning" if row["capacity_level"] == "warning" else "ok"


def _painter(style: Style) -> Paint:
    colours = {"error": style.ERROR, "warning": style.WARNING}

    def paint(key: str, row: dict[str, Any], text: str) -> str:
        if key == "status":
            level = _level(row)
            return colours[level](text) if level in colours else style.SUCCESS(text)
        if key == "capacity" and row["capacity_level"] != "ok":
            return colours["error" if row["capacity_level"] == "critical" else "warning"](text)
        return text

    return paint


def _write_fixes(rows: list[sequences.SequenceInfo], stdout: OutputWrapper, style: Style) -> None:
    for info in rows:
        fix = widen_fix(info)
        if fix is None:
            continue
        stdout.write(
            style.WARNING(f"{info.database}:{info.model}.{info.column}: {info.shown_status}: {fix.advice}")
        )
        for statement in fix.sql:
            stdout.write(f"  {statement}")


def sequences_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity sequences``: every sequence's status (``--fix``: resync the behind ones); exit 1 if any is behind."""
    models = resolve_models(options["model"])
    databases = resolve_databases(options["database"])
    reports = sequences.collect(databases, models)
    for report in reports:
        if not report.supported:
            stderr.write(f"{report.database}: sequence check not available for {report.vendor} yet.")
    rows = [info for report in reports for info in report.sequences]
    fixed: list[dict[str, Any]] = []
    if options["fix"]:
        for info in [r for r in rows if r.status == sequences.BEHIND]:
            try:
                result = sequences.resync(info.database, info.model, info.column)
            except (sequences.ResyncRefused, sequences.SequenceNotFound) as exc:
                # Report and go on with the others; it stays behind, so the exit status is 1.
                stderr.write(
                    f"could not fix {info.database}:{info.model}.{info.column} ({info.sequence}): {exc}"
                )
                continue
            fixed.append({**result.info.as_json(), "value_before": result.value_before})
        if fixed:
            reports = sequences.collect(databases, models)
            rows = [info for report in reports for info in report.sequences]
    behind = [r for r in rows if r.status == sequences.BEHIND]
    busy = [r for r in rows if r.status == sequences.BUSY]
    for info in busy:
        # Not read in time: a check that could not finish has not shown the sequence is fine.
        stderr.write(f"{info.database}:{info.model}.{info.column} ({info.sequence}) not read: {info.reason}")
    if options["json"]:
        payload = [r.as_json() for r in rows]
        stdout.write(json.dumps(payload, indent=2))
    else:
        style = style_for(options)
        table = [_table_row(r) for r in rows]
        stdout.write(format_table(table, SEQUENCE_COLUMNS, numbers=NUMBERS, paint=_painter(style)))
        for r in rows:
            if r.status == sequences.NOT_COMPARABLE:
                stdout.write(f"{r.database}:{r.model}.{r.column}: not comparable: {r.reason}")
            if r.shared_with:
                stdout.write(
                    f"{r.database}:{r.model}.{r.column}: {r.sequence} is shared by {', '.join(r.shared_with)}"
                )
        _write_fixes(rows, stdout, style)
        for item in fixed:
            stdout.write(
                f"fixed {item['database']}:{item['model']}.{item['column']} ({item['sequence']}): "
                f"next value {item['value_before']:,} -> {item['next_value']:,}"
            )
        summary = ngettext("%(n)s sequence", "%(n)s sequences", len(rows)) % {"n": f"{len(rows):,}"}
        summary += f", {len(behind):,} behind, {len(fixed):,} fixed."
        stdout.write(style.ERROR(summary) if behind else summary)
    if behind or busy:
        sys.exit(1)
