"""``manage.py integrity sequences``: every sequence's status for CI and cron, and ``--fix``.

Exit status: 0 when no sequence is behind, 1 when one is (and was not
fixed), 2 on bad arguments (unknown model or database).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import OutputWrapper

from integrity.cli import format_table, resolve_databases, resolve_models
from integrity.sequences import service as sequences

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
    if options["json"]:
        payload = [r.as_json() for r in rows]
        stdout.write(json.dumps(payload, indent=2))
    else:
        stdout.write(format_table([r.as_json() for r in rows], SEQUENCE_COLUMNS))
        for r in rows:
            if r.reason:
                stdout.write(f"{r.database}:{r.model}.{r.column}: not comparable: {r.reason}")
            if r.shared_with:
                stdout.write(
                    f"{r.database}:{r.model}.{r.column}: {r.sequence} is shared by {', '.join(r.shared_with)}"
                )
        for item in fixed:
            stdout.write(
                f"fixed {item['database']}:{item['model']}.{item['column']} ({item['sequence']}): "
                f"next value {item['value_before']} -> {item['next_value']}"
            )
        stdout.write(f"{len(rows)} sequences, {len(behind)} behind, {len(fixed)} fixed.")
    if behind:
        sys.exit(1)
