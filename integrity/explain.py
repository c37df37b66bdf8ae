"""Why the IntegrityErrors of one event group happened, and the fix to offer: the events pages' explanation.

``explain(group)`` (``explain_many(groups)`` for a page of them) reads what
the app knows now, with a bounded number of queries: the sequence behind the
violated column (two catalog queries per database), the groups' first
samples (one query), the rule's enforcement (catalog queries) and
``pg_constraint`` for foreign key, check and exclusion constraints. The only
scan of a user table is ``duplicates.totals`` for the rule a unique group
violated, and only when the database does not enforce that rule (an enforced
rule cannot hold duplicates). It runs in the admin, never inside the
transaction that failed; a query that fails is rolled back to its savepoint
and that piece of evidence is left out.

A unique violation is, in this order: "sequence behind" when a sequence feeds
the (single) violated column and is behind its MAX; for a primary key, else,
explicit ids or a filtering base manager (named when ``checks`` flags it);
"existing duplicates" when the rule has duplicate groups; a race when two
consecutive samples were taken within ``RACE_WINDOW`` of each other, or when
the application caught some of the errors (``handled_count > 0``: Django's
``get_or_create`` catches the IntegrityError of the request that lost a
race); otherwise a plain duplicate value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, models, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity import duplicates, enforcement, sequences
from integrity.checks import _filtering_base_manager
from integrity.models import Event, EventGroup
from integrity.rules import CONFIGURED, Rule, rules_for_alias
from integrity.violations import CHECK, EXCLUSION, FOREIGN_KEY, NOT_NULL, UNIQUE

RACE_WINDOW = timedelta(seconds=2)
SAMPLES_READ = 50  # the first samples of each group the race heuristic looks at

RESYNC, DUPLICATES, NONE = "resync", "duplicates", "none"

# Stable codes of the causes (Explanation.code), for templates and tests; ``cause`` is translated.
SEQUENCE_BEHIND = "sequence_behind"
EXPLICIT_IDS = "explicit_ids"
RACE = "race"
EXISTING_DUPLICATES = "existing_duplicates"
DUPLICATE_VALUE = "duplicate_value"
MISSING_PARENT = "missing_parent"
STILL_REFERENCED = "still_referenced"
MISSING_VALUE = "missing_value"
CHECK_FAILED = "check_failed"
OVERLAP = "overlap"
UNKNOWN_CAUSE = "unknown"

_DELETE = re.compile(r'^update or delete on table "(?P<parent>.+?)" violates .*? on table "(?P<child>.+?)"')
_INTEGERS = (models.IntegerField, models.AutoField)


@dataclass
class Fix:
    """The action the page offers: a resync of one sequence, or a rule's duplicate groups."""

    label: str
    kind: str  # RESYNC, DUPLICATES or NONE
    sequence_key: str | None = None  # the sequences page's resync form posts it as "key"
    rule_key: str | None = None  # Rule.key: /admin/integrity/duplicaterule/rule/?rule=<key>


@dataclass
class Explanation:
    """The likely cause of a group's errors, in words, with a fix and what to change in the code."""

    cause: str
    text: str
    fix: Fix | None
    suggestions: list[str] = field(default_factory=list)
    code: str = UNKNOWN_CAUSE


def explain(group: EventGroup) -> Explanation:
    """The likely cause of ``group``'s IntegrityErrors, from the database's state now and its samples."""
    return explain_many([group])[0]


def explain_many(groups: Iterable[EventGroup]) -> list[Explanation]:
    """``explain`` for several groups (a page of the list), in order, reading what they share once.

    Sequences: two queries per database; samples: one query; each rule's
    enforcement and duplicate totals: once per rule.
    """
    group_list = list(groups)
    known = _Known(group_list)
    return [_explain(group, known) for group in group_list]


def _explain(group: EventGroup, known: _Known) -> Explanation:
    model = _model(group)
    if group.kind == UNIQUE:
        return _unique(group, model, known)
    if group.kind == FOREIGN_KEY:
        return _foreign_key(group, model)
    if group.kind == NOT_NULL:
        return _not_null(group)
    if group.kind in (CHECK, EXCLUSION):
        return _constraint(group)
    text = _("The database reported: %(message)s") % {"message": group.message or group.kind}
    return Explanation(_("Unknown"), text, None, [], UNKNOWN_CAUSE)


