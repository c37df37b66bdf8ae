"""What every sub-command of ``manage.py integrity`` shares: exit status 2 for bad arguments, resolving
database aliases and model labels, and plain-text tables.

Each room's ``cli.py`` adds its sub-parsers (``add_parsers(sub)``), each
naming its handler with ``set_defaults(handler=...)``; the management command
only dispatches. A handler is ``handler(options, stdout, stderr)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.db import connections
from django.db.models import Model

__all__ = [
    "UsageError",
    "format_table",
    "resolve_database",
    "resolve_databases",
    "resolve_model",
    "resolve_models",
    "value_text",
]


class UsageError(CommandError):
    """Bad arguments: exit status 2, and nothing was done."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=2)


def resolve_models(labels: Sequence[str]) -> list[type[Model]] | None:
    """Turn ``app_label.Model`` labels into models (auto-created M2M tables too); none given: None (all)."""
    if not labels:
        return None
    by_label = {m._meta.label_lower: m for m in apps.get_models(include_auto_created=True)}
    unknown = [label for label in labels if label.lower() not in by_label]
    if unknown:
        raise UsageError(f"Unknown model(s): {', '.join(unknown)} (use app_label.ModelName).")
    return [by_label[label.lower()] for label in labels]


def resolve_model(label: str) -> type[Model]:
    """The model of one ``app_label.Model`` label (case-insensitive)."""
    found = next((m for m in apps.get_models() if m._meta.label_lower == label.lower()), None)
    if found is None:
        raise UsageError(f"Unknown model {label} (use app_label.ModelName).")
    return found


def resolve_databases(aliases: Sequence[str]) -> list[str] | None:
    """The aliases, each checked; none given: None (all)."""
    unknown = [alias for alias in aliases if alias not in connections]
    if unknown:
        raise UsageError(
            f"Unknown database alias(es): {', '.join(unknown)}; known: {', '.join(connections)}."
        )
    return list(aliases) or None


def resolve_database(alias: str | None) -> str | None:
    """One alias, checked (None stays None)."""
    if alias is not None and alias not in connections:
        raise UsageError(f"Unknown database alias {alias}; known: {', '.join(connections)}.")
    return alias


def value_text(value: Any) -> str:
    """A key value as the command prints it: ``NULL``, a string quoted, anything else as ``str()``."""
    if value is None:
        return "NULL"
    return repr(value) if isinstance(value, str) else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1%}"
    return str(value)


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Align ``rows`` under ``columns`` (key, header) as a readable text table."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)
