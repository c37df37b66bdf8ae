"""Why the errors of one event group happened, and the fix to offer: the events pages' explanation.

``explain(group)`` (``explain_many(groups)`` for a page of them) decides a
group's cause once, from what the app knows at the time (as ``evidence``
reads it, with a bounded number of queries, in the admin, never inside the
transaction that failed), and keeps it with the group (``causes``): later
pages show that cause, and it is decided again only once the group has
occurred since. A fix applied meanwhile (a resync, a merge) is then shown as
a fix (``fixes``), not as a new cause.

A unique violation is, in this order: "sequence behind" when a sequence feeds
the (single) violated column and is behind its MAX; for a primary key, else,
explicit ids or a filtering base manager (named when ``checks`` flags it);
"existing duplicates" when the rule has duplicate groups; a race only on
evidence of concurrency (failing requests of one view that overlapped in
time: one began before another had failed); otherwise a value already taken,
to validate before saving. A sequence that ran out (SQLSTATE 2200H or 22003)
is explained by ``outage``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity.duplicates.rules import Rule
from integrity.events import causes, evidence, outage
from integrity.events.explanation import (
    CHECK_FAILED,
    DUPLICATE_VALUE,
    DUPLICATES,
    EXISTING_DUPLICATES,
    EXPLICIT_IDS,
    MISSING_PARENT,
    MISSING_VALUE,
    NONE,
    OVERLAP,
    RACE,
    RESYNC,
    SEQUENCE_BEHIND,
    STILL_REFERENCED,
    UNKNOWN_CAUSE,
    WIDEN,
    Explanation,
    Fix,
)
from integrity.events.violations import (
    CHECK,
    EXCLUSION,
    FOREIGN_KEY,
    NOT_NULL,
    OUT_OF_RANGE,
    SEQUENCE_LIMIT,
    UNIQUE,
)
from integrity.models import EventGroup
from integrity.sequences import service as sequences

_DELETE = re.compile(r'^update or delete on table "(?P<parent>.+?)" violates .*? on table "(?P<child>.+?)"')


__all__ = [
    "CHECK_FAILED",
    "DUPLICATES",
    "DUPLICATE_VALUE",
    "EXISTING_DUPLICATES",
    "EXPLICIT_IDS",
    "MISSING_PARENT",
    "MISSING_VALUE",
    "NONE",
    "OVERLAP",
    "RACE",
    "RESYNC",
    "SEQUENCE_BEHIND",
    "STILL_REFERENCED",
    "UNKNOWN_CAUSE",
    "WIDEN",
    "Explanation",
    "Fix",
    "decide",
    "existing_duplicates",
    "explain",
    "explain_many",
    "sequence_behind",
]


def explain(group: EventGroup, *, keep: bool = False) -> Explanation:
    """The cause of ``group``'s errors: the one kept with it, else decided now (and, with ``keep``, kept)."""
    return explain_many([group], keep=keep)[0]


def explain_many(groups: Iterable[EventGroup], *, keep: bool = False) -> list[Explanation]:
    """``explain`` for several groups (a page of the list), in order, reading what they share once.

    Groups whose kept cause still covers every occurrence cost nothing; the
    others are decided together (sequences: two queries per database;
    samples: one query; each rule's enforcement and duplicate totals: once
    per rule) and, with ``keep``, kept (``causes.keep``: the pages do; a
    caller inside a transaction it rolls back keeps them itself, afterwards).
    """
    group_list = list(groups)
    found = {id(g): causes.stored(g) for g in group_list}
    todo = [g for g in group_list if found[id(g)] is None]
    for group, explanation in zip(todo, decide(todo), strict=True):
        found[id(group)] = explanation
    if keep:
        causes.keep((g, e) for g in todo if (e := found[id(g)]) is not None)
    return [e for g in group_list if (e := found[id(g)]) is not None]


def decide(groups: list[EventGroup]) -> list[Explanation]:
    """The causes of ``groups`` as the evidence reads now, marked ``fresh`` (decided now, not kept yet)."""
    known = evidence.Known(groups)
    now = timezone.now()
    decided = []
    for group in groups:
        explanation = _explain(group, known)
        explanation.fresh = not known.incomplete
        explanation.decided = now
        decided.append(explanation)
    return decided


def _explain(group: EventGroup, known: evidence.Known) -> Explanation:
    model = evidence.model_of(group)
    if group.kind == UNIQUE:
        return _unique(group, model, known)
    if group.kind in (SEQUENCE_LIMIT, OUT_OF_RANGE):
        return outage.explain(group, model, known.sequences_of(group, model))
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
        return sequence_behind(group, model, info) if behind and info else _explicit_ids(group, model, info)
    rule = evidence.rule_for(group, model)
    found = known.totals(rule) if rule is not None else None
    if rule is not None and found:
        return existing_duplicates(group, rule, *found)
    # A non-key column that a sequence could number (ticket numbers): errors
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
        return sequence_behind(group, model, info)
    return _duplicate_value(group)


def sequence_behind(
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


def existing_duplicates(group: EventGroup, rule: Rule, groups: int, rows: int) -> Explanation:
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
        "%(target)s already holds this value (constraint %(constraint)s): the value was simply taken, and "
        "the code saved it without checking. Validate it before saving: a ModelForm (or "
        "full_clean() / validate_unique()) says so to the user as a form error."
    ) % {"target": _target(group), "constraint": group.constraint or "?"}
    suggestions = [
        _("validate_unique() (ModelForm does) before saving"),
        _("get_or_create / update_or_create"),
    ]
    return Explanation(_("Value already taken"), text, None, suggestions, DUPLICATE_VALUE)


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