class _Known:
    """What the explanations of several groups share, each read at most once."""

    def __init__(self, groups: list[EventGroup]) -> None:
        self.groups = [g for g in groups if g.kind == UNIQUE]
        self._sequences: dict[str, dict[tuple[str, str], sequences.SequenceInfo]] = {}
        self._totals: dict[str, tuple[int, int] | None] = {}
        self._samples: dict[int, list[tuple[datetime, str]]] | None = None

    def sequence(self, group: EventGroup, model: type[models.Model] | None) -> sequences.SequenceInfo | None:
        """The sequence feeding the violated column: those of every model of these groups in two queries."""
        alias, column = group.database, _key_column(group, model)
        if model is None or column is None or not _postgresql(alias):
            return None
        if alias not in self._sequences:
            wanted = {m for g in self.groups if g.database == alias and (m := _model(g)) is not None}
            self._sequences[alias] = {}
            try:
                with transaction.atomic(using=alias):
                    report = sequences.collect_alias(alias, sorted(wanted, key=lambda m: m._meta.label))
            except DatabaseError:
                return None
            self._sequences[alias] = {(i.model, i.column): i for i in report.sequences}
        return self._sequences[alias].get((model._meta.label, column))

    def totals(self, rule: Rule) -> tuple[int, int] | None:
        if rule.key not in self._totals:
            self._totals[rule.key] = _duplicates(rule)
        return self._totals[rule.key]

    def sample_times(self, group: EventGroup) -> list[tuple[datetime, str]]:
        """When the group's first samples were taken, and where from: those of every group in one query."""
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
                .values_list("group_id", "created_at", "view", "path")
            )
            for group_id, created_at, view, path in rows:
                self._samples.setdefault(group_id, []).append((created_at, view or path))
        return self._samples.get(group.pk, [])


# Naming things ---------------------------------------------------------------------------------


def _model(group: EventGroup) -> type[models.Model] | None:
    if not group.model:
        return None
    try:
        return apps.get_model(group.model)
    except (LookupError, ValueError):
        return None


def _target(group: EventGroup) -> str:
    """``shop.Product.id``, ``crm.Mentorship (mentee, mentor)``, or the table and columns."""
    names = list(group.fields) if group.model and group.fields else list(group.columns)
    owner = group.model or group.table or group.constraint
    if len(names) == 1:
        return f"{owner}.{names[0]}"
    return f"{owner} ({', '.join(names)})" if names else owner


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


# Unique ----------------------------------------------------------------------------------------


def _unique(group: EventGroup, model: type[models.Model] | None, known: _Known) -> Explanation:
    info = known.sequence(group, model)
    behind = info is not None and info.status == sequences.BEHIND
    if group.primary_key:
        return _sequence_behind(group, model, info) if behind and info else _explicit_ids(group, model, info)
    rule = _rule(group, model)
    found = known.totals(rule) if rule is not None else None
    if rule is not None and found:
        return _existing_duplicates(group, rule, *found)
    # A non-key column that a sequence could number (seed 003's tickets): errors
    # close together say the values come from read-then-write code, whatever
    # the sequence's state; the sequence is then the fix, once resynced.
    evidence = _race_evidence(group, known.sample_times(group))
    if evidence:
        explanation = _race(group, model, evidence)
        if behind and info:
            explanation.text += " " + _(
                "Sequence %(sequence)s feeds this column but is behind its values: resync it before "
                "letting the database number the rows."
            ) % {"sequence": info.sequence}
            explanation.fix = Fix(_("Resync the sequence"), RESYNC, sequence_key=info.key)
        return explanation
    if behind and info:
        return _sequence_behind(group, model, info)
    return _duplicate_value(group)


def _key_column(group: EventGroup, model: type[models.Model] | None) -> str | None:
    columns = list(group.columns)
    if not columns and group.primary_key and model is not None:
        columns = [str(model._meta.pk.column)]
    return columns[0] if len(columns) == 1 else None


def _manager_note(model: type[models.Model] | None) -> str | None:
    manager = _filtering_base_manager(model) if model is not None else None
    if manager is None:
        return None
    return _(
        "%(model)s's base manager '%(manager)s' filters rows: save() of a row it hides finds nothing to "
        "UPDATE and INSERTs the row again with its existing primary key."
    ) % {"model": model._meta.label if model else "", "manager": manager}


def _sequence_behind(
    group: EventGroup, model: type[models.Model] | None, info: sequences.SequenceInfo
) -> Explanation:
    text = _(
        "Sequence %(sequence)s numbers %(target)s and would hand out %(next)s next, but the column already "
        "holds values up to %(max)s: inserts that take a number from it collide with existing rows. Rows "
        "were written with explicit values (a data migration, fixture, import or bulk_create) and the "
        "sequence was never moved past them."
    ) % {"sequence": info.sequence, "target": _target(group), "next": info.next_value, "max": info.max_value}
    suggestions = [
        _("resync sequences after writing rows with explicit ids (sqlsequencereset)"),
        _("let the database assign the values: do not set them in code"),
    ]
    note = _manager_note(model) if group.primary_key else None
    if note:
        suggestions.append(note)
    fix = Fix(_("Resync the sequence"), RESYNC, sequence_key=info.key)
    return Explanation(_("Sequence behind"), text, fix, suggestions, SEQUENCE_BEHIND)


