"""Does the database enforce each rule? ``enforced``, ``missing``, ``invalid`` or ``configured``.

Per alias: one query for the unique indexes of every table involved, one for
which tables exist, plus one probe (on an empty temporary table) per rule on
expressions or with a condition. Missing rules get a reason: an unapplied
migration that adds them, ``managed = False``, a missing table, or drift.
Reading the catalogs waits for no lock longer than ``INTEGRITY_READ_LOCK_TIMEOUT_MS``:
a table held by a migration is reported as not compared, never waited for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import (
    AddConstraint,
    AddField,
    AlterField,
    AlterUniqueTogether,
    CreateModel,
)
from django.utils.translation import gettext as _

from integrity.conf import settings
from integrity.duplicates.postgresql import IndexShape, PostgresUniqueBackend, TableLocked, UniqueIndex
from integrity.duplicates.rules import CONFIGURED, Rule

ENFORCED, MISSING, INVALID, CONFIGURED_STATE, UNSUPPORTED = (
    "enforced",
    "missing",
    "invalid",
    "configured",
    "unsupported",
)
STATES = (MISSING, INVALID, CONFIGURED_STATE, ENFORCED, UNSUPPORTED)
# The states of a rule the database does not enforce: the declared ones
# (missing, invalid) and the project's configured ones.
DECLARED_NOT_ENFORCED = (MISSING, INVALID)
NOT_ENFORCED_STATES = (*DECLARED_NOT_ENFORCED, CONFIGURED_STATE)
NOT_ENFORCED = "not_enforced"  # the rules page's filter value for all of them


@dataclass
class Enforcement:
    """How the database enforces one rule, and why not when it doesn't."""

    state: str
    index: str | None = None
    reason: str = ""
    table_exists: bool = True
    # For a missing rule: the unapplied migration that adds it; the table was locked (not compared).
    migration: str | None = field(default=None, compare=False)
    busy: bool = field(default=False, compare=False)

    @property
    def scannable(self) -> bool:
        return self.table_exists and self.state != UNSUPPORTED


def _shape_of_plain(rule: Rule) -> tuple[frozenset[str], bool]:
    return frozenset(rule.columns), not rule.nulls_distinct


def _plain_match(rule: Rule, index: UniqueIndex) -> bool:
    columns, nnd = _shape_of_plain(rule)
    return (
        not index.has_expressions
        and index.predicate is None
        and frozenset(c for c in index.columns if c) == columns
        and len(index.columns) == len(columns)
        and index.nulls_not_distinct == nnd
    )


def _shape_match(shape: IndexShape, index: UniqueIndex) -> bool:
    return (
        sorted(shape.keys) == sorted(index.keys)
        and shape.predicate == index.predicate
        and shape.nulls_not_distinct == index.nulls_not_distinct
    )


def _needs_probe(rule: Rule) -> bool:
    return rule.constraint is not None and (bool(rule.expressions) or rule.condition is not None)


class _MigrationReasons:
    """Finds the unapplied migration that would add a rule (loaded once, on demand)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._pending: list[tuple[str, str, object]] | None = None

    def pending(self) -> list[tuple[str, str, object]]:
        """``(app_label, "app_label.migration", operation)`` of every unapplied migration."""
        if self._pending is None:
            loader = MigrationLoader(connections[self.alias], ignore_no_migrations=True)
            applied = set(loader.applied_migrations or ())
            self._pending = [
                (app, f"{app}.{name}", op)
                for (app, name), migration in sorted(loader.disk_migrations.items())
                if (app, name) not in applied
                for op in migration.operations
            ]
        return self._pending

    def find(self, rule: Rule) -> str | None:
        model_name = rule.model._meta.model_name
        for app, migration, op in self.pending():
            # Operations name models without their app: a "customer" of another app is not this one.
            if app != rule.app_label:
                continue
            if getattr(op, "model_name", getattr(op, "name", "")).lower() != model_name and not (
                isinstance(op, CreateModel) and op.name_lower == model_name
            ):
                continue
            if _adds(op, rule):
                return migration
        return None


def _adds(op: object, rule: Rule) -> bool:
    if isinstance(op, CreateModel):
        return True
    if isinstance(op, AddConstraint):
        return op.constraint.name == rule.name
    if isinstance(op, AlterUniqueTogether):
        return frozenset(rule.fields) in {frozenset(t) for t in (op.unique_together or ())}
    if isinstance(op, AddField | AlterField):
        return rule.fields == (op.name,) and getattr(op.field, "unique", False)
    return False


def _missing_reason(rule: Rule, table_exists: bool, migrations: _MigrationReasons) -> str:
    # Migrations never touch an unmanaged model's table: a pending one would not add the index either.
    if not rule.model._meta.managed:
        return _("The model has managed = False: Django never created this index.")
    migration = migrations.find(rule)
    if migration:
        return _("Migration %(migration)s adds it and is not applied.") % {"migration": migration}
    if not table_exists:
        return _("The table does not exist on this database.")
    return _("Drift: the migrations say it exists, the database has no such index.")


def classify_alias(alias: str, rules: Sequence[Rule]) -> list[Enforcement]:
    """The enforcement of every rule of one alias, in order."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return [
            Enforcement(UNSUPPORTED, reason=_("Only PostgreSQL is supported."), table_exists=False)
            for _r in rules
        ]
    backend = PostgresUniqueBackend(connection)
    tables = sorted({r.model._meta.db_table for r in rules})
    exists = dict(zip(tables, backend.tables_exist(tables), strict=True))
    by_table = _indexes_by_table(backend, tables)
    migrations = _MigrationReasons(alias)
    return [
        _classify(
            rule, by_table[rule.model._meta.db_table], exists[rule.model._meta.db_table], backend, migrations
        )
        for rule in rules
    ]


