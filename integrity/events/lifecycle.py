"""The lifecycle of an event group: unresolved, resolved, ignored, and regressed when a resolved one occurs again.

Resolving, ignoring and reopening are changes a user makes (``resolve``,
``ignore``, ``reopen``; the views check ``integrity.resolve_eventgroup``),
each recorded as an ``EventActivity`` with who and when. The recording
(``recording.write``) makes the other changes, in its one upsert: a resolved
group that occurs again becomes regressed (``regressed_at``, and an activity
row), and an ignore that runs out (its date passed, or its number of further
occurrences reached) ends. An ignore whose date passed without an
occurrence counts as unresolved in every filter (``open_groups``).

``timeline`` is the group page's one history: first seen, fixes applied,
occurrences (the samples kept), resolutions and regressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import router
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from integrity.models import EventActivity, EventGroup
from integrity.transactions import writing

UNRESOLVED, RESOLVED, IGNORED, REGRESSED = "unresolved", "resolved", "ignored", "regressed"
STATES = {
    UNRESOLVED: gettext_lazy("Unresolved"),
    REGRESSED: gettext_lazy("Regressed"),
    RESOLVED: gettext_lazy("Resolved"),
    IGNORED: gettext_lazy("Ignored"),
}
OPEN = (UNRESOLVED, REGRESSED)  # what the events list and the command show by default
FIXED, REOPENED = "fixed", "reopened"
TIMELINE_SAMPLES = 50


class LifecycleRefused(Exception):
    """A change that cannot be made as asked; nothing was changed."""


class LifecycleBusy(LifecycleRefused):
    """The groups stayed locked (or the change was cut) past the write timeouts; nothing was changed."""


def _expired(now: datetime) -> Q:
    return Q(state=IGNORED, ignored_until__lte=now)


def with_states(
    qs: QuerySet[EventGroup], states: list[str], now: datetime | None = None
) -> QuerySet[EventGroup]:
    """The groups in one of ``states``; an ignore whose date passed counts as unresolved."""
    now = now or timezone.now()
    wanted = Q(state__in=states)
    if IGNORED in states and UNRESOLVED not in states:
        wanted &= ~_expired(now)
    if UNRESOLVED in states and IGNORED not in states:
        wanted |= _expired(now)
    return qs.filter(wanted)


def open_groups(qs: QuerySet[EventGroup], now: datetime | None = None) -> QuerySet[EventGroup]:
    """Unresolved and regressed groups (the default view)."""
    return with_states(qs, list(OPEN), now)


def state_of(group: EventGroup, now: datetime | None = None) -> str:
    """The group's state as the filters see it: an ignore whose date passed is unresolved."""
    if group.state == IGNORED and group.ignored_until and group.ignored_until <= (now or timezone.now()):
        return UNRESOLVED
    return group.state if group.state in STATES else UNRESOLVED


def _change(ids: list[int], user: Any, action: str, fields: dict[str, Any], note: str = "") -> int:
    """Set ``fields`` on the groups ``ids`` and record the change on each; the number changed."""
    alias = router.db_for_write(EventGroup)
    now = fields.get("resolved_at") or timezone.now()
    with writing(alias, LifecycleBusy):  # bounded: a locked group is a refusal, never a wait
        groups = list(EventGroup.objects.using(alias).filter(pk__in=ids).select_for_update().order_by("pk"))
        EventGroup.objects.using(alias).filter(pk__in=[g.pk for g in groups]).update(**fields)
        EventActivity.objects.using(alias).bulk_create(
            EventActivity(
                group=g,
                created_at=now,
                action=action,
                user_id=getattr(user, "pk", None),
                count=g.count,
                note=note,
            )
            for g in groups
        )
    return len(groups)


def resolve(ids: list[int], user: Any = None) -> int:
    """Mark the groups resolved, by ``user``, now: the next occurrence of one makes it regressed."""
    now = timezone.now()
    fields = {"state": RESOLVED, "resolved_at": now, "resolved_by_id": getattr(user, "pk", None)}
    return _change(ids, user, RESOLVED, fields | {"ignored_until": None, "ignored_until_count": None})


