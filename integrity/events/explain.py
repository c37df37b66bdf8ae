"""Why the IntegrityErrors of one event group happened, and the fix to offer: the events pages' explanation.

``explain(group)`` (``explain_many(groups)`` for a page of them) reasons from
what the app knows now, as ``explain_evidence`` reads it with a bounded number
of queries, in the admin, never inside the transaction that failed. This
module decides which cause the evidence points to and says so, with the fix.

A unique violation is, in this order: "sequence behind" when a sequence feeds
the (single) violated column and is behind its MAX; for a primary key, else,
explicit ids or a filtering base manager (named when ``checks`` flags it);
"existing duplicates" when the rule has duplicate groups; a race when two
consecutive samples of one view were taken within
``explain_evidence.RACE_WINDOW`` of each other, or when the application caught
some of the errors (``handled_count > 0``: Django's ``get_or_create`` catches
the IntegrityError of the request that lost a race); otherwise a plain
duplicate value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity.duplicates.rules import Rule
from integrity.events import evidence
from integrity.events.violations import CHECK, EXCLUSION, FOREIGN_KEY, NOT_NULL, UNIQUE
from integrity.models import EventGroup
from integrity.sequences import service as sequences

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
    known = evidence.Known(group_list)
    return [_explain(group, known) for group in group_list]


def _explain(group: EventGroup, known: evidence.Known) -> Explanation:
    model = evidence.model_of(group)
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


# Naming things ---------------------------------------------------------------------------------


def _target(group: EventGroup) -> str:
    """``shop.Product.id``, ``crm.Mentorship (mentee, mentor)``, or the table and columns."""
    names = list(group.fields) if group.model and group.fields else list(group.columns)
    owner = group.model or group.table or group.constraint
    if len(names) == 1:
        return f"{owner}.{names[0]}"
    return f"{owner} ({', '.join(names)})" if names else owner


# Unique ----------------------------------------------------------------------------------------


def _unique(group: EventGroup, model: type[models.Model] | None, known: evidence.Known) -> Explanation:
    info = known.sequence(group, model)
    behind = info is not None and info.status == sequences.BEHIND
    if group.primary_key:
        return _sequence_behind(group, model, info) if behind and info else _explicit_ids(group, model, info)
    rule = evidence.rule_for(group, model)
    found = known.totals(rule) if rule is not None else None
    if rule is not None and found:
        return _existing_duplicates(group, rule, *found)
    # A non-key column that a sequence could number (seed 003's tickets): errors
    # close together say the values come from read-then-write code, whatever
    # the sequence's state; the sequence is then the fix, once resynced.
    concurrency = evidence.race(group, known.sample_times(group))
    if concurrency:
        explanation = _race(group, model, concurrency)
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
    note = evidence.manager_note(model) if group.primary_key else None
    if note:
        suggestions.append(note)
    fix = Fix(_("Resync the sequence"), RESYNC, sequence_key=info.key)
    return Explanation(_("Sequence behind"), text, fix, suggestions, SEQUENCE_BEHIND)


def _explicit_ids(
    group: EventGroup, model: type[models.Model] | None, info: sequences.SequenceInfo | None
) -> Explanation:
    cause = _("Explicit ids or a filtering base manager")
    note = evidence.manager_note(model)
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


def _race(group: EventGroup, model: type[models.Model] | None, concurrency: str) -> Explanation:
    text = _(
        "%(target)s: requests running at the same time wrote the same value (%(evidence)s). Code that "
        "reads, then writes (check-then-create, MAX + 1) lets two requests pick the same value; the "
        "constraint %(constraint)s stops the second."
    ) % {"target": _target(group), "evidence": concurrency, "constraint": group.constraint or "?"}
    suggestions = [_("get_or_create / update_or_create"), _("select_for_update")]
    if evidence.numbered(group, model):
        suggestions.append(_("a database sequence"))
    return Explanation(_("Race in read-then-write code"), text, None, suggestions, RACE)


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
    row = evidence.foreign_key(group)
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
    related = evidence.related_label(model, group)
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
    definition = evidence.definition(group, "c" if group.kind == CHECK else "x")
    values = {
        "constraint": group.constraint or "?",
        "target": group.model or group.table or "?",
        "definition": _("definition not found") if definition is None else definition,
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
