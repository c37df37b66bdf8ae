"""Merge duplicate rows into one survivor, atomically, recorded so that it can be undone.

The merge locks the members (``SELECT … FOR UPDATE``: no new reference to a
duplicate can be committed meanwhile; tables holding generic foreign keys,
which no constraint protects, are write-locked), re-computes the plan under
the lock (a stale preview is refused), deletes the losing rows of resolved
conflicts, re-points every relation with one statement each, checks that no
row references a duplicate any more, deletes the duplicates, applies the
survivor's chosen field values and writes a ``MergeRecord``. All of it in one
transaction: any failure leaves the database as it was.

Putting a record back is :mod:`integrity.merge.undo`; merging every group of a
rule, one transaction each, is :mod:`integrity.merge.bulk`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.admin.models import CHANGE, DELETION
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction
from django.db.models import Model, Q, QuerySet
from django.db.models.sql.subqueries import UpdateQuery
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity import signals
from integrity.audit import log_entry
from integrity.conf import settings
from integrity.duplicates.relations import GENERIC, Relation, relations_to
from integrity.duplicates.rules import Rule
from integrity.merge import catalog
from integrity.merge import postgresql as sql
from integrity.merge.catalog import TableRelation
from integrity.merge.exceptions import MergeBusy, MergeRefused, NeedsChoice, StalePreview
from integrity.merge.plan import Move, Plan, build_plan, choices_differ, to_pk
from integrity.merge.references import chain, location, references
from integrity.models import MergeRecord
from integrity.transactions import writing

Step = Callable[[str], None]
logger = logging.getLogger("integrity.merge")  # the name it had before the move: LOGGING configs name it


def _quiet(_step: str) -> None:
    return None


def _table(alias: str, model: type[Model]) -> str:
    return sql.table_name(connections[alias], model._meta.db_table)


def _pk_column(model: type[Model]) -> str:
    return str(model._meta.pk.column)


def _pk_attname(model: type[Model]) -> str:
    return str(model._meta.pk.attname)


def _referenced_by(
    alias: str, model: type[Model], pks: list[Any], keep: dict[str, Any] | None = None
) -> list[str]:
    """What still references one of these rows: any foreign key of the catalog, any relation of ``_meta``.

    One statement for all of them (``exist_each``). The catalog's keys come
    from every schema, model or not, so that no ``ON DELETE`` action of the
    database can fire on a row the merge did not plan. ``keep`` (by column):
    the values the survivor holds at commit; references to those may stay
    where nothing fires before the commit (a ``to_field`` value it takes over).
    """
    keys = references(alias, model).keys[model._meta.concrete_model]  # type: ignore[index]
    checks: list[tuple[str, sql.Statement | None]] = []
    for k in keys:
        kept = None if keep is None else [keep.get(c) for c in k.ref_columns]
        label = f"{k.label} ({k.name}, ON DELETE {k.on_delete})"
        checks.append((label, catalog.referencing_sql(k, _pk_column(model), list(pks), kept)))
    checks += _meta_referencing(alias, model, pks, keep or {})
    with connections[alias].cursor() as cursor:
        found = sql.exist_each(cursor, [check for _label, check in checks])
    return [label for (label, _check), left in zip(checks, found, strict=True) if left]


def _meta_referencing(
    alias: str, model: type[Model], pks: list[Any], keep: dict[str, Any]
) -> list[tuple[str, sql.Statement | None]]:
    """Per relation of ``_meta``: its label and the SELECT of its rows referencing one of ``pks``."""
    relations = relations_to(alias, model)
    targets = sorted({r.target for r in relations} - {_pk_attname(model)})
    values: dict[str, list[Any]] = {_pk_attname(model): list(pks)}
    if targets:
        rows: Any = QuerySet(model=model, using=alias).filter(pk__in=pks).values_list(*targets)
        columns = {str(f.attname): str(f.column) for f in model._meta.concrete_fields}
        for i, target in enumerate(targets):
            kept = keep.get(columns[target])
            values[target] = [row[i] for row in rows if row[i] is not None and row[i] != kept]
    return [
        (r.label, sql.queryset_sql(r.rows(alias, values[r.target])) if values[r.target] else None)
        for r in relations
    ]


def _lock_targets(rule: Rule, plan_pks: list[Any]) -> tuple[list[tuple[str, str, list[Any]]], list[str]]:
    """What the merge locks first: the members' rows at every level of their chain, the generic tables."""
    alias = rule.database
    rows = [(_table(alias, rule.model), _pk_column(rule.model), list(plan_pks))]
    for parent in chain(rule.model)[1:]:
        # The parent rows too: no reference to them can be committed until the merge ends.
        members: Any = QuerySet(model=rule.model, using=alias).filter(pk__in=plan_pks)
        values = list(members.values_list(_pk_attname(parent), flat=True))
        rows.append((_table(alias, parent), _pk_column(parent), values))
    generic = sorted({_table(alias, r.holder) for r in _generic_relations(alias, rule.model)})
    return rows, generic


