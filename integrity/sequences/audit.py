"""Recording resyncs: a ``SequenceResync`` row per change, and a LogEntry when a user made it."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE
from django.db import router

from integrity.audit import log_entry
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
    record = SequenceResync.objects.using(router.db_for_write(SequenceResync)).create(
        user_id=getattr(user, "pk", None),
        database=alias,
        model=label,
        table=f"{link.schema}.{link.table}",
        column=link.column,
        sequence=f"{link.sequence_schema}.{link.sequence}",
        value_before=before,
        value_after=after,
        lowered=lowered,
    )
    verb = "Lowered" if lowered else "Resynced"
    log_entry(user, record, CHANGE, f"{verb} {record.sequence} on {alias}: next value {before} → {after}")
    return int(record.pk)
