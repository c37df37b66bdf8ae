"""Undo of a merge: put back exactly what its record says was changed, or nothing.

A merge deletes rows and moves references; people find out later that two
rows were not the same after all. The record keeps every deleted row and every
moved reference, so the undo can restore them as they were, and because a
partial or approximate restore would silently lose later edits, anything that
changed since (a deleted pk taken again, a moved row edited or gone, a survivor
field edited) refuses the whole undo instead: one transaction, all or nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity.audit import log_entry
from integrity.conf import settings
from integrity.merge import postgresql as sql
from integrity.merge.exceptions import MergeRefused
from integrity.models import MergeRecord
from integrity.transactions import writing


class UndoRefused(MergeRefused):
    status = 409


def _survivor_unchanged(cursor: Any, survivor: dict[str, Any]) -> None:
    if not survivor["columns"]:
        return
    pk = survivor["after"][survivor["pk_column"]]
    now = sql.snapshot(cursor, survivor["table"], survivor["pk_column"], [pk])
    if not now:
        raise UndoRefused(_("The survivor (row %(pk)s) has been deleted since the merge.") % {"pk": pk})
    changed = [c for c in survivor["columns"] if now[0].get(c) != survivor["after"].get(c)]
    if changed:
        message = _("The survivor's %(cols)s changed since the merge: an exact restore is impossible.")
        raise UndoRefused(message % {"cols": ", ".join(changed)})


def undo(record: MergeRecord, *, user: Any = None) -> MergeRecord:
    """Put back what the merge changed: deleted rows, moved references, the survivor's fields.

    ``UndoRefused`` (and nothing changed) when it was undone already, or when
    later changes make an exact restore impossible.
    """
    alias = record.database
    if alias not in connections:
        raise UndoRefused(_("The database %(alias)r is not configured any more.") % {"alias": alias})
    data = record.data
    survivor = data["survivor"]
    record_db = record._state.db or router.db_for_write(MergeRecord)
    try:
        with (
            writing(record_db, UndoRefused),
            writing(alias, UndoRefused),
            connections[alias].cursor() as cursor,
        ):
            # Two undos of one record: the second waits here, then sees the first.
            record = MergeRecord.objects.using(record_db).select_for_update().get(pk=record.pk)
            if record.undone_at is not None:
                raise UndoRefused(_("This merge was undone already."))
            sql.set_lock_timeout(cursor, settings.LOCK_TIMEOUT_MS)
            pk = survivor["after"][survivor["pk_column"]]
            try:
                locked = sql.lock_rows(cursor, survivor["table"], survivor["pk_column"], [pk])
            except sql.RowsBusy as exc:
                raise UndoRefused(
                    _("The survivor is being changed by another transaction; try again.")
                ) from exc
            if not locked:
                raise UndoRefused(
                    _("The survivor (row %(pk)s) has been deleted since the merge.") % {"pk": pk}
                )
            _survivor_unchanged(cursor, survivor)
            sql.restore_columns(
                cursor, survivor["table"], survivor["pk_column"], survivor["before"], survivor["columns"]
            )
            merged, others = _restores(record)
            for deleted in merged:
                _restore(cursor, alias, deleted)
            for moved in data["moved"]:
                _move_back(cursor, moved)
            for deleted in others:
                _restore(cursor, alias, deleted)
            record.undone_at = timezone.now()
            record.undone_by = user if getattr(user, "pk", None) is not None else None
            record.save(update_fields=["undone_at", "undone_by"])
    except IntegrityError as exc:
        raise UndoRefused(
            _("The undo would break a constraint: %(error)s") % {"error": str(exc).strip()}
        ) from exc
    log_entry(
        user,
        record,
        CHANGE,
        f"Undid the merge of {record.model} {', '.join(record.removed)} into {record.survivor}",
    )
    return record


def _restores(record: MergeRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The deleted rows in the order they come back: the merged ones, then (after the moves) the others.

    The merged rows first (their children point at them), then the moved
    references, and only then the children deleted by conflict resolutions,
    whose unique slots the moved rows held. A chain of multi-table
    inheritance comes back from its root table down.
    """
    deleted = record.data["deleted"]
    merged = [d for d in deleted if _merged(record, d)]
    return sorted(merged, key=lambda d: -d.get("level", 0)), [d for d in deleted if not _merged(record, d)]


def statements(record: MergeRecord) -> list[str]:
    """The statements of the undo of ``record`` that lock and change rows, in order, as it runs them.

    What the undo's confirmation shows (values inlined; the table's columns and
    types are read from the catalog now). The undo also reads: the survivor's
    fields, to refuse if they changed since; and it marks the record undone.
    """
    data, alias = record.data, record.database
    survivor = data["survivor"]
    table, pk_column = survivor["table"], survivor["pk_column"]
    with connections[alias].cursor() as cursor:
        found = [sql.lock_rows_sql(table, pk_column, [survivor["after"][pk_column]])]
        if survivor["columns"]:
            found.append(sql.restore_columns_sql(table, pk_column, survivor["before"], survivor["columns"]))
        merged, others = _restores(record)
        found += [sql.restore_sql(cursor, d["table"], d["rows"]) for d in merged if d["rows"]]
        found += [sql.move_back_sql(cursor, m, old, pks) for m in data["moved"] for old, pks in m["from"]]
        found += [sql.restore_sql(cursor, d["table"], d["rows"]) for d in others if d["rows"]]
    return [sql.shown(connections[alias], statement) for statement in found]


def _merged(record: MergeRecord, deleted: dict[str, Any]) -> bool:
    """Whether a deleted entry holds merged rows (records before chains were merged have no ``level``)."""
    return "level" in deleted or deleted["model"] == record.model


def _restore(cursor: Any, alias: str, deleted: dict[str, Any]) -> None:
    try:
        with transaction.atomic(using=alias):
            sql.restore(cursor, deleted["table"], deleted["rows"])
    except IntegrityError as exc:
        message = _("A row of %(model)s cannot be put back: %(error)s")
        raise UndoRefused(message % {"model": deleted["model"], "error": str(exc).strip()}) from exc


def _move_back(cursor: Any, moved: dict[str, Any]) -> None:
    for old, pks in moved["from"]:
        n = sql.move_back(
            cursor,
            moved["table"],
            moved["pk_column"],
            moved["column"],
            moved["new"],
            old,
            pks,
            moved["content_type"],
        )
        if n != len(pks):
            message = _(
                "%(n)d of the %(total)d rows of %(rel)s moved to the survivor have been changed or deleted since."
            )
            raise UndoRefused(message % {"n": len(pks) - n, "total": len(pks), "rel": moved["relation"]})
