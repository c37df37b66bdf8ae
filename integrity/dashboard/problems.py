"""The dashboard's problem lists: the top few of each kind, each with what fixes it. No HTTP, no URLs.

The template tags turn each ``Problem`` into a row with its fix: a Resync
button (a sequence behind), a link to the row's fix on the sequences page
(near overflow, type mismatch), to the rule's page (a rule not enforced) or
to the group's explanation (an IntegrityError group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import router
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity import reads
from integrity.duplicates import enforcement
from integrity.duplicates.rules import Rule, describe, rules_for
from integrity.models import EventGroup
from integrity.sequences import service as sequences
from integrity.sequences.service import SequenceInfo

__all__ = ["TOP", "Problem", "Problems", "event_problems", "rule_problems", "sequence_problems"]

TOP = 5  # problems shown per kind; the list's link leads to the rest


@dataclass
class Problem:
    """One problem: what it is, in a person's words, and the key its fix needs."""

    title: str
    detail: str
    level: str  # "critical" or "warning"
    key: str  # a sequence key, a rule key or an event group's id
    url: str = ""  # where its fix is: set by the template tags, which know the AdminSite


@dataclass
class Problems:
    """The top problems of one kind, and how many there are in all."""

    items: list[Problem] = field(default_factory=list)
    total: int = 0
    unread: str = ""  # why the list could not be read in time, if it could not


def _top(found: list[Problem]) -> Problems:
    return Problems(found[:TOP], len(found))


def sequence_problems(rows: list[SequenceInfo]) -> tuple[Problems, Problems]:
    """The sequences behind their data, and those near overflow or with a type mismatch, worst first."""
    rows = sorted(rows, key=SequenceInfo.sort_key)
    behind = [
        Problem(
            f"{r.model}.{r.column}",
            _("next value %(next)s, MAX %(max)s · database %(db)s")
            % {"next": f"{r.next_value:,}", "max": f"{r.max_value or 0:,}", "db": r.database},
            "critical",
            r.key,
        )
        for r in rows
        if r.status == sequences.BEHIND
    ]
    overflow = [
        Problem(
            f"{r.model}.{r.column}",
            (
                _("%(pct)s of its range used · %(types)s")
                % {"pct": f"{(r.capacity or 0) * 100:.1f}%", "types": f"{r.column_type} ← {r.sequence_type}"}
                if r.capacity_level != "ok"
                else _("type mismatch: %(col)s column ← %(seq)s sequence")
                % {"col": r.column_type, "seq": r.sequence_type}
            ),
            "critical" if r.capacity_level == "critical" or r.capacity_level == "ok" else "warning",
            r.key,
        )
        for r in rows
        if r.capacity_level != "ok" or r.type_mismatch
    ]
    return _top(behind), _top(overflow)


def _rule_text(rule: Rule) -> str:
    return ", ".join([describe(e) for e in rule.expressions] or list(rule.fields))


def rule_problems() -> Problems:
    """The rules the database does not enforce: declared ones (missing, invalid) first, then configured."""
    found = rules_for()
    states = enforcement.classify(found)
    order = {state: i for i, state in enumerate(enforcement.NOT_ENFORCED_STATES)}
    rules = sorted(
        (r for r in found if states[r.key].state in order),
        key=lambda r: (order[states[r.key].state], r.database, r.label, r.name),
    )
    return _top(
        [
            Problem(
                f"{r.label} ({_rule_text(r)})",
                f"{states[r.key].state} · {states[r.key].reason}"
                if states[r.key].reason
                else states[r.key].state,
                "critical" if states[r.key].state in enforcement.DECLARED_NOT_ENFORCED else "warning",
                r.key,
            )
            for r in rules
        ]
    )


def event_problems(now: datetime | None = None) -> Problems:
    """The busiest IntegrityError groups seen in the last 24 hours (by their count in all)."""
    since = (now or timezone.now()) - timedelta(hours=24)
    try:
        with reads.bounded(router.db_for_read(EventGroup)):
            recent = EventGroup.objects.filter(last_seen__gte=since)
            total = recent.count()
            busiest = list(recent.order_by("-count", "-last_seen", "-id")[:TOP])
    except reads.ReadBusy as exc:
        return Problems(unread=exc.reason)
    items = [
        Problem(
            group.constraint or group.table or group.kind,
            ngettext(
                "%(kind)s · %(n)s time in all · %(model)s",
                "%(kind)s · %(n)s times in all · %(model)s",
                group.count,
            )
            % {"kind": group.kind, "n": f"{group.count:,}", "model": group.model or group.table},
            "critical" if group.count > group.handled_count else "warning",
            str(group.pk),
        )
        for group in busiest
    ]
    return Problems(items, total)