def reopen(ids: list[int], user: Any = None) -> int:
    """Back to unresolved (from resolved, regressed or ignored)."""
    return _change(
        ids, user, REOPENED, {"state": UNRESOLVED, "ignored_until": None, "ignored_until_count": None}
    )


def ignore(
    ids: list[int], user: Any = None, *, until: datetime | None = None, more: int | None = None
) -> int:
    """Ignore the groups until ``until``, or until ``more`` further occurrences (one of the two)."""
    if (until is None) == (more is None):
        raise LifecycleRefused(_("Ignore until a date or until a number of occurrences, one of the two."))
    if until is not None and until <= timezone.now():
        raise LifecycleRefused(_("The date to ignore until has passed already."))
    if more is not None and more < 1:
        raise LifecycleRefused(_("The number of occurrences to ignore must be at least 1."))
    alias = router.db_for_write(EventGroup)
    if until is not None:
        note = _("until %(when)s") % {"when": timezone.localtime(until).strftime("%Y-%m-%d %H:%M")}
        return _change(
            ids, user, IGNORED, {"state": IGNORED, "ignored_until": until, "ignored_until_count": None}, note
        )
    assert more is not None
    note = ngettext("until %(n)d more occurrence", "until %(n)d more occurrences", more) % {"n": more}
    with writing(alias, LifecycleBusy):
        changed = _change(ids, user, IGNORED, {"state": IGNORED, "ignored_until": None}, note)
        for group in EventGroup.objects.using(alias).filter(pk__in=ids):
            EventGroup.objects.using(alias).filter(pk=group.pk).update(ignored_until_count=group.count + more)
    return changed


# ---------------------------------------------------------------------------
# The fix verified, and the timeline
# ---------------------------------------------------------------------------


@dataclass
class Verification:
    """The last fix applied to a group, and what happened since."""

    fix: EventActivity
    since: int  # occurrences since the fix

    @property
    def stopped(self) -> bool:
        return self.since == 0


def verification(group: EventGroup) -> Verification | None:
    """The last fix applied through the app to ``group``, with the occurrences since."""
    fix = group.activity.filter(action=FIXED).order_by("-created_at", "-id").first()
    if fix is None:
        return None
    return Verification(fix, max(group.count - fix.count, 0))


@dataclass
class Entry:
    """One line of the timeline."""

    at: datetime
    kind: str  # "first_seen", "occurrence", "fixed", "resolved", "ignored", "reopened", "regressed"
    text: str
    user: str = ""


def _who(activity: EventActivity) -> str:
    user = activity.user
    return str(user.get_username()) if user is not None else ""


def timeline(group: EventGroup) -> list[Entry]:
    """First seen, fixes applied, occurrences (the samples kept), resolutions and regressions, oldest first."""
    entries = [Entry(group.first_seen, "first_seen", _("First seen"))]
    for activity in group.activity.select_related("user").order_by("created_at", "id"):
        entries.append(Entry(activity.created_at, activity.action, _activity_text(activity), _who(activity)))
    samples = group.samples.order_by("created_at", "id").values_list("created_at", "method", "path")[
        :TIMELINE_SAMPLES
    ]
    for at, method, path in samples:
        where = f"{method} {path}".strip()
        entries.append(
            Entry(at, "occurrence", _("Occurred: %(where)s") % {"where": where} if where else _("Occurred"))
        )
    entries.sort(key=lambda e: (e.at, e.kind != "first_seen"))
    return entries


def _activity_text(activity: EventActivity) -> str:
    texts = {
        RESOLVED: _("Resolved"),
        IGNORED: _("Ignored"),
        REOPENED: _("Reopened"),
        REGRESSED: _("Regressed: occurred again after it was resolved (occurrence %(n)s)")
        % {"n": activity.count},
    }
    text = texts.get(activity.action, activity.note)
    if activity.action == IGNORED and activity.note:
        text += " " + activity.note
    if activity.action == FIXED:
        text = activity.note
    return str(text)
