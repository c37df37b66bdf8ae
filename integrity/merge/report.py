"""What ``integrity merge`` / ``integrity undo`` print: merge plans, conflicts and merge records as text or JSON.

Pure functions of a ``Plan``, ``Conflict``, ``MergeRecord`` or
``MergeAllResult``: no database access, no argument parsing. The ``--json``
objects are dicts ready for :func:`dumps`; the text is lines of tables made by
:func:`integrity.cli.format_table`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from integrity.cli import format_table, value_text
from integrity.duplicates.rules import Rule
from integrity.merge.bulk import MergeAllResult
from integrity.merge.conflicts import Conflict
from integrity.merge.plan import Plan
from integrity.models import MergeRecord

UNDO_HINT = "python manage.py integrity undo {id}"


def _key_text(key: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value_text(value)}" for name, value in key.items())


def _other_values(conflict: Conflict, values: dict[str, Any]) -> str:
    meta = conflict.holder._meta
    hidden = {str(meta.pk.attname)} | {str(getattr(meta.get_field(n), "attname", n)) for n in conflict.key}
    return ", ".join(f"{k}={value_text(v)}" for k, v in values.items() if k not in hidden)


def _action(conflict: Conflict, pk: Any) -> str:
    if conflict.keep is None:
        return "choose"
    return "keep" if pk == conflict.keep else "delete"


def _deleted(plan: Plan) -> list[dict[str, Any]]:
    rows = [{"model": plan.rule.label, "pks": [m.pk for m in plan.duplicates], "why": "merged"}]
    for c in plan.conflicts:
        if c.keep is not None and c.losers:
            rows.append({"model": c.holder._meta.label, "pks": c.losers, "why": f"conflict {c.id}"})
    return rows


def dumps(data: Any) -> str:
    """A ``--json`` object as printed: indented, dates and decimals as Django serializes them."""
    return json.dumps(data, indent=2, cls=DjangoJSONEncoder)


def undo_hint(record: MergeRecord) -> str:
    return f"merge record {record.pk}: undo with {UNDO_HINT.format(id=record.pk)}"


def preview_json(plan: Plan) -> dict[str, Any]:
    """What the plan would do, as the ``--json`` object (a result adds ``record``)."""
    return {
        "database": plan.rule.database,
        "model": plan.rule.label,
        "rule": plan.rule.key,
        "survivor": plan.survivor.pk,
        "duplicates": [m.pk for m in plan.duplicates],
        "relations": [
            {"relation": m.relation.label, "kind": m.relation.kind, "rows": m.moving}
            for m in plan.moves
            if m.moving
        ],
        "conflicts": [
            {
                "id": c.id,
                "holder": c.holder._meta.label,
                "rule": c.rule,
                "key": c.key,
                "pure": c.pure,
                "keep": c.keep,
                "rows": [
                    {"pk": r.pk, "owner": r.owner, "values": r.values, "action": _action(c, r.pk)}
                    for r in c.rows
                ],
            }
            for c in plan.conflicts
        ],
        "changes": [
            {"field": ch.name, "from": ch.source, "before": ch.before, "after": ch.after}
            for ch in plan.changes
        ],
        "deleted": _deleted(plan),
        "needs_choice": [c.id for c in plan.unresolved],
    }


def conflict_table(plans: Sequence[Plan]) -> str:
    """Every conflict row of the plans, with what happens to it; a SURVIVOR column when there are several."""
    rows = []
    for plan in plans:
        for c in plan.conflicts:
            for r in c.rows:
                rows.append(
                    {
                        "group": plan.survivor.pk,
                        "id": c.id,
                        "holder": c.label,
                        "key": _key_text(c.key),
                        "pk": r.pk,
                        "owner": r.owner,
                        "values": _other_values(c, r.values),
                        "action": _action(c, r.pk),
                    }
                )
    columns = [("id", "CONFLICT"), ("holder", "HOLDER"), ("key", "KEY"), ("pk", "ROW")]
    columns += [("owner", "OWNER"), ("values", "VALUES"), ("action", "ACTION")]
    return format_table(rows, ([("group", "SURVIVOR")] if len(plans) > 1 else []) + columns)


def preview_lines(plan: Plan, *, done: bool = False) -> list[str]:
    """The plan as readable tables: re-pointed rows, conflicts, deleted rows, field changes."""
    rule = plan.rule
    dups = ", ".join(str(m.pk) for m in plan.duplicates)
    verb = "Merged" if done else "Would merge"
    lines = [f"{verb} {rule.label} {dups} into {plan.survivor.pk} (rule {rule.display_name})."]
    data = preview_json(plan)
    if data["relations"]:
        columns = [("relation", "RELATION"), ("kind", "KIND"), ("rows", "ROWS RE-POINTED")]
        lines += ["", format_table(data["relations"], columns)]
    else:
        lines += ["", "No row references the duplicates."]
    if plan.conflicts:
        lines += ["", conflict_table([plan])]
    deleted = [{**d, "pks": ", ".join(map(str, d["pks"])), "n": len(d["pks"])} for d in data["deleted"]]
    columns = [("model", "DELETED"), ("n", "ROWS"), ("pks", "PKS"), ("why", "WHY")]
    lines += ["", format_table(deleted, columns)]
    if plan.changes:
        changes = [
            {**c, "before": value_text(c["before"]), "after": value_text(c["after"])} for c in data["changes"]
        ]
        columns = [("field", "FIELD"), ("from", "FROM ROW"), ("before", "BEFORE"), ("after", "AFTER")]
        lines += ["", format_table(changes, columns)]
    moved, gone = plan.moving, plan.deleted
    lines += ["", f"{moved} rows {'re-pointed' if done else 'to re-point'}, {gone} rows deleted."]
    return lines


def plans_json(rule: Rule, policy: str, plans: Sequence[Plan]) -> dict[str, Any]:
    """``--all``: the rule, the survivor policy and every group's preview."""
    return {"rule": rule.key, "policy": policy, "groups": [preview_json(p) for p in plans]}


