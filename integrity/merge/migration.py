"""Merging every duplicate group from a migration: the admin's merge-all engine, all or nothing.

A migration sees historical models, which lack what the engine needs to find
every reference exactly (generic foreign keys are not part of the migration
state). The engine therefore runs on the project's current model of the same
label, after checking that everything it will read or write exists in the
database at this point of the migrations (the model's columns, and the table
and column of every relation ``_meta`` names); the database's catalog adds
every foreign key, model or not. Anything that does not hold is refused with
the reason, before any row is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import apps as global_apps
from django.db import connections, router, transaction
from django.db.models import Model, Q
from django.utils.translation import gettext as _

from integrity.duplicates.relations import relations_to
from integrity.duplicates.rules import Rule, declared_rules, describe
from integrity.merge import postgresql as sql
from integrity.merge.bulk import MergeAllResult, merge_all
from integrity.merge.plan import MergeRefused
from integrity.merge.references import chain
from integrity.models import MergeRecord

MIGRATION = "migration"  # the kind of a rule built by a MergeDuplicates operation


def live_model(label: str, historical: type[Model]) -> type[Model]:
    """The project's current model for ``label``, which must use the table the migration state has."""
    try:
        live = global_apps.get_model(label)
    except LookupError as exc:
        message = _("%(label)s is not a model of the project any more: the merge needs its current model")
        raise MergeRefused(message % {"label": label}) from exc
    if live._meta.db_table != historical._meta.db_table:
        message = _(
            "%(label)s's table is %(live)s in the project but %(old)s at this point of the migrations: "
            "the merge runs on the current model, so it must come after the migration that renames the table"
        )
        raise MergeRefused(
            message % {"label": label, "live": live._meta.db_table, "old": historical._meta.db_table}
        )
    return live


def _same_columns(live: type[Model], historical: type[Model], names: Sequence[str]) -> None:
    for name in names:
        try:
            now, then = live._meta.get_field(name), historical._meta.get_field(name)
        except Exception as exc:  # noqa: BLE001 - FieldDoesNotExist on either side
            raise MergeRefused(
                f"{live._meta.label} has no field {name!r} at this point of the migrations"
            ) from exc
        if getattr(now, "column", None) != getattr(then, "column", None):
            raise MergeRefused(
                f"{live._meta.label}.{name} is column {getattr(now, 'column', None)!r} in the project but "
                f"{getattr(then, 'column', None)!r} at this point of the migrations"
            )


def _name(alias: str, live: type[Model], fields: tuple[str, ...], expressions: tuple[Any, ...]) -> str:
    """The name of the rule the model declares on the same key (so the merge log names it), else a made-up one."""
    for rule in declared_rules(alias, live):
        if rule.fields == fields and rule.expressions == expressions:
            return rule.name
    key = ", ".join(describe(e) for e in expressions) if expressions else ", ".join(fields)
    return f"{MIGRATION}:{key}"


def build_rule(
    alias: str,
    historical: type[Model],
    *,
    fields: Sequence[str] = (),
    expressions: Sequence[Any] = (),
    condition: Q | None = None,
    nulls_distinct: bool = True,
    name: str | None = None,
) -> Rule:
    """The rule the operation merges under, on the current model, checked against the historical one."""
    label = historical._meta.label
    live = live_model(label, historical)
    _same_columns(live, historical, fields)
    expressions = tuple(expressions)
    return Rule(
        alias,
        live,
        name or _name(alias, live, tuple(fields), expressions),
        MIGRATION,
        fields=tuple(fields),
        expressions=expressions,
        condition=condition,
        nulls_distinct=nulls_distinct,
        source="integrity.operations.MergeDuplicates",
    )


def _wanted_columns(alias: str, model: type[Model]) -> dict[str, list[str]]:
    """Every table and column the engine reads or writes for a merge of ``model``."""
    connection = connections[alias]
    wanted: dict[str, list[str]] = {}

    def add(holder: type[Model], columns: list[str]) -> None:
        wanted.setdefault(sql.table_name(connection, holder._meta.db_table), []).extend(columns)

    for level in chain(model):
        add(level, [str(f.column) for f in level._meta.local_concrete_fields])
    for rel in relations_to(alias, model):
        columns = [rel.column]
        if rel.content_type is not None:
            columns.append(str(rel.content_type.column))
        add(rel.holder, [str(f.column) for f in rel.holder._meta.concrete_fields] + columns)
    return wanted


def check_mergeable(rule: Rule) -> None:
    """``MergeRefused`` when the database lacks a table or column the current models would make the merge use."""
    record_db = router.db_for_write(MergeRecord)
    if MergeRecord._meta.db_table not in connections[record_db].introspection.table_names():
        raise MergeRefused(
            _(
                "integrity's merge log is not migrated on database %(alias)r: add a dependency on "
                "('integrity', '0003_merge') to this migration"
            )
            % {"alias": record_db}
        )
    with connections[rule.database].cursor() as cursor:
        missing = sql.missing_columns(cursor, _wanted_columns(rule.database, rule.model))
    if missing:
        raise MergeRefused(
            _(
                "the merge uses the project's current models, and these columns are not in the database at "
                "this point of the migrations: %(cols)s; place the operation after the migrations that create them"
            )
            % {"cols": ", ".join(sorted(set(missing)))}
        )


def merge_everything(rule: Rule, policy: str) -> MergeAllResult:
    """Merge every group of ``rule`` (``policy`` keeps one member each), each recorded; all or nothing.

    Groups that need a human choice (or are refused) raise ``MergeRefused``
    listing them, and every merge of the run is rolled back with it.
    """
    check_mergeable(rule)
    record_db = router.db_for_write(MergeRecord)
    with transaction.atomic(using=record_db), transaction.atomic(using=rule.database):
        result = merge_all(rule, policy)
        if result.skipped:
            lines = "\n".join(f"  group of row {pk}: {why}" for pk, why in result.skipped)
            message = _(
                "%(n)d group(s) of %(label)s under %(key)s need a human choice (or cannot be merged exactly), so nothing was merged:\n%(lines)s\n"
                "Merge them in the admin (/admin/integrity/), then run the migration again."
            )
            raise MergeRefused(
                message
                % {"n": len(result.skipped), "label": rule.label, "key": rule.description, "lines": lines}
            )
    return result


def summary(rule: Rule, policy: str, result: MergeAllResult) -> str:
    """What the operation did, as ``migrate`` prints it."""
    if not result.merged:
        return f"no duplicate {rule.label} rows by {rule.description}: nothing to merge."
    removed = sum(len(r.removed) for r in result.merged)
    moved = sum(r.repointed for r in result.merged)
    records = ", ".join(f"#{r.pk}" for r in result.merged)
    return (
        f"merged {result.made} group(s) of {rule.label} by {rule.description} (survivor: {policy}): "
        f"{removed} row(s) removed, {moved} reference(s) moved; merge log {records} "
        "(each can be undone from /admin/integrity/mergerecord/)."
    )
