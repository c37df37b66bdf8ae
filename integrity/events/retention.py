"""Pruning IntegrityError events: old samples go, groups nobody has hit since go with them.

``prune(older_than)`` runs set-based statements in one transaction on
the events database, whatever the number of rows: delete every sample
recorded before the cutoff; delete the hourly and daily counters past
keeping (``integrity.events.trends``); delete every group left without samples that was
last seen before it; set each remaining group's ``sampled`` to the number of
samples it still has, so that ``events.write`` hands out sample slots again
(a group that had its ``INTEGRITY_EVENT_SAMPLES`` samples keeps new ones once
its old ones are gone). A group still being hit keeps its count and first
seen, even with no sample left: the count is the history, samples are only
examples of it.

Recording goes on meanwhile: a group hit during the prune has a recent
``last_seen`` (the group delete re-checks it on the updated row), so it
stays; an occurrence whose sample slot was granted but whose sample row is
not written yet when the counters are recounted can leave that group one
sample over its limit, never more per occurrence in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections, router
from django.utils import timezone

from integrity import reads
from integrity.events import trends
from integrity.models import Event, EventActivity, EventBucket, EventGroup
from integrity.transactions import writing


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or, with ``dry_run``, would remove)."""

    samples: int
    groups: int
    reset: int = 0  # remaining groups whose ``sampled`` counter changed
    cutoff: datetime | None = None
    dry_run: bool = False


def _names(alias: str) -> dict[str, str]:
    qn = connections[alias].ops.quote_name
    return {
        "ev": qn(Event._meta.db_table),
        "grp": qn(EventGroup._meta.db_table),
        "bkt": qn(EventBucket._meta.db_table),
        "act": qn(EventActivity._meta.db_table),
    }


# Table names are our own models', quoted; the cutoff is always a parameter.
DELETE_SAMPLES = "DELETE FROM {ev} WHERE created_at < %s"
DELETE_GROUPS = (
    "DELETE FROM {grp} WHERE last_seen < %s AND NOT EXISTS (SELECT 1 FROM {ev} e WHERE e.group_id = {grp}.id)"
)
# What refers to a group about to go goes first: the foreign keys are checked at COMMIT.
GONE = "SELECT id FROM {grp} WHERE last_seen < %s AND NOT EXISTS (SELECT 1 FROM {ev} e WHERE e.group_id = {grp}.id)"
DELETE_GONE = "DELETE FROM {table} WHERE group_id IN (" + GONE + ")"  # noqa: S608  (our names, quoted)
RECOUNT = (
    "UPDATE {grp} SET sampled = (SELECT COUNT(*) FROM {ev} e WHERE e.group_id = {grp}.id) "
    "WHERE sampled <> (SELECT COUNT(*) FROM {ev} e WHERE e.group_id = {grp}.id)"
)
# The same three numbers, without changing anything: samples kept are those at or after the cutoff.
PREVIEW = (
    "SELECT (SELECT COUNT(*) FROM {ev} WHERE created_at < %(cutoff)s), "
    "(SELECT COUNT(*) FROM {grp} g WHERE g.last_seen < %(cutoff)s AND NOT EXISTS "
    "(SELECT 1 FROM {ev} e WHERE e.group_id = g.id AND e.created_at >= %(cutoff)s)), "
    "(SELECT COUNT(*) FROM {grp} g WHERE NOT (g.last_seen < %(cutoff)s AND NOT EXISTS "
    "(SELECT 1 FROM {ev} e WHERE e.group_id = g.id AND e.created_at >= %(cutoff)s)) "
    "AND g.sampled <> (SELECT COUNT(*) FROM {ev} e WHERE e.group_id = g.id AND e.created_at >= %(cutoff)s))"
)


class PruneBusy(Exception):
    """The events tables could not be locked, or read, in time: nothing was removed; ``str()`` says why."""


def prune(older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None) -> PruneResult:
    """Delete samples recorded before ``now - older_than`` and the groups left empty and unseen since.

    Three statements in one transaction (one ``SELECT`` with ``dry_run``,
    which changes nothing). Remaining groups get ``sampled`` set to the
    samples they still hold. ``older_than`` must not be negative.
    """
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    cutoff = (now or timezone.now()) - older_than
    alias = router.db_for_write(EventGroup)
    names = _names(alias)
    if dry_run:
        try:
            with reads.bounded(alias), connections[alias].cursor() as cursor:
                cursor.execute(PREVIEW.format(**names), {"cutoff": cutoff})
                samples, groups, reset = cursor.fetchone()
        except reads.ReadBusy as exc:
            raise PruneBusy(str(exc)) from exc
        return PruneResult(samples, groups, reset, cutoff, dry_run=True)
    with writing(alias, PruneBusy), connections[alias].cursor() as cursor:
        cursor.execute(DELETE_SAMPLES.format(**names), [cutoff])
        samples = cursor.rowcount
        cursor.execute(trends.PRUNE_SQL.format(**names), trends.prune_params(now or timezone.now()))
        for table in ("bkt", "act"):
            cursor.execute(DELETE_GONE.format(table=names[table], **names), [cutoff])
        cursor.execute(DELETE_GROUPS.format(**names), [cutoff])
        groups = cursor.rowcount
        cursor.execute(RECOUNT.format(**names))
        reset = cursor.rowcount
    return PruneResult(samples, groups, reset, cutoff)