def plans_lines(rule: Rule, policy: str, plans: Sequence[Plan]) -> list[str]:
    """``--all`` as text: one row per group, then every conflict of every group."""
    rows = [
        {
            "survivor": p.survivor.pk,
            "duplicates": ", ".join(str(m.pk) for m in p.duplicates),
            "moving": p.moving,
            "deleted": p.deleted,
            "conflicts": len(p.conflicts),
            "choose": len(p.unresolved),
        }
        for p in plans
    ]
    columns = [("survivor", "SURVIVOR"), ("duplicates", "DUPLICATES"), ("moving", "RE-POINT")]
    columns += [("deleted", "DELETE"), ("conflicts", "CONFLICTS"), ("choose", "TO CHOOSE")]
    lines = [f"{len(plans)} groups of {rule.display_name}, survivor: {policy}.", format_table(rows, columns)]
    if any(p.conflicts for p in plans):
        lines += ["", conflict_table([p for p in plans if p.conflicts])]
    return lines


def record_json(record: MergeRecord) -> dict[str, Any]:
    """A merge record as ``--json`` shows it, with the command that undoes it."""
    return {
        "id": record.pk,
        "survivor": record.survivor,
        "removed": record.removed,
        "repointed": record.repointed,
        "deleted": record.deleted,
        "undone_at": record.undone_at,
        "undo": UNDO_HINT.format(id=record.pk),
    }


def result_json(result: MergeAllResult) -> dict[str, Any]:
    """What a ``--all`` run did: its merge records, the groups it skipped, whether it was stopped."""
    return {
        "merged": [record_json(r) for r in result.merged],
        "skipped": [{"group": pk, "reason": why} for pk, why in result.skipped],
        "stopped": result.stopped,
        "remaining": result.remaining,
    }


def result_lines(result: MergeAllResult) -> list[str]:
    """A ``--all`` run as text: a row per merge record, the skipped groups, a count, the undo commands."""
    columns = [("id", "RECORD"), ("survivor", "SURVIVOR"), ("removed", "REMOVED")]
    columns += [("repointed", "RE-POINTED"), ("deleted", "DELETED")]
    rows = [{**record_json(r), "removed": ", ".join(r.removed)} for r in result.merged]
    lines = [format_table(rows, columns)]
    lines += [f"skipped the group of row {pk}: {why}" for pk, why in result.skipped]
    lines.append(f"{len(result.merged)} groups merged, {len(result.skipped)} skipped.")
    lines += [undo_hint(record) for record in result.merged]
    return lines


def undone_line(record: MergeRecord) -> str:
    """The text of ``integrity undo``: what came back."""
    return (
        f"undid merge record {record.pk}: {record.model} {', '.join(record.removed)} are back, "
        f"{record.repointed} references moved back to them, {record.deleted} rows restored."
    )
