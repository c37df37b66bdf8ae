"""Every reference to the rows a merge removes: the catalog's foreign keys joined with ``_meta``.

The database's own catalog lists every foreign key into the merged model's
table and into each parent table of its multi-table inheritance chain, from
any schema, model or not. ``_meta`` adds what no constraint records: generic
foreign keys and foreign keys declared without a database constraint. A
foreign key of a table without a model becomes a ``TableRelation`` the merge
re-points like any other; one it cannot re-point and record exactly (several
columns, no single-column primary key, a column no model field maps) is a
refusal, named, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import Model
from django.utils.translation import gettext as _

from integrity.duplicates.relations import GENERIC, relations_to
from integrity.merge import catalog
from integrity.merge.catalog import ForeignKey, TableRelation
from integrity.merge.postgresql import table_name


def chain(model: type[Model]) -> list[type[Model]]:
    """The model's concrete table first, then the table of every parent (multi-table inheritance)."""
    concrete: Any = model._meta.concrete_model
    return [concrete, *concrete._meta.get_parent_list()]


def quoted_table(alias: str, model: type[Model]) -> str:
    return table_name(connections[alias], model._meta.db_table)


@dataclass
class References:
    levels: list[type[Model]]
    relations: list[Any] = field(default_factory=list)  # Relation | TableRelation
    keys: dict[type[Model], list[ForeignKey]] = field(default_factory=dict)  # catalog keys into each level
    refusals: list[str] = field(default_factory=list)
    key_of: dict[Any, ForeignKey] = field(default_factory=dict)  # relation -> its constraint, if it has one


def _local_attname(level: type[Model], column: str) -> str | None:
    return next((str(f.attname) for f in level._meta.local_concrete_fields if f.column == column), None)


def _table_relation(level: type[Model], key: ForeignKey) -> TableRelation | str:
    """The relation of a foreign key no model describes, or why it cannot be re-pointed exactly."""
    what = {"fk": key.name, "table": f"{key.schema}.{key.table}", "cols": ", ".join(key.columns)}
    if len(key.columns) != 1:
        return (
            _("foreign key %(fk)s of %(table)s spans several columns (%(cols)s): it cannot be re-pointed")
            % what
        )
    target = _local_attname(level, key.ref_columns[0])
    if target is None:
        return (
            _("foreign key %(fk)s of %(table)s.%(cols)s references a column no field of the model maps")
            % what
        )
    if len(key.primary_key) != 1:
        return (
            _(
                "%(table)s.%(cols)s (foreign key %(fk)s) is in a table without a single-column primary key: "
                "its rows cannot be recorded for the undo"
            )
            % what
        )
    return TableRelation(key, target)


def references(alias: str, model: type[Model]) -> References:
    """Every relation to any level of ``model``'s chain, and what cannot be re-pointed (``refusals``)."""
    refs = References(chain(model))
    per_level = {level: relations_to(alias, level) for level in refs.levels}
    holders = {r.holder for rels in per_level.values() for r in rels}
    oids = catalog.table_oids(alias, [quoted_table(alias, m) for m in {*holders, *refs.levels}])
    level_oids = {level: oids.get(quoted_table(alias, level)) for level in refs.levels}
    keys = catalog.foreign_keys_into(alias, [oid for oid in level_oids.values() if oid is not None])
    for level in refs.levels:
        rels = [r for r in per_level[level] if not (r.parent_link and r.holder in refs.levels)]
        covered = {
            (oids.get(quoted_table(alias, r.holder)), r.column): r
            for r in per_level[level]
            if r.kind != GENERIC
        }
        refs.relations.extend(rels)
        mine = [k for k in keys if k.ref_oid == level_oids[level]]
        refs.keys[level] = mine
        for key in mine:
            if len(key.columns) == 1 and (key.oid, key.columns[0]) in covered:
                refs.key_of[covered[key.oid, key.columns[0]]] = key
                continue
            found = _table_relation(level, key)
            if isinstance(found, str):
                refs.refusals.append(found)
            else:
                refs.relations.append(found)
                refs.key_of[found] = key
    return refs


def location(alias: str, rel: Any) -> tuple[str, str]:
    """(quoted table, primary key column) of the rows holding a relation's references."""
    if isinstance(rel, TableRelation):
        return rel.table, rel.pk_column
    return quoted_table(alias, rel.holder), str(rel.holder._meta.pk.column)
