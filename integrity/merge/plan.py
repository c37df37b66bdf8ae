"""What a merge of duplicate rows would do: the plan shown as a preview and re-checked under lock.

A plan is computed from the database in a number of queries that depends on
the relations to the model, never on the number of referencing rows: one per
relation (how many rows reference each member, and a digest of their primary
keys) and one per child uniqueness rule that re-pointing could break. Its
``token`` digests everything the preview showed; a merge confirmed with a
token that no longer matches is refused as stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, F, Model, QuerySet, Sum
from django.utils.translation import gettext as _

from integrity import reads
from integrity.duplicates import service as duplicates
from integrity.duplicates.relations import GENERIC, MANY_TO_MANY, Relation
from integrity.duplicates.rules import InvalidPk, Rule, parse_pk
from integrity.duplicates.service import GROUP_LIMIT
from integrity.merge import catalog
from integrity.merge.catalog import TableRelation
from integrity.merge.conflicts import Conflict, count_collapsed, find_conflicts, resolve
from integrity.merge.exceptions import (
    BadChoice,
    GroupGone,
    MergeBusy,
    MergeRefused,
    NotDuplicates,
    Unsupported,
)
from integrity.merge.indexes import check_indexes
from integrity.merge.postgresql import RowHash
from integrity.merge.references import References, references


@dataclass
class Move:
    """One relation's rows: how many reference each member, and which values move to the survivor's."""

    relation: Any  # Relation | TableRelation (a table without a model)
    counts: dict[Any, int]  # member pk -> rows referencing it
    olds: list[Any]  # target values whose rows are re-pointed
    new: Any  # the survivor's (final) target value
    moved_from: list[Any]  # members whose rows move
    digest: int = 0
    collapsed: int = 0  # rows deleted by a conflict resolution instead of moved

    @property
    def moving(self) -> int:
        """Rows that will be re-pointed to the survivor."""
        return sum(self.counts.get(pk, 0) for pk in self.moved_from) - self.collapsed


@dataclass
class FieldChange:
    name: str
    attname: str
    source: Any  # member pk the value comes from
    before: Any
    after: Any


@dataclass
class Plan:
    rule: Rule
    survivor: Model
    duplicates: list[Model]
    # The group's first GROUP_LIMIT pks by its key, for a preview's token (a row that joins
    # the group makes the preview stale); a plan read without the group: its members' pks.
    group: list[Any]
    moves: list[Move] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    token: str = ""
    references: References | None = None

    @property
    def members(self) -> list[Model]:
        return sorted([self.survivor, *self.duplicates], key=lambda m: m.pk)

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.keep is None]

    @property
    def moving(self) -> int:
        return sum(m.moving for m in self.moves)

    @property
    def collapsed(self) -> int:
        """Conflicting child rows the chosen resolutions delete (each once, as the merge deletes them)."""
        return len({(c.holder, pk) for c in self.conflicts if c.keep is not None for pk in c.losers})

    @property
    def deleted(self) -> int:
        """Rows the merge deletes: each duplicate at every level of its inheritance chain, and the conflicts' losers.

        What the merge record counts as ``deleted`` once the merge is done.
        """
        levels = len(self.references.levels) if self.references is not None else 1
        return len(self.duplicates) * levels + self.collapsed

    def reference_totals(self) -> dict[Any, int]:
        """Per member, how many rows reference it across every relation."""
        totals = {m.pk: 0 for m in self.members}
        for move in self.moves:
            for pk, n in move.counts.items():
                totals[pk] += n
        return totals


# ---------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------


def to_pk(rule: Rule, raw: Any) -> Any:
    """``raw`` as a primary key of the rule's model; ``BadChoice`` if it cannot be one."""
    try:
        return parse_pk(rule, raw)
    except InvalidPk as exc:
        raise BadChoice(str(exc)) from None


