"""Fixes applied through the app, recorded on the groups they answer: ``integrity.signals.fix_applied``'s receiver.

A forward resync of the sequence that feeds a group's column, or a merge of
duplicates of the rule a group violated, is recorded on that group as a
``fixed`` activity ("resynced … by ann"), with the group's count then: the
group page compares it with the occurrences since (``lifecycle.verification``).
A group whose cause was not kept yet (or not since its last occurrences) gets
it now, from the evidence the fix itself gives: a resync that moved the
sequence forward proves it was behind, a merge proves the duplicates existed.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.db import router
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity.events import causes, evidence, explain
from integrity.events.lifecycle import FIXED
from integrity.events.violations import UNIQUE
from integrity.models import EventActivity, EventGroup
from integrity.sequences import service as sequences
from integrity.transactions import writing

logger = logging.getLogger("integrity.events")


def on_fix_applied(sender: Any, *, kind: str, database: str, model: str, **facts: Any) -> None:
    """Record the fix on the groups it answers (best effort, bounded: a failure or a lock is a warning)."""
    try:
        with writing(router.db_for_write(EventGroup), RuntimeError):
            _on_fix_applied(kind, database, model, facts)
    except Exception:  # noqa: BLE001  (the fix is committed; recording it on the events is best effort)
        logger.warning("Could not record a %s on the event groups of %s", kind, model, exc_info=True)


def _on_fix_applied(kind: str, database: str, model: str, facts: dict[str, Any]) -> None:
    events = EventGroup.objects.using(router.db_for_write(EventGroup))
    groups = list(events.filter(database=database, model=model, kind=UNIQUE))
    if kind == "resync":
        _resynced([g for g in groups if _column(g) == facts.get("column")], database, model, facts)
    elif kind == "merge":
        _merged([g for g in groups if _rule_key(g) == facts.get("rule")], facts)


def _column(group: EventGroup) -> str | None:
    model = evidence.model_of(group)
    columns = list(group.columns)
    if not columns and group.primary_key and model is not None:
        columns = [str(model._meta.pk.column)]
    return columns[0] if len(columns) == 1 else None


def _rule_key(group: EventGroup) -> str | None:
    rule = evidence.rule_for(group, evidence.model_of(group))
    return rule.key if rule is not None else None


def _resynced(groups: list[EventGroup], database: str, label: str, facts: dict[str, Any]) -> None:
    if not groups:
        return
    detail = dict(facts.get("detail") or {})
    before = detail.get("value_before")
    report = sequences.collect_alias(database, [m for g in groups[:1] if (m := evidence.model_of(g))])
    now = next((i for i in report.sequences if i.column == facts.get("column")), None)
    for group in groups:
        if causes.stored(group) is None and now is not None and before is not None:
            # Before the resync it handed out ``before``, a value the column held: it was behind.
            then = dataclasses.replace(now, next_value=before, status=sequences.BEHIND)
            decided = explain.decide([group])[0]
            if group.primary_key or decided.code not in (explain.RACE, explain.SEQUENCE_BEHIND):
                decided = explain.sequence_behind(group, evidence.model_of(group), then)
            causes.store(group, _as_of(decided, facts))
        note = _("Resynced %(sequence)s (next value %(before)s → %(after)s)") % {
            "sequence": facts.get("sequence", ""),
            "before": before,
            "after": detail.get("value_after"),
        }
        _record(group, facts, "resync", note, detail)


def _merged(groups: list[EventGroup], facts: dict[str, Any]) -> None:
    detail = dict(facts.get("detail") or {})
    removed = list(detail.get("removed") or [])
    for group in groups:
        if causes.stored(group) is None:
            decided = explain.decide([group])[0]
            rule = evidence.rule_for(group, evidence.model_of(group))
            if decided.code != explain.EXISTING_DUPLICATES and rule is not None:
                decided = explain.existing_duplicates(group, rule, 1, len(removed) + 1)
            causes.store(group, _as_of(decided, facts))
        note = _("Merged %(removed)s into %(survivor)s") % {
            "removed": ", ".join(str(pk) for pk in removed),
            "survivor": detail.get("survivor", ""),
        }
        _record(group, facts, "merge", note, detail)


def _as_of(decided: explain.Explanation, facts: dict[str, Any]) -> explain.Explanation:
    decided.decided = facts.get("at") or timezone.now()
    return decided


def _record(group: EventGroup, facts: dict[str, Any], kind: str, note: str, detail: dict[str, Any]) -> None:
    """One ``fixed`` activity; a merge-all's many merges of one rule, with no occurrence between, count as one."""
    alias = router.db_for_write(EventGroup)
    user = facts.get("user")
    at = facts.get("at") or timezone.now()
    last = EventActivity.objects.using(alias).filter(group=group).order_by("-created_at", "-id").first()
    entry = {"kind": kind, **{k: v for k, v in detail.items() if isinstance(v, str | int | list | None)}}
    if (
        kind == "merge"
        and last is not None
        and last.action == FIXED
        and last.detail.get("kind") == kind
        and last.count == group.count
    ):
        last.detail = {**last.detail, "merges": int(last.detail.get("merges", 1)) + 1}
        last.note = _("%(note)s, and %(n)d merges more") % {
            "note": last.note.split(", and ")[0],
            "n": last.detail["merges"] - 1,
        }
        last.save(update_fields=["detail", "note"])
        return
    EventActivity.objects.using(alias).create(
        group=group,
        created_at=at,
        action=FIXED,
        user_id=getattr(user, "pk", None),
        count=group.count,
        note=note[:500],
        detail=entry,
    )
