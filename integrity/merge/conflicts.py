"""Which child rows a merge would make collide, found before anything is written.

Re-pointing every reference to the survivor can give two rows of a child
model the same key under one of its own uniqueness rules (both people's
profile, the same seat booked by each). The database would refuse the merge
half-way; found first, they are shown in the preview, rows identical but for
their key are collapsed without asking, and the admin chooses which of the
others to keep. One query per child rule that re-pointing could break, never
one per row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Aggregate, Case, Count, F, Field, Func, Model, Q, QuerySet, Value, When
from django.utils.translation import gettext as _

from integrity.duplicates.rules import Rule, declared_rules
from integrity.merge.exceptions import BadChoice

if TYPE_CHECKING:
    from integrity.merge.plan import Move, Plan


class JsonPairs(Aggregate):
    """``JSON_AGG(JSON_BUILD_ARRAY(a, b))``: the (primary key, owner) of every row of a group."""

    function = "JSON_AGG"
    template = "%(function)s(JSON_BUILD_ARRAY(%(expressions)s))"

    def __init__(self, *expressions: Any) -> None:
        super().__init__(*expressions, output_field=Field())


@dataclass
class ConflictRow:
    pk: Any
    owner: Any  # primary key of the member the row referenced
    values: dict[str, Any]


@dataclass
class Conflict:
    """Rows of ``holder`` that would hold ``rule`` twice once they all reference the survivor."""

    id: str
    holder: type[Model]
    rule: str
    key: dict[str, Any]
    rows: list[ConflictRow]
    pure: bool  # the rows are identical but for their key: collapse them, keep the survivor's
    keep: Any = None
    relation: str = ""  # the relation's label: an auto-created M2M table is named by its many-to-many
    rule_text: str = ""  # the rule in words (Rule.short_name); ``rule`` is its name, an id

    @property
    def label(self) -> str:
        return f"{self.relation or self.holder._meta.label} ({self.rule_text or self.rule})"

    @property
    def losers(self) -> list[Any]:
        return [r.pk for r in self.rows if r.pk != self.keep]


def _key_id(holder: type[Model], rule_name: str, key: dict[str, Any]) -> str:
    raw = json.dumps([holder._meta.label, rule_name, key], cls=DjangoJSONEncoder, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def find_conflicts(rule: Rule, members: list[Model], moves: list[Move]) -> list[Conflict]:
    """Child rows that would break one of their own uniqueness rules once re-pointed (one query per rule)."""
    alias = rule.database
    # A table without a model has no declared rules: the catalog's unique indexes cover it (indexes.py).
    moves = [m for m in moves if m.relation.holder is not None]
    by_holder: dict[type[Model], list[Move]] = {}
    for move in moves:
        # A relation no row of a duplicate is referenced by moves nothing, so it breaks no rule
        # (its counts are read under the merge's lock; a preview's are checked by its token).
        if move.olds and any(move.counts.get(pk) for pk in move.moved_from):
            by_holder.setdefault(move.relation.holder, []).append(move)
    owners = {}
    for move in moves:
        for m in members:
            # Only values the column can hold (a UUID is in no integer object id).
            for stored in move.relation.storable([getattr(m, move.relation.target)]):
                owners[(move.relation.field.attname, move.relation.holder, str(stored))] = m.pk
    found: list[Conflict] = []
    for holder, holder_moves in by_holder.items():
        by_field = {m.relation.field.name: m for m in holder_moves}
        for child_rule in declared_rules(alias, holder):
            if child_rule.expressions or not set(child_rule.fields) & set(by_field):
                continue
            found.extend(_rule_conflicts(alias, holder, child_rule, by_field, members, owners))
    return found


def _rule_conflicts(
    alias: str,
    holder: type[Model],
    child_rule: Rule,
    by_field: dict[str, Move],
    members: list[Model],
    owners: dict[tuple[str, type[Model], str], Any],
) -> list[Conflict]:
    meta = holder._meta
    relevant = [by_field[n] for n in child_rule.fields if n in by_field]
    touching = Q()
    moving = Q()
    for move in relevant:
        touching |= move.relation.matching([getattr(m, move.relation.target) for m in members])
        moving |= move.relation.matching(move.olds)
    qs: QuerySet[Any] = QuerySet(model=holder, using=alias)
    qs = qs.filter(touching).order_by()
    if child_rule.condition is not None:
        qs = qs.filter(child_rule.condition)
    keys: dict[str, Any] = {}
    for i, name in enumerate(child_rule.fields):
        f: Any = meta.get_field(name)
        if name in by_field:
            move = by_field[name]
            keys[f"k{i}"] = Case(
                When(move.relation.matching(move.olds), then=Value(move.relation.stored(move.new))),
                default=F(f.attname),
                output_field=f,
            )
        else:
            keys[f"k{i}"] = F(f.attname)
    qs = qs.annotate(**keys)
    if child_rule.nulls_distinct:
        qs = qs.filter(**{f"{k}__isnull": False for k in keys})
    owner_field = relevant[0].relation.field.attname
    others = [
        F(f.attname) for f in meta.local_concrete_fields if not f.primary_key and f.name not in by_field
    ]
    aggregates: dict[str, Any] = {
        "n": Count("*"),
        "changed": Count("pk", filter=moving),
        "rows": JsonPairs(F("pk"), F(owner_field)),
    }
    if others:
        aggregates["kinds"] = Count(Func(*others, function="ROW"), distinct=True)
    groups = list(qs.values(*keys).annotate(**aggregates).filter(n__gt=1, changed__gt=0))
    if not groups:
        return []
    pk_field: Any = meta.pk
    all_pks = [pk_field.to_python(pk) for g in groups for pk, _owner in g["rows"]]
    values = {
        row[pk_field.attname]: row
        for row in QuerySet(model=holder, using=alias).filter(pk__in=all_pks).values()
    }
    out = []
    for g in groups:
        key = {name: g[f"k{i}"] for i, name in enumerate(child_rule.fields)}
        rows = []
        for raw_pk, raw_owner in sorted(g["rows"], key=lambda r: str(r[0])):
            pk = pk_field.to_python(raw_pk)
            owner = owners.get((owner_field, holder, str(raw_owner)))
            rows.append(ConflictRow(pk, owner, values.get(pk, {})))
        pure = g.get("kinds", 1) <= 1
        conflict_id = _key_id(holder, child_rule.name, key)
        label = relevant[0].relation.label if meta.auto_created else ""
        out.append(
            Conflict(
                conflict_id,
                holder,
                child_rule.name,
                key,
                rows,
                pure,
                relation=label,
                rule_text=child_rule.short_name,
            )
        )
    return out


def resolve(conflicts: list[Conflict], survivor: Model, resolutions: Mapping[str, Any]) -> None:
    """Keep the survivor's row of each pure conflict; the chosen row of the others (``BadChoice`` if not theirs)."""
    for conflict in conflicts:
        chosen = resolutions.get(conflict.id)
        if chosen is not None:
            by_text = {str(r.pk): r.pk for r in conflict.rows}
            if str(chosen) not in by_text:
                message = _("Row %(pk)s is not one of the rows in conflict %(id)s.")
                raise BadChoice(message % {"pk": chosen, "id": conflict.id})
            conflict.keep = by_text[str(chosen)]
        elif conflict.pure:
            mine = [r.pk for r in conflict.rows if r.owner == survivor.pk]
            conflict.keep = (mine or [r.pk for r in conflict.rows])[0]


def count_collapsed(plan: Plan) -> None:
    """Set each move's ``collapsed``: the duplicates' rows its resolved conflicts delete instead of moving."""
    for move in plan.moves:
        move.collapsed = 0
    by_holder: dict[type[Model], Move] = {}
    for move in plan.moves:
        by_holder.setdefault(move.relation.holder, move)
    for conflict in plan.conflicts:
        found = by_holder.get(conflict.holder)
        if conflict.keep is not None and found is not None:
            found.collapsed += sum(
                1 for r in conflict.rows if r.pk != conflict.keep and r.owner != plan.survivor.pk
            )