def load_members(
    rule: Rule, survivor_pk: Any, duplicate_pks: Iterable[Any], *, group: bool = True
) -> tuple[Model, list[Model], list[Any]]:
    """The survivor, the duplicates and the whole group, checked to be duplicates of each other.

    The members are read by primary key. ``group=False``: the group is not read
    by its key (the members' pks stand for it): the key of a rule the database
    doesn't enforce has no index, so that read is a scan of the whole table.
    """
    # Keys from a form or the command line are text: compare them as primary keys.
    survivor_pk = to_pk(rule, survivor_pk)
    dups = list(dict.fromkeys(pk for pk in (to_pk(rule, raw) for raw in duplicate_pks) if pk != survivor_pk))
    if not dups:
        raise BadChoice(_("Choose at least one duplicate to merge into the survivor."))
    wanted = [survivor_pk, *dups]
    qs, names = duplicates.keyed(rule)
    rows = {m.pk: m for m in qs.filter(pk__in=wanted)}
    if survivor_pk not in rows:
        exists = QuerySet(model=rule.model, using=rule.database).filter(pk=survivor_pk).exists()
        if not exists:
            raise GroupGone(
                _("%(model)s row %(pk)s does not exist (any more).")
                % {"model": rule.label, "pk": survivor_pk}
            )
        raise NotDuplicates(
            _("%(model)s row %(pk)s is not a duplicate under this rule.")
            % {"model": rule.label, "pk": survivor_pk}
        )
    survivor = rows[survivor_pk]
    key = tuple(getattr(survivor, n) for n in names)
    missing = [pk for pk in dups if pk not in rows]
    strangers = [pk for pk in dups if pk in rows and tuple(getattr(rows[pk], n) for n in names) != key]
    if missing or strangers:
        # Rows that exist but have no key (a NULL in a nulls-distinct rule) are nobody's duplicates.
        existing: Any = (
            QuerySet(model=rule.model, using=rule.database)
            .filter(pk__in=missing)
            .values_list("pk", flat=True)
        )
        absent = sorted(set(missing) - set(existing), key=str)
        if absent:
            message = _("%(model)s rows %(pks)s do not exist (any more).")
            raise GroupGone(message % {"model": rule.label, "pks": ", ".join(map(str, absent))})
        message = _("%(model)s rows %(pks)s are not duplicates of row %(pk)s under this rule.")
        others = ", ".join(str(pk) for pk in sorted([*strangers, *existing], key=str))
        raise NotDuplicates(message % {"model": rule.label, "pks": others, "pk": survivor_pk})
    pks = wanted  # the survivor, then the duplicates
    if group:
        pks = list(
            qs.filter(**dict(zip(names, key, strict=True)))
            .order_by("pk")
            .values_list("pk", flat=True)[:GROUP_LIMIT]
        )
    return survivor, sorted((rows[pk] for pk in dups), key=lambda m: m.pk), pks


# ---------------------------------------------------------------------------
# Field values
# ---------------------------------------------------------------------------


def choosable_fields(model: type[Model]) -> list[Any]:
    """Fields whose value the survivor may take from another member: every concrete field but the key."""
    return [f for f in model._meta.local_concrete_fields if not f.primary_key]


def field_changes(
    rule: Rule, survivor: Model, members: Mapping[Any, Model], choices: Mapping[str, Any], targets: set[str]
) -> list[FieldChange]:
    """The survivor's new values, each from the member chosen for its field; ``BadChoice`` on a bad name or member."""
    by_name = {f.name: f for f in choosable_fields(rule.model)}
    changes = []
    for name, source in choices.items():
        f = by_name.get(name)
        if f is None:
            raise BadChoice(
                _("%(model)s has no field %(name)r to choose a value for.")
                % {"model": rule.label, "name": name}
            )
        try:
            source = to_pk(rule, source)
        except BadChoice:
            source = None
        if source not in members:
            raise BadChoice(_("Row %(pk)s is not one of the rows being merged.") % {"pk": choices[name]})
        before, after = getattr(survivor, f.attname), getattr(members[source], f.attname)
        if f.is_relation and f.remote_field.model is rule.model and after in members and after != survivor.pk:
            after = survivor.pk  # a reference to a row being merged away becomes one to the survivor
        if after is None and before is not None and f.attname in targets:
            message = _("%(name)s cannot be emptied: other rows reference %(model)s by it.")
            raise BadChoice(message % {"name": name, "model": rule.label})
        if before != after:
            changes.append(FieldChange(name, f.attname, source, before, after))
    return changes


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


def _final(survivor: Model, changes: list[FieldChange], attname: str) -> Any:
    for change in changes:
        if change.attname == attname:
            return change.after
    return getattr(survivor, attname)


def _tally(alias: str, rel: Relation | TableRelation, values: list[Any]) -> list[tuple[Any, int, int]]:
    """Per referenced value, the rows referencing it and the summed hash of their primary keys."""
    if isinstance(rel, TableRelation):
        return catalog.tally(alias, rel, values)
    pk: Any = rel.holder._meta.pk
    rows = (
        rel.rows(alias, values)
        .values_list(rel.field.attname)
        .annotate(c=Count("*"), h=Sum(RowHash(F(pk.attname))))
    )
    return [(value, c, int(h or 0)) for value, c, h in rows]