def _lock(rule: Rule, plan_pks: list[Any]) -> None:
    alias = rule.database
    with connections[alias].cursor() as cursor:
        sql.set_lock_timeout(cursor, settings.LOCK_TIMEOUT_MS)
        try:
            rows, generic = _lock_targets(rule, plan_pks)
            for table, pk, values in rows:
                sql.lock_rows(cursor, table, pk, values)
            sql.lock_tables(cursor, generic)
        except sql.RowsBusy as exc:
            message = _("Rows of %(model)s are being changed by another transaction (%(what)s); try again.")
            raise MergeBusy(message % {"model": rule.label, "what": exc}) from exc


def _repoint(
    cursor: Any, alias: str, rel: Relation | TableRelation, new: Any, olds: list[Any]
) -> dict[str, Any] | None:
    """Re-point one relation (a ``Relation`` or a ``TableRelation``) with one statement.

    What the record keeps of it, or None when no row moved.
    """
    ct = _content_type(rel)
    table, pk = location(alias, rel)
    rows = sql.repoint(cursor, table, pk, rel.column, rel.stored(new), list(rel.storable(olds)), ct)
    if not rows:
        return None
    if isinstance(rel, TableRelation):
        model, name = rel.label, rel.column
    else:
        model, name = rel.holder._meta.label, rel.field.name
    return _plain(
        {
            "relation": rel.label,
            "model": model,
            "field": name,
            "table": table,
            "pk_column": pk,
            "column": rel.column,
            "content_type": list(ct) if ct else None,
            "new": rel.stored(new),
            "count": len(rows),
            # Grouped by the value each row held: [[old, [pk, ...]], ...] (half the size of pairs).
            "from": [[old, pks] for old, pks in _by_old(rows).items()],
        }
    )


def _content_type(rel: Relation | TableRelation) -> tuple[str, int] | None:
    return None if rel.content_type is None else (str(rel.content_type.column), int(rel.content_type_id or 0))


def _repoint_statement(alias: str, move: Move) -> sql.Statement:
    rel = move.relation
    table, pk = location(alias, rel)
    olds = list(rel.storable(move.olds))
    return sql.repoint_sql(
        connections[alias], (table, pk, rel.column), rel.stored(move.new), olds, _content_type(rel)
    )


def _conflict_deletes(plan: Plan) -> list[tuple[type[Model], list[Any]]]:
    """The losing rows of the conflicts, by model: deleted first, so that the moved rows take their slots."""
    losers: dict[type[Model], list[Any]] = {}
    for conflict in plan.conflicts:
        losers.setdefault(conflict.holder, []).extend(conflict.losers)
    return [(model, sorted(set(pks), key=str)) for model, pks in losers.items()]


def _moving(plan: Plan) -> list[Move]:
    return [move for move in plan.moves if move.olds and move.moving]


def _merged_deletes(plan: Plan) -> list[tuple[int, type[Model], list[Any]]]:
    """The duplicates' row at every level of the chain (level, model, primary keys), the model's own first."""
    levels = enumerate(chain(plan.rule.model))
    return [
        (level, model, [getattr(m, _pk_attname(model)) for m in plan.duplicates]) for level, model in levels
    ]