def _indexes_by_table(
    backend: PostgresUniqueBackend, tables: list[str]
) -> Mapping[str, list[UniqueIndex] | None]:
    """The unique indexes of each table (one query); ``None`` for a table another transaction holds."""
    try:
        found = backend.unique_indexes(tables, settings.READ_LOCK_TIMEOUT_MS)
    except TableLocked:
        # Some table is locked (a migration?): ask table by table, so that only that one is left out.
        return {table: _indexes_or_none(backend, table) for table in tables}
    by_table: dict[str, list[UniqueIndex]] = {t: [] for t in tables}
    for index in found:
        by_table[tables[index.ref]].append(index)
    return by_table


def _indexes_or_none(backend: PostgresUniqueBackend, table: str) -> list[UniqueIndex] | None:
    try:
        return backend.unique_indexes([table], settings.READ_LOCK_TIMEOUT_MS)
    except TableLocked:
        return None


def _locked() -> Enforcement:
    reason = _("Could not compare: another transaction holds a lock on the table (a migration?). Try again.")
    return Enforcement(MISSING, reason=reason, busy=True)


def _classify(
    rule: Rule,
    indexes: list[UniqueIndex] | None,
    table_exists: bool,
    backend: PostgresUniqueBackend,
    migrations: _MigrationReasons,
) -> Enforcement:
    if rule.kind == CONFIGURED:
        reason = _("Configured in INTEGRITY_DUPLICATE_RULES: not enforced by the database.")
        return Enforcement(CONFIGURED_STATE, reason=reason, table_exists=table_exists)
    if not table_exists:
        return _missing(rule, False, migrations)
    if indexes is None:
        return _locked()
    if _needs_probe(rule):
        assert rule.constraint is not None
        try:
            shape = backend.probe(rule.model, rule.constraint, settings.READ_LOCK_TIMEOUT_MS)
        except TableLocked:
            return _locked()
        matches = [i for i in indexes if shape is not None and _shape_match(shape, i)]
    else:
        matches = [i for i in indexes if _plain_match(rule, i)]
    valid = [i for i in matches if i.valid]
    if valid:
        return Enforcement(ENFORCED, index=valid[0].name)
    if matches:
        reason = _(
            "Index %(index)s exists but PostgreSQL marks it invalid (a failed CREATE UNIQUE INDEX CONCURRENTLY?)."
        )
        return Enforcement(INVALID, index=matches[0].name, reason=reason % {"index": matches[0].name})
    return _missing(rule, True, migrations)


def _missing(rule: Rule, table_exists: bool, migrations: _MigrationReasons) -> Enforcement:
    reason = _missing_reason(rule, table_exists, migrations)
    migration = migrations.find(rule) if rule.model._meta.managed else None
    return Enforcement(MISSING, reason=reason, table_exists=table_exists, migration=migration)


def classify(rules: Iterable[Rule]) -> dict[str, Enforcement]:
    """Enforcement of every rule, keyed by ``rule.key``."""
    by_alias: dict[str, list[Rule]] = {}
    for rule in rules:
        by_alias.setdefault(rule.database, []).append(rule)
    result: dict[str, Enforcement] = {}
    for alias, alias_rules in by_alias.items():
        for rule, enforcement in zip(alias_rules, classify_alias(alias, alias_rules), strict=True):
            result[rule.key] = enforcement
    return result
