"""What the explanations of event groups read: the evidence ``integrity.events.explain`` reasons from.

The events list explains a whole page of groups at once, in the admin, long
after the transaction that failed, so every read here is bounded and shared:
the sequence behind the violated column (two catalog queries per database),
the groups' first samples (one query), the rule's enforcement (catalog
queries) and ``pg_constraint`` for foreign key, check and exclusion
constraints. The only scan of a user table is ``duplicates.totals`` for the
rule a unique group violated, and only when the database does not enforce
that rule (an enforced rule cannot hold duplicates). A query that fails is
rolled back to its savepoint and that piece of evidence is left out: a
missing piece makes a vaguer explanation, never a broken page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, models, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity.db import filtering_base_manager
from integrity.duplicates import enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import CONFIGURED, Rule, rules_for_alias
from integrity.events.violations import OUT_OF_RANGE, SEQUENCE_LIMIT, UNIQUE
from integrity.models import Event, EventGroup
from integrity.sequences import service as sequences

SAMPLES_READ = 50  # the first samples of each group the race evidence looks at
Sample = tuple[datetime, str, datetime | None]  # failed at, view (or path), request started at

_INTEGERS = (models.IntegerField, models.AutoField)


class Known:
    """What the explanations of several groups share, each read at most once."""

    def __init__(self, groups: list[EventGroup]) -> None:
        self.groups = [g for g in groups if g.kind in (UNIQUE, SEQUENCE_LIMIT, OUT_OF_RANGE)]
        self.incomplete = False  # a read failed: the explanations are vaguer than they could be
        self._sequences: dict[str, dict[tuple[str, str], sequences.SequenceInfo]] = {}
        self._totals: dict[str, tuple[int, int] | None] = {}
        self._samples: dict[int, list[Sample]] | None = None

    def sequence(self, group: EventGroup, model: type[models.Model] | None) -> sequences.SequenceInfo | None:
        """The sequence feeding the violated column: those of every model of these groups in two queries."""
        alias, column = group.database, _key_column(group, model)
        if model is None or column is None or not _postgresql(alias):
            return None
        return self._read(alias).get((model._meta.label, column))

    def sequences_of(
        self, group: EventGroup, model: type[models.Model] | None
    ) -> list[sequences.SequenceInfo]:
        """Every sequence feeding a column of the group's model (the capacity rows of the sequences page)."""
        if model is None or not _postgresql(group.database):
            return []
        return [i for (label, _c), i in self._read(group.database).items() if label == model._meta.label]

    def _read(self, alias: str) -> dict[tuple[str, str], sequences.SequenceInfo]:
        if alias not in self._sequences:
            wanted = {m for g in self.groups if g.database == alias and (m := model_of(g)) is not None}
            self._sequences[alias] = {}
            try:
                with transaction.atomic(using=alias):
                    report = sequences.collect_alias(alias, sorted(wanted, key=lambda m: m._meta.label))
            except DatabaseError:
                self.incomplete = True
                return {}
            self._sequences[alias] = {(i.model, i.column): i for i in report.sequences}
        return self._sequences[alias]

    def totals(self, rule: Rule) -> tuple[int, int] | None:
        if rule.key not in self._totals:
            try:
                self._totals[rule.key] = _duplicates(rule)
            except _NotCounted:
                self.incomplete = True
                self._totals[rule.key] = None
        return self._totals[rule.key]

    def sample_times(self, group: EventGroup) -> list[Sample]:
        """When the group's first samples failed, where from, and when their requests began: one query for all."""
        if self._samples is None:
            self._samples = {}
            ids = [g.pk for g in self.groups if not g.primary_key]
            first = Window(RowNumber(), partition_by=[F("group_id")], order_by=[F("created_at").asc()])
            rows = (
                Event.objects.db_manager(group._state.db)
                .filter(group_id__in=ids)
                .annotate(n=first)
                .filter(n__lte=SAMPLES_READ)
                .order_by("group_id", "created_at")
                .values_list("group_id", "created_at", "view", "path", "started_at")
            )
            for group_id, created_at, view, path, started_at in rows:
                self._samples.setdefault(group_id, []).append((created_at, view or path, started_at))
        return self._samples.get(group.pk, [])


# Models and rules ------------------------------------------------------------------------------


def model_of(group: EventGroup) -> type[models.Model] | None:
    """The group's model, or None once it is gone (events outlive the code that raised them)."""
    if not group.model:
        return None
    try:
        return apps.get_model(group.model)
    except (LookupError, ValueError):
        return None


def _key_column(group: EventGroup, model: type[models.Model] | None) -> str | None:
    columns = list(group.columns)
    if not columns and group.primary_key and model is not None:
        columns = [str(model._meta.pk.column)]
    return columns[0] if len(columns) == 1 else None


