"""``manage.py integrity <sub-command>``: the app's checks for CI and cron.

Exit status: 0 when all is well, 1 when a problem was found (and not fixed),
2 on bad arguments (unknown model or database), in which case nothing is done.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.db.models import Model

from integrity import sequences
from integrity.report import format_table


class UsageError(CommandError):
    """Bad arguments: exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=2)


def resolve_models(labels: Sequence[str]) -> list[type[Model]] | None:
    """Turn ``app_label.Model`` labels into models (auto-created M2M tables too)."""
    if not labels:
        return None
    by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
    unknown = [label for label in labels if label.lower() not in by_label]
    if unknown:
        raise UsageError(f"Unknown model(s): {', '.join(unknown)} (use app_label.ModelName).")
    return [by_label[label.lower()] for label in labels]


def resolve_databases(aliases: Sequence[str]) -> list[str] | None:
    unknown = [alias for alias in aliases if alias not in connections]
    if unknown:
        raise UsageError(
            f"Unknown database alias(es): {', '.join(unknown)}; known: {', '.join(connections)}."
        )
    return list(aliases) or None


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


class Command(BaseCommand):
    help = "Data-integrity checks: 'integrity sequences' reports (and with --fix resyncs) sequences."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="{sequences}")
        seq = sub.add_parser("sequences", help="Status of every sequence; exit 1 if any is behind.")
        seq.add_argument("--database", nargs="+", action="extend", default=[], metavar="ALIAS")
        seq.add_argument("--model", nargs="+", action="extend", default=[], metavar="app_label.Model")
        seq.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
        seq.add_argument("--fix", action="store_true", help="Resync every behind sequence (forward only).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "sequences":
            self.sequences(options)

    def sequences(self, options: dict[str, Any]) -> None:
        models = resolve_models(options["model"])
        databases = resolve_databases(options["database"])
        reports = sequences.collect(databases, models)
        for report in reports:
            if not report.supported:
                self.stderr.write(f"{report.database}: sequence check not available for {report.vendor} yet.")
        rows = [info for report in reports for info in report.sequences]
        fixed: list[dict[str, Any]] = []
        if options["fix"]:
            for info in [r for r in rows if r.status == sequences.BEHIND]:
                try:
                    result = sequences.resync(info.database, info.model, info.column)
                except (sequences.ResyncRefused, sequences.SequenceNotFound) as exc:
                    # Report and go on with the others; it stays behind, so the exit status is 1.
                    self.stderr.write(
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
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self.stdout.write(format_table([r.as_json() for r in rows], SEQUENCE_COLUMNS))
            for item in fixed:
                self.stdout.write(
                    f"fixed {item['database']}:{item['model']}.{item['column']} ({item['sequence']}): "
                    f"next value {item['value_before']} -> {item['next_value']}"
                )
            self.stdout.write(f"{len(rows)} sequences, {len(behind)} behind, {len(fixed)} fixed.")
        if behind:
            sys.exit(1)