def _moves(
    rule: Rule, survivor: Model, members: list[Model], changes: list[FieldChange], relations: list[Any]
) -> list[Move]:
    """Per relation, one query: rows referencing each member and a digest of their primary keys."""
    moves = []
    for rel in relations:
        values = {getattr(m, rel.target): m.pk for m in members if getattr(m, rel.target) is not None}
        new = _final(survivor, changes, rel.target)
        counts: dict[Any, int] = {}
        digest = 0
        # Only the values the column can hold can be referenced by it (a UUID is in no integer column).
        stored = rel.storable(values)
        if stored:
            for value, c, h in _tally(rule.database, rel, list(stored.values())):
                counts[values[stored[value]]] = c
                digest += h
        olds = [v for v in stored.values() if v != new]
        if olds and rel.kind == GENERIC and not rel.storable([new]):
            if any(counts.get(values[v]) for v in olds):
                message = _(
                    "Rows of %(rel)s reference the duplicates, but its column %(column)s cannot hold "
                    "the survivor's %(value)r: keep a row whose key it can hold."
                )
                raise MergeRefused(message % {"rel": rel.label, "column": rel.column, "value": new})
            olds = []  # nothing references the duplicates by it: nothing to move
        moves.append(Move(rel, counts, olds, new, [values[v] for v in olds], digest))
    return moves


def _adopted(rule: Rule, members: Mapping[Any, Model], moves: list[Move]) -> list[FieldChange]:
    """The referenced values the survivor must take so that no reference is cut.

    Rows referencing a duplicate by a ``to_field`` the survivor leaves empty
    would be re-pointed to NULL (or fail): the survivor takes the value,
    which is only possible when one value is referenced; else ``BadChoice``.
    """
    changes: list[FieldChange] = []
    for move in moves:
        if move.new is not None:
            continue
        target = move.relation.target
        referenced = [pk for pk in move.moved_from if move.counts.get(pk)]
        values = {getattr(members[pk], target): pk for pk in referenced}
        if not values:
            continue
        f = next((f for f in choosable_fields(rule.model) if f.attname == target), None)
        if f is None:
            message = _(
                "Rows of %(rel)s reference the duplicates by %(name)s, which the survivor has no value for."
            )
            raise Unsupported(message % {"rel": move.relation.label, "name": target})
        taken = {c.after: c.source for c in changes if c.attname == target}
        if taken and set(values) <= set(taken):
            continue  # another relation by the same field made the survivor take it already
        values.update(taken)
        if len(values) > 1:
            message = _(
                "Rows of %(rel)s reference rows %(pks)s by %(name)s, which the survivor has no value for: "
                "choose the row whose %(name)s the survivor takes."
            )
            pks = ", ".join(str(pk) for pk in referenced)
            raise BadChoice(message % {"rel": move.relation.label, "pks": pks, "name": f.name})
        [(value, source)] = values.items()
        changes = [c for c in changes if c.attname != target]
        changes.append(FieldChange(f.name, f.attname, source, None, value))
    return changes


def _check_taken_over(refs: References, survivor: Model, moves: list[Move]) -> None:
    """``Unsupported`` if rows stay on a duplicate's value the survivor takes over, under an action that fires.

    Such rows (a ``to_field`` value the survivor takes) are not re-pointed: the
    duplicate is deleted, then the survivor takes its value. Only a constraint
    checked at commit with no action lets that through untouched.
    """
    for move in moves:
        key = refs.key_of.get(move.relation)
        if key is None or key.checked_at_commit:
            continue
        staying = [
            pk for pk, n in move.counts.items() if n and pk != survivor.pk and pk not in move.moved_from
        ]
        if staying:
            message = _(
                "rows of %(rel)s reference rows %(pks)s by a value the survivor takes over, and their foreign "
                "key %(fk)s acts at once (ON DELETE %(action)s, not deferred): deleting the duplicates would "
                "act on them. Nothing was changed."
            )
            what = {"rel": move.relation.label, "pks": ", ".join(map(str, staying))}
            raise Unsupported(message % {**what, "fk": key.name, "action": key.on_delete})


