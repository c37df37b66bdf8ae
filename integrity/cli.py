"""What every sub-command of ``manage.py integrity`` shares: exit status 2 for bad arguments, resolving
database aliases and model labels, and plain-text tables.

Each room's ``cli.py`` adds its sub-parsers (``add_parsers(sub)``), each
naming its handler with ``set_defaults(handler=...)``; the management command
only dispatches. A handler is ``handler(options, stdout, stderr)``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.core.management.color import Style, color_style, no_style
from django.db import connections
from django.db.models import Model
from django.utils.translation import ngettext

__all__ = [
    "Paint",
    "UsageError",
    "counted",
    "format_table",
    "resolve_database",
    "resolve_databases",
    "resolve_model",
    "resolve_models",
    "style_for",
    "value_text",
]

Paint = Callable[[str, dict[str, Any], str], str]  # (column key, row, cell text) -> the text, coloured


def counted(singular: str, plural: str, n: int) -> str:
    """``n`` and its noun, in the right plural form (``ngettext``), with thousands separators: "1 error", "2 errors"."""
    return ngettext(singular, plural, n) % {"n": f"{n:,}"}


def style_for(options: dict[str, Any]) -> Style:
    """The command's colours as Django's ``BaseCommand`` chooses them: ``--no-color``, ``--force-color``, else a tty."""
    if options.get("no_color"):
        return no_style()
    return color_style(force_color=bool(options.get("force_color")))


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


def _cell(value: Any, number: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1%}"
    if number and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    numbers: Collection[str] = (),
    paint: Paint | None = None,
) -> str:
    """Align ``rows`` under ``columns`` (key, header) as a readable text table.

    The ``numbers`` columns are right-aligned, integers with thousands
    separators; ``paint`` colours a cell's text (after the widths are taken,
    so escape codes never shift a column).
    """
    rows = list(rows)
    cells = [[_cell(row.get(key), key in numbers) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    keys = [key for key, _ in columns]

    def line(texts: list[str], row: dict[str, Any] | None) -> str:
        out = []
        for key, text, width in zip(keys, texts, widths, strict=True):
            pad = " " * (width - len(text))
            shown = paint(key, row, text) if paint is not None and row is not None else text
            out.append(pad + shown if key in numbers else shown + pad)
        return "  ".join(out).rstrip()

    lines = [line(headers, None), "  ".join("-" * w for w in widths)]
    lines += [line(texts, row) for texts, row in zip(cells, rows, strict=True)]
    return "\n".join(lines)
