"""The rows a merge record keeps, as a person reads them: each column named by its field, with its value.

A record's snapshot holds every column of each deleted row as
``row_to_json`` stored it (column names, JSON values). The record page shows
them before it offers the undo, so that the admin sees what comes back.
A model that no longer exists, or a column no field maps, is shown by its
table and column names: the snapshot is what the undo restores, whatever the
code says today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db.models import Model

ROWS_SHOWN = 50  # per model: a record can hold a hundred members and their conflicting rows


@dataclass
class DeletedRows:
    """The deleted rows of one model (or table): its name, its column labels, the first ``ROWS_SHOWN`` rows."""

    model: str
    name: str
    labels: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    total: int = 0

    @property
    def hidden(self) -> int:
        return self.total - len(self.rows)


def _model(label: str) -> type[Model] | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _labels(model: type[Model] | None, columns: list[str]) -> list[str]:
    by_column = {} if model is None else {f.column: str(f.verbose_name) for f in model._meta.concrete_fields}
    return [by_column.get(c, c) for c in columns]


def deleted_rows(data: dict[str, Any]) -> list[DeletedRows]:
    """The record's deleted rows (``data["deleted"]``), one block per model and level, columns in table order."""
    out = []
    for entry in data.get("deleted", []):
        rows = entry.get("rows", [])
        columns = list(rows[0]) if rows else []
        model = _model(entry.get("model", ""))
        name = str(model._meta.verbose_name_plural) if model is not None else entry.get("table", "")
        block = DeletedRows(entry.get("model", ""), name, _labels(model, columns), total=len(rows))
        block.rows = [[row.get(c) for c in columns] for row in rows[:ROWS_SHOWN]]
        out.append(block)
    return out
