"""A Sentry bridge: ``before_send`` that makes one Sentry issue per constraint, not one per stack.

Sentry groups errors by their stack: the same unique constraint violated
from three views is three issues, and two constraints violated on one line
are one. For a database error (an ``IntegrityError``, or the ``DataError`` of
a sequence that ran out, Django's or the driver's own), ``before_send`` sets
the event's fingerprint to the database alias, the SQLSTATE and the
constraint (the sequence, or the table and columns when the database names
no constraint), exactly what the events pages group by, and tags it with the
model, the uniqueness rule (its key, as the duplicates pages name it) and, when the events pages decided
it already, the cause. Other events pass through unchanged. It never raises:
an error it cannot read leaves the event as it was.

Use it in the project's settings::

    import sentry_sdk
    from integrity.contrib.sentry import before_send

    sentry_sdk.init(dsn="…", before_send=before_send)

or call it from a ``before_send`` of the project's own.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, router

from integrity import reads
from integrity.events import recording, violations
from integrity.models import EventGroup

logger = logging.getLogger("integrity.events")

MAX_CHAIN = 5  # how far down __cause__ / __context__ the database error is looked for


def database_error(exc: BaseException | None) -> BaseException | None:
    """The IntegrityError (or sequence DataError) that ``exc`` is, or was raised from; None for other errors."""
    seen = 0
    while exc is not None and seen < MAX_CHAIN:
        code = reads.sqlstate(exc) or ""
        if code.startswith("23") or code in recording.DATA_SQLSTATES:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _target(v: violations.Violation) -> str:
    if v.constraint or v.sequence:
        return str(v.constraint or v.sequence)
    return f"{v.table or ''}({','.join(v.columns)})"


def _cause(alias: str, v: violations.Violation) -> str:
    """The cause the events pages kept on the error's group; empty when unknown or unsafe to read now."""
    events_alias = router.db_for_read(EventGroup)
    connection = connections[events_alias]
    if connection.in_atomic_block or connection.vendor != "postgresql":
        return ""  # inside a transaction that may be the failed one: no query
    with reads.bounded(events_alias):
        found = (
            EventGroup.objects.using(events_alias)
            .filter(fingerprint=recording.fingerprint(alias, v))
            .values_list("cause", flat=True)
            .first()
        )
    return found or ""


def before_send(event: Any, hint: dict[str, Any]) -> Any:  # Any: sentry_sdk.types.Event, a TypedDict
    """Fingerprint a database error's event by alias, SQLSTATE and constraint; tag model, rule and cause."""
    try:
        info = (hint or {}).get("exc_info")
        exc = database_error(info[1] if info else None)
        if exc is None:
            return event
        alias = recording.alias_of(exc) if alias_known(exc) else DEFAULT_DB_ALIAS
        v = violations.parse(exc, alias)
        event["fingerprint"] = [alias, v.sqlstate or v.kind, _target(v)]
        tags = event.setdefault("tags", {})
        if isinstance(tags, dict):
            wanted = {"model": v.model, "rule": v.rule, "sqlstate": v.sqlstate, "database": alias}
            wanted["cause"] = _cause(alias, v) if v.model or v.table else ""
            for name, value in wanted.items():
                if value:
                    tags.setdefault(name, str(value))
    except Exception:  # noqa: BLE001  (the bridge must never lose the project's event)
        logger.warning("integrity.contrib.sentry could not read a database error", exc_info=True)
    return event


def alias_known(exc: BaseException) -> bool:
    """Django's errors carry (or lead to) their connection; a driver's own error raised outside Django does not."""
    return type(exc).__module__.startswith("django.")