def _explicit_ids(
    group: EventGroup, model: type[models.Model] | None, info: sequences.SequenceInfo | None
) -> Explanation:
    cause = _("Explicit ids or a filtering base manager")
    note = _manager_note(model)
    if note:
        text = note + " " + _("Set Meta.base_manager_name to a manager that does not filter.")
        return Explanation(cause, text, None, [_("an unfiltered Meta.base_manager_name")], EXPLICIT_IDS)
    text = _(
        "%(target)s: code inserted a row with a primary key that already exists (an explicit id, a copied "
        "object saved again, or force_insert)."
    ) % {"target": _target(group)}
    if info is not None:
        text += " " + _("Sequence %(sequence)s is not behind now.") % {"sequence": info.sequence}
    suggestions = [
        _("let the database assign primary keys (pk=None before saving a copy)"),
        _("update_or_create / save(update_fields=…) for rows that may exist"),
    ]
    return Explanation(cause, text, None, suggestions, EXPLICIT_IDS)


def _rule(group: EventGroup, model: type[models.Model] | None) -> Rule | None:
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
    except (duplicates.ScanTimedOut, DatabaseError):
        return None
    return (groups, rows) if groups else None


def _existing_duplicates(group: EventGroup, rule: Rule, groups: int, rows: int) -> Explanation:
    text = ngettext(
        "%(model)s has %(groups)d group of rows sharing %(fields)s (%(rows)d rows): the unique rule %(rule)s "
        "cannot be enforced (nor its index created) until they are merged.",
        "%(model)s has %(groups)d groups of rows sharing %(fields)s (%(rows)d rows): the unique rule "
        "%(rule)s cannot be enforced (nor its index created) until they are merged.",
        groups,
    ) % {"model": rule.label, "groups": groups, "fields": rule.description, "rows": rows, "rule": rule.name}
    fix = Fix(_("See the duplicate groups"), DUPLICATES, rule_key=rule.key)
    suggestions = [_("merge the duplicates, then add the constraint again")]
    return Explanation(_("Existing duplicates"), text, fix, suggestions, EXISTING_DUPLICATES)


def _race_evidence(group: EventGroup, samples: list[tuple[datetime, str]]) -> str | None:
    """Why the errors look concurrent: samples of one view close together, or errors the application caught.

    Only samples from the same view (or path) count: the same value written
    by two different pages shortly after each other is a duplicate value, not
    two runs of one read-then-write racing.
    """
    by_source: dict[str, list[datetime]] = {}
    for when, source in samples:
        by_source.setdefault(source, []).append(when)
    close = sum(
        1
        for times in by_source.values()
        for a, b in zip(times, times[1:], strict=False)
        if b - a <= RACE_WINDOW
    )
    if close:
        return ngettext(
            "%(n)d pair of samples of one view less than %(s)d seconds apart",
            "%(n)d pairs of samples of one view less than %(s)d seconds apart",
            close,
        ) % {"n": close, "s": RACE_WINDOW.total_seconds()}
    if group.handled_count:
        return ngettext(
            "the application caught %(n)d of these errors",
            "the application caught %(n)d of these errors",
            group.handled_count,
        ) % {"n": group.handled_count}
    return None


def _race(group: EventGroup, model: type[models.Model] | None, evidence: str) -> Explanation:
    text = _(
        "%(target)s: requests running at the same time wrote the same value (%(evidence)s). Code that "
        "reads, then writes (check-then-create, MAX + 1) lets two requests pick the same value; the "
        "constraint %(constraint)s stops the second."
    ) % {"target": _target(group), "evidence": evidence, "constraint": group.constraint or "?"}
    suggestions = [_("get_or_create / update_or_create"), _("select_for_update")]
    if _numbered(group, model):
        suggestions.append(_("a database sequence"))
    return Explanation(_("Race in read-then-write code"), text, None, suggestions, RACE)


def _numbered(group: EventGroup, model: type[models.Model] | None) -> bool:
    """Is the key one integer field (a number a sequence could hand out), or unknown?"""
    if model is None or len(group.fields) != 1:
        return model is None
    try:
        return isinstance(model._meta.get_field(group.fields[0]), _INTEGERS)
    except LookupError:
        return False


