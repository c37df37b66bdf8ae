"""Being told: ``integrity.signals.event_group_alert`` for a new or a regressed group, and optional e-mail to ADMINS.

The recording (``recording.write``) calls ``queue`` once the occurrence is
committed, when it is the group's first one or makes a resolved group
regressed, with the group's row as its upsert returned it: being told
costs no query. ``queue`` hands the sending to ``transaction.on_commit`` on the
events database: at once when no transaction is open there, else when the
one around the failure commits. Sending never raises into the request:
receivers run with ``send_robust`` and each failure is logged.

``email_admins`` is the app's own receiver: with ``INTEGRITY_NOTIFY_EMAIL``
on, it mails ``ADMINS`` (``mail_admins``), at most once per group per
``INTEGRITY_NOTIFY_INTERVAL`` seconds; the interval is claimed with one
conditional UPDATE, so concurrent processes send one e-mail, not one each.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.core.mail import mail_admins
from django.db import connections, router, transaction
from django.db.models import JSONField
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity import signals
from integrity.conf import settings
from integrity.models import Event, EventGroup
from integrity.reads import set_timeouts

logger = logging.getLogger("integrity.events")

NEW, REGRESSED = "new", "regressed"


def queue(
    alias: str, kind: str, row: str, sample: dict[str, Any] | None, frames: list[dict[str, Any]]
) -> None:
    """Send ``event_group_alert`` once the events database commits (at once outside a transaction).

    ``row`` is the group's row as the recording's upsert returned it (JSON),
    ``sample`` the parameters of the sample it inserted (with its ``id``), if
    any: the notice is built from them, without reading the database again.
    """
    try:
        group = group_from_row(alias, json.loads(row))
        event = event_from_sample(group, sample, frames) if sample is not None else None
        transaction.on_commit(lambda: send(group, kind, event), using=alias, robust=True)
    except Exception:  # noqa: BLE001  (being told is best effort: the error the request raised comes first)
        logger.warning("Could not queue a %s notice of an event group", kind, exc_info=True)


def group_from_row(alias: str, data: dict[str, Any]) -> EventGroup:
    """The ``EventGroup`` of a ``row_to_json`` of its row, as a query would have loaded it."""
    values = {}
    for field in EventGroup._meta.concrete_fields:
        value = data.get(str(field.column))
        if value is not None and not isinstance(field, JSONField):
            value = field.to_python(value)
        values[field.attname] = value
    group = EventGroup(**values)
    group._state.adding, group._state.db = False, alias
    return group


def event_from_sample(group: EventGroup, sample: dict[str, Any], frames: list[dict[str, Any]]) -> Event:
    """The ``Event`` the recording just inserted, from its own parameters."""
    event = Event(
        id=sample["id"],
        group=group,
        created_at=sample["now"],
        database=sample["database"],
        origin=sample["origin"],
        method=sample["method"],
        path=sample["path"],
        view=sample["view"],
        user_pk=sample["user_pk"],
        started_at=sample["started"],
        handled=sample["handled_flag"],
        values=json.loads(sample["values"]),
        detail=sample["detail"],
        locations=frames,
    )
    event._state.adding, event._state.db = False, group._state.db
    return event


def send(group: EventGroup, kind: str, event: Event | None) -> None:
    """Send the signal to every receiver; each failure is logged."""
    try:
        answers = signals.event_group_alert.send_robust(
            sender=EventGroup, group=group, kind=kind, event=event
        )
    except Exception:  # noqa: BLE001
        logger.warning("Could not send the %s notice of event group %s", kind, group.pk, exc_info=True)
        return
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            logger.warning(
                "A receiver of event_group_alert failed (%s)",
                getattr(receiver, "__qualname__", receiver),
                exc_info=(type(answer), answer, answer.__traceback__),
            )


def _claim(group: EventGroup) -> bool:
    """Whether this process may mail about ``group`` now: one UPDATE sets ``notified_at`` if the interval passed."""
    now = timezone.now()
    since = now - timedelta(seconds=settings.NOTIFY_INTERVAL)
    alias = router.db_for_write(EventGroup)
    ms = settings.EVENT_WRITE_TIMEOUT_MS
    # Bounded as the recording's own writes: a group row locked elsewhere costs this much, then a logged failure.
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        set_timeouts(cursor, ms, ms)
        table = connections[alias].ops.quote_name(EventGroup._meta.db_table)
        cursor.execute(
            f"UPDATE {table} SET notified_at = %s WHERE id = %s AND (notified_at IS NULL OR notified_at <= %s)",  # noqa: S608
            [now, group.pk, since],
        )
        return cursor.rowcount == 1


def _link(group: EventGroup) -> str:
    try:
        return f"{reverse('admin:integrity_eventgroup_group')}?id={group.pk}"
    except NoReverseMatch:
        return ""


def message(group: EventGroup, kind: str, event: Event | None) -> tuple[str, str]:
    """The e-mail's subject and text: what failed, how often, where from, and where to see it."""
    target = group.constraint or group.sequence or group.table
    if kind == REGRESSED:
        subject = _("Regressed: %(kind)s violation of %(target)s occurred again after it was resolved")
    else:
        subject = _("New: %(kind)s violation of %(target)s")
    subject = subject % {"kind": group.kind, "target": target}
    lines = [
        group.message,
        "",
        _("Model: %(model)s") % {"model": group.model or "—"},
        _("Database: %(db)s") % {"db": group.database},
        _("Occurrences: %(n)s (first seen %(first)s)")
        % {
            "n": f"{group.count:,}",
            "first": timezone.localtime(group.first_seen).strftime("%Y-%m-%d %H:%M:%S"),
        },
    ]
    if event is not None and (event.method or event.path):
        lines.append(_("Request: %(where)s") % {"where": f"{event.method} {event.path}".strip()})
    if link := _link(group):
        lines.append(_("See it: %(link)s") % {"link": link})
    lines.append("")
    lines.append(
        _("At most one e-mail per group every %(n)s seconds (INTEGRITY_NOTIFY_INTERVAL).")
        % {"n": settings.NOTIFY_INTERVAL}
    )
    return subject, "\n".join(lines)


def email_admins(
    sender: Any, *, group: EventGroup, kind: str, event: Event | None = None, **kwargs: Any
) -> None:
    """``event_group_alert`` receiver: mail ADMINS if ``INTEGRITY_NOTIFY_EMAIL`` is on and the group's interval passed."""
    if not settings.NOTIFY_EMAIL or not _claim(group):
        return
    subject, text = message(group, kind, event)
    try:
        mail_admins(subject, text, fail_silently=False)
    except Exception:  # noqa: BLE001  (a mail server that is down must not break the request)
        logger.warning("Could not e-mail ADMINS about event group %s", group.pk, exc_info=True)