def _survivor_updates(plan: Plan) -> list[sql.Statement]:
    """The survivor's chosen values: one UPDATE per table of its chain that holds one of them (Django's own SQL)."""
    updates = {c.attname: c.after for c in plan.changes}
    found = []
    for model in chain(plan.rule.model):
        local = {f.attname for f in model._meta.local_concrete_fields}
        values = {name: value for name, value in updates.items() if name in local}
        if not values:
            continue
        query = UpdateQuery(model)
        query.add_update_values(values)
        query.add_q(Q(pk=getattr(plan.survivor, _pk_attname(model))))
        statement, params = query.get_compiler(plan.rule.database).as_sql()
        found.append((statement, list(params)))
    return found


def statements(plan: Plan) -> list[str]:
    """The statements of the merge of ``plan`` that lock and change rows, in order, as it runs them.

    What the preview shows (values inlined). The merge also reads: the
    references left, and the snapshot of each row it deletes (for the record
    and the undo); and it writes its record.
    """
    alias = plan.rule.database
    rows, generic = _lock_targets(plan.rule, [plan.survivor.pk, *(m.pk for m in plan.duplicates)])
    found = [sql.lock_rows_sql(table, pk, values) for table, pk, values in rows]
    found += [sql.lock_tables_sql(generic)] if generic else []
    found += [
        sql.delete_sql(_table(alias, model), _pk_column(model), pks) for model, pks in _conflict_deletes(plan)
    ]
    found += [_repoint_statement(alias, move) for move in _moving(plan)]
    found += [
        sql.delete_sql(_table(alias, model), _pk_column(model), pks)
        for _level, model, pks in _merged_deletes(plan)
    ]
    found += _survivor_updates(plan)
    return [sql.shown(connections[alias], statement) for statement in found]


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` as the record's JSON holds it (a UUID key as its text; undo casts it back)."""
    return dict(json.loads(json.dumps(entry, cls=DjangoJSONEncoder)))


def _by_old(rows: Iterable[Sequence[Any]]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for pk, old in rows:
        grouped.setdefault(old, []).append(pk)
    return grouped


@dataclass
class _Writer:
    """Carries out a plan inside the merge's transaction and collects what the record needs."""

    plan: Plan
    deleted: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return self.plan.rule.database

    def delete(
        self,
        model: type[Model],
        pks: list[Any],
        *,
        level: int | None = None,
        keep: dict[str, Any] | None = None,
    ) -> None:
        """Snapshot, then delete exactly these rows, after checking that nothing references them (``keep``: see
        ``_referenced_by``)."""
        if not pks:
            return
        left = _referenced_by(self.alias, model, pks, keep)
        if left:
            message = _("%(model)s rows %(pks)s are still referenced by %(rels)s: nothing was changed.")
            raise MergeRefused(
                message
                % {"model": model._meta.label, "pks": ", ".join(map(str, pks)), "rels": ", ".join(left)}
            )
        table, pk = _table(self.alias, model), _pk_column(model)
        with connections[self.alias].cursor() as cursor:
            rows = sql.snapshot(cursor, table, pk, pks)
            if sql.delete(cursor, table, pk, pks) != len(pks):
                raise MergeRefused(
                    _("%(model)s rows changed during the merge.") % {"model": model._meta.label}
                )
        entry: dict[str, Any] = {"model": model._meta.label, "table": table, "pk_column": pk, "rows": rows}
        if level is not None:
            entry["level"] = level  # of the merged model's chain: the undo restores the parents first
        self.deleted.append(entry)

    def delete_merged(self) -> None:
        """The duplicates' row at every level of the chain, the model's own first, each after the check."""
        survivor, changes = self.plan.survivor, {c.attname: c.after for c in self.plan.changes}
        for level, model, pks in _merged_deletes(self.plan):
            keep = {
                str(f.column): changes.get(f.attname, getattr(survivor, f.attname))
                for f in model._meta.local_concrete_fields
            }
            self.delete(model, pks, level=level, keep=keep)

    def resolve_conflicts(self) -> None:
        for model, pks in _conflict_deletes(self.plan):
            self.delete(model, pks)

    def repoint(self) -> None:
        with connections[self.alias].cursor() as cursor:
            for move in _moving(self.plan):
                entry = _repoint(cursor, self.alias, move.relation, move.new, move.olds)
                if entry is not None:
                    self.moved.append(entry)

    def check_unreferenced(self) -> None:
        """No row may reference a duplicate now: else a delete would CASCADE, SET_NULL or PROTECT."""
        moves = [m for m in self.plan.moves if m.olds]
        selects = [
            catalog.any_referencing_sql(m.relation, m.olds)
            if isinstance(m.relation, TableRelation)
            else sql.queryset_sql(m.relation.rows(self.alias, m.olds))
            for m in moves
        ]
        with connections[self.alias].cursor() as cursor:
            found = sql.exist_each(cursor, selects)
        for move, left in zip(moves, found, strict=True):
            if left:
                message = _(
                    "Rows of %(rel)s still reference the duplicates after re-pointing: nothing was changed."
                )
                raise MergeRefused(message % {"rel": move.relation.label})

    def update_survivor(self) -> dict[str, Any]:
        model, survivor = self.plan.rule.model, self.plan.survivor
        table, pk = _table(self.alias, model), _pk_column(model)
        with connections[self.alias].cursor() as cursor:
            before = sql.snapshot(cursor, table, pk, [survivor.pk])[0]
            for statement in _survivor_updates(self.plan):
                cursor.execute(*statement)
            after = sql.snapshot(cursor, table, pk, [survivor.pk])[0]
        columns = [str(model._meta.get_field(c.name).column) for c in self.plan.changes]  # type: ignore[union-attr]
        return {"table": table, "pk_column": pk, "before": before, "after": after, "columns": columns}


def merge(
    rule: Rule,
    survivor_pk: Any,
    duplicate_pks: Iterable[Any],
    *,
    fields: Mapping[str, Any] | None = None,
    resolutions: Mapping[str, Any] | None = None,
    token: str | None = None,
    user: Any = None,
    step: Step = _quiet,
    choose: Callable[[Plan], Any] | None = None,
) -> MergeRecord:
    """Merge the duplicates into the survivor; return the record. ``MergeRefused`` (and nothing changed) otherwise.

    With ``token`` (from a preview), a plan that no longer matches raises
    ``StalePreview`` carrying the new plan; unresolved conflicts raise
    ``NeedsChoice``. ``step`` is called between phases (progress, tests).
    ``choose`` (a survivor policy, no ``token``): the survivor is the member
    it picks from the plan read under the lock (``build_plan``).
    """
    assert token is None or choose is None, "a preview's token names its survivor"
    alias = rule.database
    survivor_pk = to_pk(rule, survivor_pk)
    dups = [to_pk(rule, pk) for pk in duplicate_pks]
    with writing(alias, MergeBusy):
        _lock(rule, [survivor_pk, *dups])
        step("locked")
        # The whole group is read by its key only for a preview's token: without an index on
        # the key (a rule the database doesn't enforce) that read is a scan of the table.
        plan = build_plan(
            rule,
            survivor_pk,
            dups,
            fields=fields,
            resolutions=resolutions,
            choose=choose,
            group=token is not None,
        )
        if token is not None and plan.token != token:
            if choices_differ(token, plan):
                message = _(
                    "The rows to keep were changed after the preview counted them: check the preview of "
                    "these choices, then confirm."
                )
                raise StalePreview(message, plan)
            raise StalePreview(_("The data changed since the preview: check the new preview."), plan)
        if plan.unresolved:
            raise NeedsChoice(_("Choose which row to keep for each conflict."), plan)
        writer = _Writer(plan)
        writer.resolve_conflicts()
        step("conflicts")
        writer.repoint()
        step("repointed")
        writer.check_unreferenced()
        writer.delete_merged()
        step("deleted")
        survivor = writer.update_survivor()
        record = _record(plan, writer, survivor, fields or {}, user)
        step("recorded")
        # After the real commit, whatever transaction encloses this one (ATOMIC_REQUESTS,
        # a caller's atomic): only then are the writers that queued behind the locks let in.
        # Robust: the merge is committed by then; a failure of the sweep is logged, never raised.
        transaction.on_commit(lambda: _sweep_generic(rule, record), using=alias, robust=True)
        transaction.on_commit(lambda: _announce(rule, record, user), using=alias, robust=True)
    return record


def _announce(rule: Rule, record: MergeRecord, user: Any) -> None:
    """``fix_applied`` for a committed merge: the events room verifies it on the rule's groups."""
    signals.fix_applied.send_robust(
        sender=MergeRecord,
        kind="merge",
        database=rule.database,
        model=rule.label,
        rule=rule.key,
        user=user,
        at=timezone.now(),
        detail={"record": record.pk, "survivor": record.survivor, "removed": list(record.removed)},
    )


def _generic_relations(alias: str, model: type[Model]) -> list[Relation]:
    """Generic relations to the model and to every parent of its inheritance chain (the same keys at every level)."""
    return [r for level in chain(model) for r in relations_to(alias, level) if r.kind == GENERIC]


def _sweep_generic(rule: Rule, record: MergeRecord) -> None:
    """Move generic references written by transactions that waited for the merge's table locks.

    No constraint protects a generic foreign key: an insert that queued behind
    the merge's lock goes through right after the commit, with a duplicate's
    id. Taking the same lock again waits for exactly those writers to commit
    (they are ahead in the lock queue); their rows are then re-pointed too and
    added to the record, so that an undo moves them back.
    """
    alias = rule.database
    generic = _generic_relations(alias, rule.model)
    if not generic:
        return
    removed = [to_pk(rule, pk) for pk in record.removed]
    survivor = to_pk(rule, record.survivor)
    # Only columns that can hold a removed key can reference it; the plan refused a survivor
    # whose key a referencing column can't hold, a late row there can only be reported.
    generic = [r for r in generic if r.storable(removed)]
    unmovable = [r for r in generic if not r.storable([survivor])]
    generic = [r for r in generic if r not in unmovable]
    try:
        with writing(alias, MergeBusy), connections[alias].cursor() as cursor:
            sql.set_lock_timeout(cursor, settings.LOCK_TIMEOUT_MS)
            sql.lock_tables(cursor, sorted({_table(alias, r.holder) for r in generic + unmovable}))
            for rel in unmovable:
                if rel.rows(alias, removed).exists():
                    logger.warning(
                        "Merge record %s: rows of %s written during the merge reference %s, and its column "
                        "cannot hold the survivor's key %s: they were left as they are.",
                        record.pk,
                        rel.label,
                        ", ".join(record.removed),
                        record.survivor,
                    )
            late = [e for e in (_repoint(cursor, alias, r, survivor, removed) for r in generic) if e]
            if late:
                record.data["moved"].extend(late)
                record.repointed += sum(e["count"] for e in late)
                record.save(update_fields=["data", "repointed"])
    except (sql.RowsBusy, MergeBusy):
        logger.warning(
            "Merge record %s: generic references written during the merge could not be checked "
            "(a table stayed locked); rows of %s may still reference %s.",
            record.pk,
            ", ".join(r.label for r in generic),
            ", ".join(record.removed),
        )


def _record(
    plan: Plan, writer: _Writer, survivor: dict[str, Any], fields: Mapping[str, Any], user: Any
) -> MergeRecord:
    rule = plan.rule
    data = {
        "rule": rule.key,
        "survivor": survivor,
        "fields": {name: str(pk) for name, pk in fields.items()},
        "deleted": writer.deleted,
        "moved": writer.moved,
    }
    record = MergeRecord.objects.using(router.db_for_write(MergeRecord)).create(
        user_id=getattr(user, "pk", None),
        database=rule.database,
        model=rule.label,
        rule=rule.key,
        survivor=str(plan.survivor.pk),
        removed=[str(m.pk) for m in plan.duplicates],
        repointed=sum(m["count"] for m in writer.moved),
        deleted=sum(len(d["rows"]) for d in writer.deleted),
        data=data,
    )
    log_entry(
        user,
        record,
        DELETION if not plan.changes else CHANGE,
        f"Merged {rule.label} {', '.join(record.removed)} into {record.survivor}",
    )
    return record
