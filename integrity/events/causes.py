"""Each group's cause as decided from the evidence at the time of its occurrences, kept with the group.

The database's state moves on: after the resync that fixed a "sequence
behind", the sequence is not behind any more, and deciding again from the
state now would blame the code. So the first explanation of a group is kept
on it (``EventGroup.cause``, ``cause_evidence``, ``cause_at``, and
``cause_count``: the occurrences it covers), and the cause is decided again
only once the group has occurred since. Keeping it is best effort and
bounded (``INTEGRITY_EVENT_WRITE_TIMEOUT_MS``): a group it could not be
kept on is explained again next time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from integrity.conf import settings
from integrity.events.explanation import UNKNOWN_CAUSE, Explanation
from integrity.models import EventGroup
from integrity.reads import set_timeouts

logger = logging.getLogger("integrity.events")


def stored(group: EventGroup) -> Explanation | None:
    """The explanation kept with ``group``, unless the group occurred since it was decided."""
    if not group.cause or group.count > group.cause_count or not isinstance(group.cause_evidence, dict):
        return None
    return Explanation.from_json(group.cause, group.cause_evidence, group.cause_at)


def keep(pairs: Iterable[tuple[EventGroup, Explanation]]) -> None:
    """Store the explanations decided just now on their groups (as of the count they were decided at)."""
    fresh = [(g, e) for g, e in pairs if e.fresh and e.code != UNKNOWN_CAUSE and g.pk is not None]
    if not fresh:
        return
    alias = router.db_for_write(EventGroup)
    ms = settings.EVENT_WRITE_TIMEOUT_MS
    try:
        with transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                set_timeouts(cursor, ms, ms)
            for group, explanation in fresh:
                store(group, explanation, alias=alias)
    except DatabaseError:
        logger.warning("Could not keep the causes of %d event groups", len(fresh), exc_info=True)


def store(group: EventGroup, explanation: Explanation, *, alias: str | None = None) -> None:
    """Keep ``explanation`` on ``group`` as the cause of its occurrences so far (unless more came meanwhile)."""
    now = explanation.decided or timezone.now()
    fields = {
        "cause": explanation.code,
        "cause_evidence": explanation.as_json(),
        "cause_at": now,
        "cause_count": group.count,
    }
    manager = EventGroup.objects.using(alias or router.db_for_write(EventGroup))
    if manager.filter(pk=group.pk, count=group.count).update(**fields):
        for name, value in fields.items():
            setattr(group, name, value)
