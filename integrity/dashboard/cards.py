"""The dashboard's summary cards: one small dataclass per card, no HTTP."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, router
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity import reads
from integrity.conf import settings
from integrity.duplicates import enforce, enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import rules_for
from integrity.events import lifecycle
from integrity.models import EventGroup
from integrity.sequences import service as sequences


@dataclass
class Card:
    title: str
    value: int | None  # None: not known (not read in time)
    detail: str
    level: str  # "ok", "warning" or "critical"
    query: str  # filter query string for the detail page
    note: str = ""  # a line under the detail (the duplicates card: how many rules are ready to enforce)


def sequence_cards() -> list[Card]:
    """Cards for the sequences: how many are behind, how many near overflow."""
    rows = [info for report in sequences.collect() for info in report.sequences]
    behind = sum(r.status == sequences.BEHIND for r in rows)
    busy = sum(r.status == sequences.BUSY for r in rows)
    critical = sum(r.capacity_level == "critical" for r in rows)
    near = sum(r.capacity_level != "ok" for r in rows)
    detail = _("the next insert collides") if behind else _("of %(n)d sequences") % {"n": len(rows)}
    if busy:
        detail += " · " + ngettext(
            "%(n)d not read (table locked or slow)", "%(n)d not read (tables locked or slow)", busy
        ) % {"n": busy}
    return [
        Card(
            _("Sequences behind"),
            behind,
            detail,
            "critical" if behind else ("warning" if busy else "ok"),
            "status=busy" if busy and not behind else "status=behind",
        ),
        Card(
            _("Near overflow"),
            near,
            _("over %(pct)d%% of their range used")
            % {"pct": round(sequences.settings.CAPACITY_WARNING * 100)},
            "critical" if critical else ("warning" if near else "ok"),
            "capacity=warning",
        ),
    ]


def duplicate_cards() -> list[Card]:
    """The "Rules not enforced" card: catalog queries only, no scan."""
    found = rules_for()
    states = Counter(e.state for e in enforcement.classify(found).values())
    declared = sum(states[s] for s in enforcement.DECLARED_NOT_ENFORCED)
    configured = states[enforcement.CONFIGURED_STATE]
    if declared or configured:
        detail = _("%(declared)d declared, %(configured)d configured") % {
            "declared": declared,
            "configured": configured,
        }
    else:
        detail = _("of %(n)d rules") % {"n": len(found)}
    level = "critical" if declared else ("warning" if configured else "ok")
    return [Card(_("Rules not enforced"), declared + configured, detail, level, "enforcement=not_enforced")]


@dataclass
class GroupCount:
    """Duplicate groups over every rule the database does not enforce, as far as the budget went."""

    groups: int = 0
    rows: int = 0
    rules_with_groups: int = 0
    declared_groups: int = 0  # groups of declared (missing / invalid) rules: those break a constraint
    not_counted: int = 0  # rules whose scan timed out or did not fit in the budget
    ready: int = 0  # rules with no groups left that the Enforce action can finish


def count_groups(budget_ms: int | None = None) -> GroupCount:
    """Scan every non-enforced rule (totals only) until ``budget_ms`` (default: one scan timeout) is spent.

    Each scan gets what is left of the budget as its statement timeout, so the
    whole count never takes much longer than one scan may.
    """
    budget = settings.SCAN_TIMEOUT_MS if budget_ms is None else budget_ms
    deadline = time.monotonic() + budget / 1000
    found = rules_for()
    states = enforcement.classify(found)
    count = GroupCount()
    for rule in found:
        state = states[rule.key]
        if state.state not in enforcement.NOT_ENFORCED_STATES or not state.scannable:
            continue
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0:
            count.not_counted += 1
            continue
        try:
            groups, rows = duplicates.totals(rule, timeout_ms=min(left, settings.SCAN_TIMEOUT_MS))
        except (duplicates.ScanTimedOut, DatabaseError):
            count.not_counted += 1
            continue
        count.groups += groups
        count.rows += rows
        count.rules_with_groups += bool(groups)
        count.ready += not groups and enforce.offered(rule, state)
        if state.state in enforcement.DECLARED_NOT_ENFORCED:
            count.declared_groups += groups
    return count


def same_page_note() -> str:
    """Why the "Duplicate groups" card links to the same page as "Rules not enforced"."""
    return _("The same page as “Rules not enforced”: each rule there counts its groups.")


def duplicate_groups_card(budget_ms: int | None = None) -> Card:
    """The "Duplicate groups" card (it scans: the dashboard loads it lazily)."""
    count = count_groups(budget_ms)
    if count.groups:
        detail = ngettext(
            "%(rows)s rows in %(n)d rule", "%(rows)s rows in %(n)d rules", count.rules_with_groups
        ) % {"rows": f"{count.rows:,}", "n": count.rules_with_groups}
    else:
        detail = _("in the rules not enforced")
    if count.not_counted:
        detail += " · " + ngettext(
            "%(n)d rule not counted (timed out)", "%(n)d rules not counted (timed out)", count.not_counted
        ) % {"n": count.not_counted}
    note = ngettext("%(n)d ready to enforce", "%(n)d ready to enforce", count.ready) % {"n": count.ready}
    if count.declared_groups:
        level = "critical"
    elif count.groups or count.not_counted:
        level = "warning"
    else:
        level = "ok"
    card = Card(_("Duplicate groups"), count.groups, detail, level, "enforcement=not_enforced")
    card.note = note if count.ready else ""
    return card


def event_cards(now: datetime | None = None) -> list[Card]:
    """The "IntegrityError groups, 24 h" card: unresolved and regressed groups seen in the last 24 hours.

    The value counts groups, not occurrences: a group's ``count`` covers its
    whole life, and only its first samples are kept, so neither adds up to the
    occurrences of the last 24 hours exactly. The busiest group is the one
    with the largest count among them (its count in all, said so). Two
    queries. Critical when one of them was not handled by the application
    (it reached the user as an error), a warning when all were.
    """
    try:
        with reads.bounded(router.db_for_read(EventGroup)):
            return _event_cards(now)
    except reads.ReadBusy as exc:
        return [Card(_("IntegrityError groups, 24 h"), None, exc.reason, "warning", "range=24h")]


def _event_cards(now: datetime | None) -> list[Card]:
    since = (now or timezone.now()) - timedelta(hours=24)
    # Unresolved and regressed only: resolved and ignored groups are dealt with.
    recent = lifecycle.open_groups(EventGroup.objects.filter(last_seen__gte=since), now)
    totals = recent.aggregate(
        groups=Count("id"),
        unhandled=Count("id", filter=Q(count__gt=F("handled_count"))),
        regressed=Count("id", filter=Q(state=lifecycle.REGRESSED)),
    )
    groups = int(totals["groups"] or 0)
    if not groups:
        return [
            Card(
                _("IntegrityError groups, 24 h"),
                0,
                _("no group seen in the last 24 hours"),
                "ok",
                "range=24h",
            )
        ]
    busiest = recent.order_by("-count", "-last_seen", "-id").first()
    assert busiest is not None
    target = busiest.constraint or busiest.table or busiest.kind
    detail = ngettext(
        "busiest: %(target)s, %(n)s time in all",
        "busiest: %(target)s, %(n)s times in all",
        busiest.count,
    ) % {"target": target, "n": f"{busiest.count:,}"}
    if totals["regressed"]:
        detail += " · " + ngettext("%(n)d regressed", "%(n)d regressed", totals["regressed"]) % {
            "n": totals["regressed"]
        }
    level = "critical" if totals["unhandled"] or totals["regressed"] else "warning"
    return [Card(_("IntegrityError groups, 24 h"), groups, detail, level, "range=24h")]