def _digest(state: dict[str, Any]) -> str:
    raw = json.dumps(state, cls=DjangoJSONEncoder, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def _token(plan: Plan, members: list[Model]) -> str:
    """Two digests: the data the preview showed, then the rows it keeps in each conflict.

    Both must match at the confirm: a merge only ever does what its preview
    counted. Two halves so that a refusal can say which changed (the data, or a
    choice made on the preview page after its counts were shown).
    """
    data = {
        "rule": plan.rule.key,
        "survivor": plan.survivor.pk,
        "duplicates": [m.pk for m in plan.duplicates],
        "group": plan.group,
        "rows": [[m.pk, [repr(getattr(m, f.attname)) for f in m._meta.concrete_fields]] for m in members],
        "moves": [[m.relation.label, sorted(map(str, m.counts.items())), m.digest] for m in plan.moves],
        "conflicts": [[c.id, [str(r.pk) for r in c.rows]] for c in plan.conflicts],
        "changes": [[c.name, str(c.source), repr(c.after)] for c in plan.changes],
    }
    choices = {"keep": sorted([c.id, repr(c.keep)] for c in plan.conflicts)}
    return _digest(data) + _digest(choices)


def choices_differ(token: str, plan: Plan) -> bool:
    """Whether ``token`` (a preview's) saw the same data as ``plan`` but other conflict choices."""
    return token[:20] == plan.token[:20] and token != plan.token


def _check_own_reference(survivor: Model, dups: list[Model], relations: list[Any]) -> None:
    """Refuse a survivor that references a duplicate through a reference of its own model.

    Merging a row into its own child (a mentor into the person they mentor, a
    category into its subcategory) would re-point the survivor at itself: it
    would become its own parent, which no undo-able choice can make sense of.
    """
    for rel in relations:
        holder = getattr(rel, "holder", None)
        if holder is None or rel.kind in (GENERIC, MANY_TO_MANY) or not isinstance(survivor, holder):
            continue
        own = getattr(survivor, rel.field.attname)
        for dup in dups:
            if own is not None and own == getattr(dup, rel.target):
                message = _(
                    "Row %(survivor)s references row %(dup)s through %(relation)s: merging %(dup)s into it "
                    "would make it reference itself. Keep row %(dup)s as the survivor, or change "
                    "%(relation)s first; nothing was changed."
                )
                raise Unsupported(message % {"survivor": survivor.pk, "dup": dup.pk, "relation": rel.label})


def build_plan(
    rule: Rule,
    survivor_pk: Any,
    duplicate_pks: Iterable[Any],
    *,
    fields: Mapping[str, Any] | None = None,
    resolutions: Mapping[str, Any] | None = None,
    choose: Callable[[Plan], Any] | None = None,
    group: bool = True,
) -> Plan:
    """What merging ``duplicate_pks`` into ``survivor_pk`` would do, read from the database now.

    ``choose`` (a survivor policy): given this plan, the member to keep
    instead; the plan is built again only when that is another member, so
    that a policy's pick costs no second plan when the first guess was right.
    ``group=False``: a plan no preview's token is checked against (a policy's
    merge, a dry run) does not read the whole group by its key (``load_members``).

    Every read is bounded (``integrity.reads``): a table another transaction
    holds locked is a ``MergeBusy`` ("try again"), never a wait.
    """
    try:
        with reads.bounded(rule.database):
            plan = _build_plan(
                rule, survivor_pk, duplicate_pks, fields=fields, resolutions=resolutions, group=group
            )
            chosen = plan.survivor.pk if choose is None else choose(plan)
            if chosen == plan.survivor.pk:
                return plan
            others = [m.pk for m in plan.members if m.pk != chosen]
            return _build_plan(rule, chosen, others, fields=fields, resolutions=resolutions, group=group)
    except reads.ReadBusy as exc:
        message = _("Rows the merge reads could not be read in time (%(why)s); nothing was changed.")
        raise MergeBusy(message % {"why": exc.reason}) from exc


def _build_plan(
    rule: Rule,
    survivor_pk: Any,
    duplicate_pks: Iterable[Any],
    *,
    fields: Mapping[str, Any] | None,
    resolutions: Mapping[str, Any] | None,
    group: bool,
) -> Plan:
    survivor, dups, group_pks = load_members(rule, survivor_pk, duplicate_pks, group=group)
    members = [survivor, *dups]
    refs = references(rule.database, rule.model)
    if refs.refusals:
        message = _("This merge cannot be done exactly, nothing was changed: %(why)s.")
        raise Unsupported(message % {"why": "; ".join(refs.refusals)})
    relations = refs.relations
    targets = {r.target for r in relations if r.target != rule.model._meta.pk.attname}
    plan = Plan(rule, survivor, dups, group_pks, references=refs)
    plan.changes = field_changes(rule, survivor, {m.pk: m for m in members}, fields or {}, targets)
    plan.moves = _moves(rule, survivor, members, plan.changes, relations)
    adopted = _adopted(rule, {m.pk: m for m in members}, plan.moves)
    if adopted:
        plan.changes += adopted
        plan.moves = _moves(rule, survivor, members, plan.changes, relations)
    for move in plan.moves:
        if move.relation.parent_link and move.moving:
            message = _(
                "%(holder)s rows inherit from the duplicates (multi-table inheritance): merging them would "
                "leave those rows without their parent row; nothing was changed."
            )
            raise Unsupported(message % {"holder": move.relation.holder._meta.label})
    _check_own_reference(survivor, dups, relations)
    _check_taken_over(refs, survivor, plan.moves)
    plan.conflicts = find_conflicts(rule, members, plan.moves)
    resolve(plan.conflicts, survivor, resolutions or {})
    count_collapsed(plan)
    check_indexes(rule.database, plan)
    plan.token = _token(plan, members)
    return plan
