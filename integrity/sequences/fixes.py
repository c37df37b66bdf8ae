"""The fix beside each sequence problem: the SQL and the Django migration that widen a column and its sequence.

A sequence near the end of its range (``capacity_level`` warning or
critical) or one that can hand out values its column cannot hold (``type
mismatch``) is fixed by making both ``bigint``: ``ALTER TABLE … ALTER COLUMN
… TYPE bigint`` and ``ALTER SEQUENCE … AS bigint NO MAXVALUE`` (``NO
MINVALUE`` for a descending one), or in a migration, ``AlterField`` to
``BigAutoField`` / ``BigIntegerField`` plus the sequence statement as
``RunSQL`` (Django alters the sequence's type only between auto fields, and
never lifts a MAXVALUE set by hand). No HTTP and no database access here:
everything comes from the ``SequenceInfo`` and the model's ``_meta``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db import models
from django.db.migrations.writer import MigrationWriter
from django.utils.translation import gettext as _

from integrity.db import qualified, quote
from integrity.sequences.service import COLUMN_RANGES, SequenceInfo

__all__ = ["Fix", "widen_fix"]

BIGINT_LOW, BIGINT_HIGH = COLUMN_RANGES["bigint"]

# The field class a migration widens each integer field to.
WIDER = {
    models.SmallAutoField: models.BigAutoField,
    models.AutoField: models.BigAutoField,
    models.SmallIntegerField: models.BigIntegerField,
    models.PositiveSmallIntegerField: models.BigIntegerField,
    models.PositiveIntegerField: models.BigIntegerField,
    models.IntegerField: models.BigIntegerField,
}


@dataclass(frozen=True)
class Fix:
    """What to run to widen a sequence and its column: advice, SQL statements, a migration's operations."""

    advice: str
    sql: list[str]
    migration: str  # Python of the operations, "" when no wider type exists


def _split(name: str) -> tuple[str, str]:
    schema, _dot, rest = name.partition(".")
    return schema, rest


def _sequence_sql(info: SequenceInfo) -> str | None:
    """``ALTER SEQUENCE … AS bigint NO MAXVALUE`` when the sequence's own type or limit is narrower than bigint."""
    ascending = info.increment > 0
    narrow = info.sequence_type != "bigint" or (
        info.sequence_max < BIGINT_HIGH if ascending else info.sequence_min > BIGINT_LOW
    )
    if not narrow:
        return None
    limit = "NO MAXVALUE" if ascending else "NO MINVALUE"
    return f"ALTER SEQUENCE {qualified(*_split(info.sequence))} AS bigint {limit};"


def _field(info: SequenceInfo) -> models.Field | None:
    try:
        model = apps.get_model(info.model)
    except LookupError:
        return None
    return next(
        (f for f in model._meta.concrete_fields if f.column == info.column),
        None,
    )


def _migration(info: SequenceInfo, sequence_sql: str | None, column_narrow: bool) -> str:
    """The operations of a migration doing what the SQL does; RunSQL where no field describes it."""
    ops: list[str] = []
    field = _field(info)
    model = apps.get_model(info.model) if field is not None else None
    wider = next((w for narrow, w in WIDER.items() if type(field) is narrow), None)
    if column_narrow and field is not None and model is not None and not model._meta.auto_created and wider:
        name, _path, args, kwargs = field.deconstruct()
        new = wider(*args, **kwargs)
        text, _imports = MigrationWriter.serialize(new)
        ops.append(
            "migrations.AlterField(\n"
            f"    model_name={model._meta.model_name!r},\n"
            f"    name={name!r},\n"
            f"    field={text},\n"
            "),"
        )
        statements = [sequence_sql] if sequence_sql else []
    else:
        statements = ([_column_sql(info)] if column_narrow else []) + ([sequence_sql] if sequence_sql else [])
    for statement in statements:
        ops.append(f"migrations.RunSQL({statement!r}, reverse_sql=migrations.RunSQL.noop),")
    return "\n".join(ops)


def _column_sql(info: SequenceInfo) -> str:
    return f"ALTER TABLE {qualified(*_split(info.table))} ALTER COLUMN {quote(info.column)} TYPE bigint;"


def widen_fix(info: SequenceInfo) -> Fix | None:
    """The fix of a sequence near overflow or of a type mismatch; None when neither applies.

    When both the column and the sequence are already ``bigint`` at its full
    range there is no wider integer type: the advice says so and no SQL is given.
    """
    if info.capacity_level == "ok" and not info.type_mismatch:
        return None
    column_narrow = info.column_type in ("smallint", "integer")
    sequence_sql = _sequence_sql(info)
    sql = ([_column_sql(info)] if column_narrow else []) + ([sequence_sql] if sequence_sql else [])
    if not sql:
        advice = _(
            "%(column)s and %(seq)s are bigint already, the widest integer type: plan for the end of the "
            "range (archive and reuse values, or move to another key)."
        ) % {"column": f"{info.table}.{info.column}", "seq": info.sequence}
        return Fix(advice, [], "")
    if info.type_mismatch and info.capacity_level == "ok":
        advice = _(
            "The sequence (%(seq_type)s) can hand out values the column (%(col_type)s) cannot hold: widen the "
            "column to bigint before it gets there."
        ) % {"seq_type": info.sequence_type, "col_type": info.column_type}
    else:
        advice = _(
            "%(pct)s of the range is used: widen the column and the sequence to bigint before inserts fail."
        ) % {"pct": f"{(info.capacity or 0) * 100:.1f}%"}
    return Fix(advice, sql, _migration(info, sequence_sql, column_narrow))