def _duplicate_value(group: EventGroup) -> Explanation:
    text = _(
        "%(target)s already holds this value (constraint %(constraint)s): code saves it without checking, "
        "or checks first and creates later."
    ) % {"target": _target(group), "constraint": group.constraint or "?"}
    suggestions = [
        _("get_or_create / update_or_create"),
        _("validate_unique() (ModelForm does) before saving"),
    ]
    return Explanation(_("Duplicate value"), text, None, suggestions, DUPLICATE_VALUE)


# Foreign key, not null, check, exclusion ---------------------------------------------------------


def _foreign_key(group: EventGroup, model: type[models.Model] | None) -> Explanation:
    """Insert or update of a child whose parent is missing, or a delete of a parent still referenced."""
    row = _query(
        group.database,
        "SELECT conrelid::regclass::text, confrelid::regclass::text, condeferred FROM pg_constraint "
        "WHERE conname = %s AND contype = 'f' "
        "ORDER BY (conrelid = to_regclass(%s) OR confrelid = to_regclass(%s)) DESC NULLS LAST LIMIT 1",
        [group.constraint, *[_regclass(group.database, group.table)] * 2],
    )
    deleted = _DELETE.match(group.message or "")
    child, parent = (row[0], row[1]) if row else (group.table, "?")
    if deleted:
        child, parent = deleted["child"], deleted["parent"]
        text = _(
            "A row of %(parent)s was deleted (or its key changed) while rows of %(child)s still point at it "
            "(constraint %(constraint)s)."
        ) % {"parent": group.model or parent, "child": child, "constraint": group.constraint or "?"}
        suggestions = [_("on_delete=CASCADE, PROTECT or SET_NULL, and deletes through the ORM")]
        return Explanation(_("Row still referenced"), text, None, suggestions, STILL_REFERENCED)
    related = _related_label(model, group)
    text = _("%(target)s points at a row of %(parent)s that does not exist (constraint %(constraint)s).") % {
        "target": _target(group),
        "parent": related or parent,
        "constraint": group.constraint or "?",
    }
    if row is None or row[2]:
        text += " " + _(
            "The constraint is checked at COMMIT: the parent was deleted, or never created, in the same "
            "transaction, or deleted by another one meanwhile."
        )
    suggestions = [
        _("create or fetch the parent in the same transaction, before its children"),
        _("select_for_update() on the parent while adding children"),
    ]
    return Explanation(_("Parent deleted or never created"), text, None, suggestions, MISSING_PARENT)


def _related_label(model: type[models.Model] | None, group: EventGroup) -> str | None:
    if model is None or len(group.fields) != 1:
        return None
    try:
        related = model._meta.get_field(group.fields[0]).related_model
    except LookupError:
        return None
    return related._meta.label if isinstance(related, type) else None


def _not_null(group: EventGroup) -> Explanation:
    text = _("%(target)s was saved without a value, and the column is NOT NULL.") % {"target": _target(group)}
    suggestions = [
        _("set the field before saving (a required form field)"),
        _("a default or db_default"),
        _("null=True if the value may be missing"),
    ]
    return Explanation(_("Missing value"), text, None, suggestions, MISSING_VALUE)


def _constraint(group: EventGroup) -> Explanation:
    """A check or exclusion constraint, with its definition from the catalog."""
    alias = group.database
    row = _query(
        alias,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s AND contype = %s "
        "ORDER BY (conrelid = to_regclass(%s)) DESC NULLS LAST LIMIT 1",
        [
            group.constraint,
            "c" if group.kind == CHECK else "x",
            _regclass(alias, group.table),
        ],
    )
    values = {
        "constraint": group.constraint or "?",
        "target": group.model or group.table or "?",
        "definition": row[0] if row else _("definition not found"),
    }
    if group.kind == CHECK:
        text = _("A row of %(target)s failed the check constraint %(constraint)s: %(definition)s.") % values
        suggestions = [_("a CheckConstraint in Meta.constraints, so that full_clean() reports it")]
        return Explanation(_("Check failed"), text, None, suggestions, CHECK_FAILED)
    text = (
        _(
            "A row of %(target)s overlaps an existing one under the exclusion constraint %(constraint)s: "
            "%(definition)s."
        )
        % values
    )
    suggestions = [
        _("check for overlaps before saving, holding a lock (select_for_update)"),
        _("an ExclusionConstraint in Meta.constraints, so that full_clean() reports it"),
    ]
    return Explanation(_("Overlapping rows"), text, None, suggestions, OVERLAP)
