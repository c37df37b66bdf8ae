"""The outage itself: a sequence that ran out, explained with its capacity row and the fix (widen to bigint).

Two DataErrors end a sequence's life: ``nextval: reached maximum value of
sequence`` (SQLSTATE 2200H; the sequence's own MAXVALUE, an ``integer``
identity's 2147483647) and ``integer out of range`` (22003: a bigint sequence
feeding an ``integer`` column went past the column's largest value). Both are
fixed the same way, by widening the column and the sequence to bigint; this
module finds the sequence (the capacity row of the sequences page, as
``evidence.Known`` reads it) and writes the SQL and the Django migration.
"""

from __future__ import annotations

from django.apps import apps
from django.db import models
from django.utils.translation import gettext as _

from integrity.db import qualified, quote
from integrity.events.explanation import COLUMN_FULL, SEQUENCE_EXHAUSTED, WIDEN, Explanation, Fix
from integrity.events.violations import SEQUENCE_LIMIT
from integrity.models import EventGroup
from integrity.sequences import service as sequences

BIG = {models.AutoField: "BigAutoField", models.SmallAutoField: "BigAutoField"}
SIMPLE = (bool, int, str, type(None))


def explain(
    group: EventGroup, model: type[models.Model] | None, found: list[sequences.SequenceInfo]
) -> Explanation:
    """A 2200H or 22003 group, from the sequences feeding its model's columns (``found``)."""
    info = _ran_out(group, found)
    exhausted = group.kind == SEQUENCE_LIMIT
    cause = _("Sequence at its maximum") if exhausted else _("Column too small for its sequence")
    code = SEQUENCE_EXHAUSTED if exhausted else COLUMN_FULL
    if info is None:
        name = group.sequence or group.table or "?"
        text = _(
            "%(name)s ran out of values: every insert that takes the next number fails. No sequence of an "
            "installed model matches it, so the column to widen is not known: widen it and its sequence to "
            "bigint."
        ) % {"name": name}
        return Explanation(cause, text, None, [_("a bigint column and sequence")], code)
    values = {
        "sequence": info.sequence,
        "target": f"{info.model}.{info.column}",
        "column_type": info.column_type,
        "sequence_type": info.sequence_type,
        "max": f"{info.sequence_max:,}",
        "limit": f"{sequences.COLUMN_RANGES.get(info.column_type, (0, info.sequence_max))[1]:,}",
        "capacity": "?" if info.capacity is None else f"{info.capacity:.0%}",
    }
    if exhausted:
        text = _(
            "Sequence %(sequence)s, which numbers %(target)s, reached its maximum %(max)s: every insert that "
            "takes a number from it fails. The sequences page shows it at %(capacity)s of its range."
        )
    else:
        text = _(
            "%(target)s is %(column_type)s, but sequence %(sequence)s (%(sequence_type)s) now hands out "
            "values past the column's largest, %(limit)s: every insert fails with 'integer out of range'. "
            "The sequences page shows it at %(capacity)s of its range, with a type mismatch."
        )
    text = text % values + " " + _("Widen the column and the sequence to bigint.")
    fix = Fix(
        _("Widen to bigint"),
        WIDEN,
        sequence_key=info.key,
        sql=widen_sql(info),
        migration=migration(info, model),
    )
    suggestions = [
        _("BigAutoField / BigIntegerField for columns a sequence numbers"),
        _("DEFAULT_AUTO_FIELD"),
    ]
    return Explanation(cause, text, fix, suggestions, code)


def _ran_out(group: EventGroup, found: list[sequences.SequenceInfo]) -> sequences.SequenceInfo | None:
    """The row of the sequence that ran out: named by 2200H, else the one that outran its column (22003)."""
    if group.sequence:
        named = [i for i in found if i.sequence.rsplit(".", 1)[-1] == group.sequence]
        return named[0] if named else None
    outran = [i for i in found if i.type_mismatch]
    full = [i for i in outran if i.capacity is not None and i.capacity >= 1]
    chosen = full or outran
    return chosen[0] if chosen else None


def widen_sql(info: sequences.SequenceInfo) -> str:
    """The statements that widen the column and its sequence to bigint (identifiers quoted)."""
    schema, table = info.table.split(".", 1)
    seq_schema, sequence = info.sequence.split(".", 1)
    return (
        f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote(info.column)} TYPE bigint;\n"
        f"ALTER SEQUENCE {qualified(seq_schema, sequence)} AS bigint NO MAXVALUE;"
    )


def migration(info: sequences.SequenceInfo, model: type[models.Model] | None) -> str | None:
    """The Django migration that does the same: AlterField to a big field, then the sequence's RunSQL."""
    model = model or _model(info.model)
    field = _field(model, info.column)
    if model is None or field is None:
        return None
    big = next((name for kind, name in BIG.items() if type(field) is kind), "BigIntegerField")
    name, _path, _args, kwargs = field.deconstruct()
    kept = {k: v for k, v in kwargs.items() if isinstance(v, SIMPLE)}
    arguments = ", ".join(f"{k}={v!r}" for k, v in sorted(kept.items()))
    more = "  # and the field's other arguments, as in models.py" if len(kept) < len(kwargs) else ""
    seq_schema, sequence = info.sequence.split(".", 1)
    sql = f"ALTER SEQUENCE {qualified(seq_schema, sequence)} AS bigint NO MAXVALUE"
    return (
        f"# In {model._meta.app_label}/models.py: {model.__name__}.{name} = models.{big}(…), then "
        f"makemigrations writes:\n"
        "from django.db import migrations, models\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = [({model._meta.app_label!r}, '<the latest migration>')]\n\n"
        "    operations = [\n"
        "        migrations.AlterField(\n"
        f"            model_name={model._meta.model_name!r},\n"
        f"            name={name!r},\n"
        f"            field=models.{big}({arguments}),{more}\n"
        "        ),\n"
        f"        migrations.RunSQL({sql!r}, migrations.RunSQL.noop),  # a sequence of its own: widen it too\n"
        "    ]\n"
    )


def _model(label: str) -> type[models.Model] | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _field(model: type[models.Model] | None, column: str) -> models.Field | None:
    if model is None:
        return None
    return next((f for f in model._meta.concrete_fields if f.column == column), None)
