"""Recording changes: the app's own audit rows and Django admin LogEntries."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import router

from integrity.models import SequenceResync
from integrity.sequences.backend import SequenceLink


def record_resync(
    alias: str,
    label: str,
    link: SequenceLink,
    before: int,
    after: int,
    *,
    user: Any = None,
    lowered: bool = False,
) -> int:
    """Write a ``SequenceResync`` row (and a LogEntry when a user made the change)."""
    user_id = getattr(user, "pk", None)
    record = SequenceResync.objects.using(router.db_for_write(SequenceResync)).create(
        user_id=user_id,
        database=alias,
        model=label,
        table=f"{link.schema}.{link.table}",
        column=link.column,
        sequence=f"{link.sequence_schema}.{link.sequence}",
        value_before=before,
        value_after=after,
        lowered=lowered,
    )
    if user_id is not None:
        LogEntry.objects.log_actions(
            user_id,
            [record],
            CHANGE,
            change_message=f"{'Lowered' if lowered else 'Resynced'} {record.sequence} on {alias}: "
            f"next value {before} → {after}",
            single_object=True,
        )
    return int(record.pk)