def rule_for(group: EventGroup, model: type[models.Model] | None) -> Rule | None:
    """The model's rule the constraint enforces: by name, else the one rule on exactly these columns."""
    if model is None or group.database not in connections:
        return None
    rules = [r for r in rules_for_alias(group.database, [model]) if r.kind != CONFIGURED]
    named = [r for r in rules if group.constraint and r.name == group.constraint]
    if named:
        return named[0]
    columns = sorted(group.columns)
    matches = [r for r in rules if not r.expressions and columns and sorted(r.columns) == columns]
    unconditional = [r for r in matches if r.condition is None]
    for candidates in (matches, unconditional):
        if len(candidates) == 1:
            return candidates[0]
    return None


def _duplicates(rule: Rule) -> tuple[int, int] | None:
    """(groups, rows) of the rule's duplicates; no scan when the database enforces the rule."""
    try:
        with transaction.atomic(using=rule.database):
            state = enforcement.classify([rule])[rule.key].state
    except DatabaseError:
        state = None
    if state in (enforcement.ENFORCED, enforcement.UNSUPPORTED):
        return None
    try:
        groups, rows = duplicates.totals(rule)
    except (duplicates.ScanTimedOut, DatabaseError) as exc:
        raise _NotCounted from exc
    return (groups, rows) if groups else None


class _NotCounted(Exception):
    """The rule's duplicates could not be counted in time: that piece of evidence is missing."""


def numbered(group: EventGroup, model: type[models.Model] | None) -> bool:
    """Is the key one integer field (a number a sequence could hand out), or unknown?"""
    if model is None or len(group.fields) != 1:
        return model is None
    try:
        return isinstance(model._meta.get_field(group.fields[0]), _INTEGERS)
    except LookupError:
        return False


def related_label(model: type[models.Model] | None, group: EventGroup) -> str | None:
    """The model the group's one foreign key points at, which names the parent better than its table."""
    if model is None or len(group.fields) != 1:
        return None
    try:
        related = model._meta.get_field(group.fields[0]).related_model
    except LookupError:
        return None
    return related._meta.label if isinstance(related, type) else None


def manager_note(model: type[models.Model] | None) -> str | None:
    """The hidden-row story in words, when ``checks`` flags the model's base manager: it turns save() into an INSERT."""
    manager = filtering_base_manager(model) if model is not None else None
    if manager is None:
        return None
    return _(
        "%(model)s's base manager '%(manager)s' filters rows: save() of a row it hides finds nothing to "
        "UPDATE and INSERTs the row again with its existing primary key."
    ) % {"model": model._meta.label if model else "", "manager": manager}


# Samples ---------------------------------------------------------------------------------------


def race(group: EventGroup, samples: list[Sample]) -> str | None:
    """The evidence of concurrency, if any: failing requests of one view that ran at the same time.

    Two failures overlap when one request began before the other failed.
    Failures close together, one after the other (a user submitting a form
    again), are no evidence, and neither is an error the application caught:
    only samples that know when their request began count, and only those of
    the same view (or path).
    """
    by_source: dict[str, list[tuple[datetime, datetime]]] = {}
    for failed, source, started in samples:
        if started is not None:
            by_source.setdefault(source, []).append((started, failed))
    overlapping = 0
    for runs in by_source.values():
        runs.sort(key=lambda run: run[1])
        overlapping += sum(1 for a, b in zip(runs, runs[1:], strict=False) if b[0] < a[1])
    if not overlapping:
        return None
    return ngettext(
        "%(n)d failing request began before another one of the same view had failed",
        "%(n)d failing requests began before another one of the same view had failed",
        overlapping,
    ) % {"n": overlapping}


# The catalog -----------------------------------------------------------------------------------


def foreign_key(group: EventGroup) -> tuple[Any, ...] | None:
    """(child table, parent table, deferred) of the group's foreign key constraint.

    Constraint names are unique per table only: the one on the group's table
    (as child or parent) wins.
    """
    return _query(
        group.database,
        "SELECT conrelid::regclass::text, confrelid::regclass::text, condeferred FROM pg_constraint "
        "WHERE conname = %s AND contype = 'f' "
        "ORDER BY (conrelid = to_regclass(%s) OR confrelid = to_regclass(%s)) DESC NULLS LAST LIMIT 1",
        [group.constraint, *[_regclass(group.database, group.table)] * 2],
    )


def definition(group: EventGroup, contype: str) -> str | None:
    """The definition of the group's check (``contype`` "c") or exclusion ("x") constraint."""
    alias = group.database
    row = _query(
        alias,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s AND contype = %s "
        "ORDER BY (conrelid = to_regclass(%s)) DESC NULLS LAST LIMIT 1",
        [group.constraint, contype, _regclass(alias, group.table)],
    )
    return row[0] if row else None


def _postgresql(alias: str) -> bool:
    return alias in connections and connections[alias].vendor == "postgresql"


def _query(alias: str, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """One catalog row, in a savepoint: a failure leaves the caller's transaction usable."""
    if not _postgresql(alias):
        return None
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except DatabaseError:
        return None
    return tuple(row) if row else None


def _regclass(alias: str, table: str) -> str | None:
    """``"schema"."table"`` for ``to_regclass``, from the group's ``schema.table`` or ``table``."""
    if not table or not _postgresql(alias):
        return None
    qn = connections[alias].ops.quote_name
    return ".".join(qn(part) for part in table.split(".", 1))
