"""Merging every duplicate group of a rule at once, with a policy choosing each survivor.

A rule with thousands of groups cannot be reviewed one preview at a time. Each
group still gets its own transaction and record (so each one can be undone on
its own, and a stop or a crash between groups leaves no half-merged group);
groups that need a human choice are skipped and listed rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model
from django.utils.translation import gettext as _

from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import (
    GROUP_LIMIT,
    MOST_REFERENCED,
    NEWEST,
    OLDEST,
    POLICIES,
    most_referenced,
)
from integrity.merge.exceptions import MergeRefused
from integrity.merge.execute import merge, statements
from integrity.merge.plan import Plan, build_plan
from integrity.models import MergeRecord


def choose_survivor(plan: Plan, policy: str) -> Any:
    """The member to keep: the most referenced (ties: lowest pk), the oldest or the newest.

    Age is ``Meta.get_latest_by`` when it names one field, else the primary key.
    """
    check_policy(policy)
    members = plan.members
    if policy == MOST_REFERENCED:
        return most_referenced(members, plan.reference_totals())
    latest = plan.rule.model._meta.get_latest_by
    name = latest.lstrip("-") if isinstance(latest, str) else None

    def when(m: Model) -> Any:
        return getattr(m, name) if name else None

    if policy == OLDEST:
        return min(members, key=lambda m: (when(m) is None, when(m), m.pk)).pk
    assert policy == NEWEST
    return max(members, key=lambda m: (when(m) is not None, when(m), m.pk)).pk


def chooser(policy: str) -> Callable[[Plan], Any]:
    """``choose_survivor`` with ``policy`` (checked now), as ``build_plan`` and ``merge`` take it."""
    check_policy(policy)
    return lambda plan: choose_survivor(plan, policy)


def check_policy(policy: str) -> None:
    """``MergeRefused`` unless ``policy`` is one of ``POLICIES``."""
    if policy not in POLICIES:
        raise MergeRefused(
            _("Unknown survivor policy %(policy)r; use one of %(all)s.")
            % {"policy": policy, "all": ", ".join(POLICIES)}
        )


def first_group(rule: Rule) -> duplicates.ScanResult:
    """The rule's totals and its first group (the one ``merge_all`` merges first), in one scan."""
    return duplicates.scan(rule, limit=1, sample=GROUP_LIMIT)


def group_statements(rule: Rule, policy: str, group: duplicates.Group) -> list[str]:
    """The statements ``merge_all`` would run for ``group`` (``execute.statements``), as an example.

    Empty when that group needs a choice (it would be skipped).
    """
    choose = chooser(policy)
    try:
        plan = build_plan(rule, group.pks[0], group.pks[1:], choose=choose, group=False)
    except MergeRefused:
        return []
    return [] if plan.unresolved else statements(plan)


@dataclass
class MergeAllResult:
    # The records made: all of them, or the first and the last (``keep_all=False``: a job's
    # hundred thousand groups would otherwise hold as many records in the worker's memory).
    merged: list[MergeRecord] = field(default_factory=list)
    made: int = 0  # groups merged (records made), however many ``merged`` keeps
    skipped: list[tuple[Any, str]] = field(default_factory=list)  # (first pk of the group, why)
    stopped: bool = False
    remaining: int = 0  # groups still to do, those skipped not counted
    # Given ``groups``, once the list is done: the groups there are now (skipped ones, and
    # those formed or grown after the scan), counted once; None until then.
    left: int | None = None


def merge_all(
    rule: Rule,
    policy: str,
    *,
    groups: Iterable[duplicates.Group] | None = None,
    user: Any = None,
    limit: int | None = None,
    skip: Iterable[Any] = (),
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[MergeAllResult], None] | None = None,
    timeout_ms: int | None = None,
    count_left: Callable[[], int] | None = None,
    keep_all: bool = True,
) -> MergeAllResult:
    """Merge every group of the rule, each in its own transaction and record, until done, ``limit`` or a stop.

    Without ``groups`` the groups come from scans of the next few (a page's
    batch, bounded by the scan's timeout); a job scans once and gives them all
    as ``groups``, merged as scanned, then counts once what is left
    (``result.left``: ``count_left``, default one counting scan). ``timeout_ms`` bounds each
    scan (default the scan timeout; a job gives its own). ``keep_all=False``: ``result.merged``
    keeps only the first and the last record (``result.made`` counts them all).

    Every group's members are read again and checked under lock before its
    merge: a group no longer duplicates, or whose merge needs a choice (or is
    refused), is skipped and listed; a stop between groups leaves every
    finished merge complete and every other group untouched.
    """
    choose = chooser(policy)
    result = MergeAllResult()
    skipped = {str(pk) for pk in skip}
    if groups is None:
        lists: Iterable[Iterable[duplicates.Group]] = _scanned(rule, skipped, result, timeout_ms)
    else:
        lists = [groups]
        result.remaining = len(groups) if isinstance(groups, Sized) else 0
    for todo in lists:
        for group in todo:
            if str(group.pks[0]) in skipped:
                continue
            # Asked once per group: a stop request may be a one-shot signal.
            stop = should_stop()
            if stop or (limit is not None and result.made + len(result.skipped) >= limit):
                result.stopped = stop
                return result
            try:
                # The survivor is picked under the merge's lock, from the plan it carries out.
                record = merge(rule, group.pks[0], group.pks[1:], user=user, choose=choose)
                result.made += 1
                if keep_all or len(result.merged) < 2:
                    result.merged.append(record)
                else:
                    result.merged[-1] = record  # the first and the last
            except MergeRefused as exc:
                skipped.add(str(group.pks[0]))
                result.skipped.append((group.pks[0], str(exc)))
            result.remaining -= 1
            if progress is not None:
                progress(result)
    if groups is not None:
        # The list is done: nothing is to do from it; what is there now is counted once, skipped
        # groups included (a skipped group may have dissolved since: it can't be subtracted).
        result.remaining = 0
        result.left = count_left() if count_left else duplicates.totals(rule, timeout_ms=timeout_ms)[0]
    return result


def _scanned(
    rule: Rule, skipped: set[str], result: MergeAllResult, timeout_ms: int | None
) -> Iterator[list[duplicates.Group]]:
    """The next groups not skipped, a scan for each batch, until none is left (``result.remaining`` set)."""
    while True:
        page = duplicates.scan(rule, limit=len(skipped) + 20, sample=GROUP_LIMIT, timeout_ms=timeout_ms)
        todo = [g for g in page.groups if str(g.pks[0]) not in skipped]
        result.remaining = page.total_groups - len(skipped)
        if not todo:
            return
        yield todo
