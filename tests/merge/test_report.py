"""What ``integrity merge`` / ``integrity undo`` print, from real plans and merge records on the test models."""

from __future__ import annotations

import json

import pytest
from django.contrib.contenttypes.models import ContentType

from integrity import merge
from integrity.duplicates.rules import Rule
from integrity.merge import plan as merge_plan
from integrity.merge import report as merge_report
from integrity.merge import undo as merge_undo
from integrity.merge.bulk import MergeAllResult
from tests.helpers import (
    person,
)
from tests.merging.models import Order, Person, Seat, Tagged

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("constraints_checked")]


def rows(text: str) -> list[dict[str, str]]:
    """A text table as dicts by header, read by the widths of its dashes."""
    lines = text.splitlines()
    spans, col = [], 0
    for dashes in lines[1].split("  "):
        spans.append((col, col + len(dashes)))
        col += len(dashes) + 2
    headers = [lines[0][a:b].strip() for a, b in spans]
    return [{h: line[a:b].strip() for h, (a, b) in zip(headers, spans, strict=True)} for line in lines[2:]]


def conflicted(rule: Rule) -> tuple[Person, Person, Seat, Seat, Tagged, Tagged]:
    """Two duplicates: b has two orders, both have seat 1 (rows that differ) and tag ``x`` (identical)."""
    a, b = person(name=""), person(name="Bea")
    Order.objects.create(person=b)
    Order.objects.create(person=b)
    seats = Seat.objects.create(person=a, number=1, row="A"), Seat.objects.create(person=b, number=1, row="B")
    tags = Tagged.objects.create(target=a, tag="x"), Tagged.objects.create(target=b, tag="x")
    return a, b, *seats, *tags


def test_preview_json_lists_relations_conflicts_with_their_rows_deleted_rows_and_changes(rule: Rule) -> None:
    a, b, seat_a, seat_b, tag_a, tag_b = conflicted(rule)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], fields={"name": b.pk})
    seat = next(c for c in plan.conflicts if c.holder is Seat)
    tag = next(c for c in plan.conflicts if c.holder is Tagged)
    ct = ContentType.objects.get_for_model(Person).pk

    data = merge_report.preview_json(plan)

    assert data == {
        "database": "default",
        "model": "merging.Person",
        "rule": "default:merging.Person:configured:email",
        "survivor": a.pk,
        "duplicates": [b.pk],
        "relations": [
            {"relation": "merging.Order.person", "kind": "foreign key", "rows": 2},
            {"relation": "merging.Seat.person", "kind": "foreign key", "rows": 1},
        ],
        "conflicts": [
            {
                "id": seat.id,
                "holder": "merging.Seat",
                "rule": "merging_seat_person_number",
                "key": {"person": a.pk, "number": 1},
                "pure": False,
                "keep": None,
                "rows": [
                    {
                        "pk": s.pk,
                        "owner": s.person_id,
                        "values": {"id": s.pk, "person_id": s.person_id, "number": 1, "row": s.row},
                        "action": "choose",
                    }
                    for s in (seat_a, seat_b)
                ],
            },
            {
                "id": tag.id,
                "holder": "merging.Tagged",
                "rule": "unique_together:content_type,object_id,tag",
                "key": {"content_type": ct, "object_id": str(a.pk), "tag": "x"},
                "pure": True,
                "keep": tag_a.pk,
                "rows": [
                    {
                        "pk": t.pk,
                        "owner": owner.pk,
                        "values": {"id": t.pk, "content_type_id": ct, "object_id": str(owner.pk), "tag": "x"},
                        "action": action,
                    }
                    for t, owner, action in ((tag_a, a, "keep"), (tag_b, b, "delete"))
                ],
            },
        ],
        "changes": [{"field": "name", "from": b.pk, "before": "", "after": "Bea"}],
        "deleted": [
            {"model": "merging.Person", "pks": [b.pk], "why": "merged"},
            {"model": "merging.Tagged", "pks": [tag_b.pk], "why": f"conflict {tag.id}"},
        ],
        "needs_choice": [seat.id],
    }
    assert json.loads(merge_report.dumps(data)) == data


def test_a_chosen_row_is_kept_and_the_others_deleted(rule: Rule) -> None:
    a, b, seat_a, seat_b, _, _ = conflicted(rule)
    seat_id = next(c.id for c in merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts if c.holder is Seat)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], resolutions={seat_id: str(seat_b.pk)})

    data = merge_report.preview_json(plan)

    seat = next(c for c in data["conflicts"] if c["id"] == seat_id)
    assert (seat["keep"], [(r["pk"], r["action"]) for r in seat["rows"]]) == (
        seat_b.pk,
        [(seat_a.pk, "delete"), (seat_b.pk, "keep")],
    )
    assert {"model": "merging.Seat", "pks": [seat_a.pk], "why": f"conflict {seat_id}"} in data["deleted"]
    assert data["needs_choice"] == []


def test_preview_lines_show_the_tables_and_the_totals(rule: Rule) -> None:
    a, b, _, _, _, tag_b = conflicted(rule)
    plan = merge_plan.build_plan(rule, a.pk, [b.pk], fields={"name": b.pk})

    lines = merge_report.preview_lines(plan)

    assert lines[0] == f"Would merge merging.Person {b.pk} into {a.pk} (rule merging.Person: email)."
    assert lines[-1] == "3 rows to re-point, 2 rows deleted."
    relations, conflicts, deleted, changes = (rows(t) for t in lines[2:-2:2])
    assert relations == [
        {"RELATION": "merging.Order.person", "KIND": "foreign key", "ROWS RE-POINTED": "2"},
        {"RELATION": "merging.Seat.person", "KIND": "foreign key", "ROWS RE-POINTED": "1"},
    ]
    assert [(r["HOLDER"], r["KEY"], r["VALUES"], r["ACTION"]) for r in conflicts[:2]] == [
        ("merging.Seat (merging_seat_person_number)", f"person={a.pk}, number=1", "row='A'", "choose"),
        ("merging.Seat (merging_seat_person_number)", f"person={a.pk}, number=1", "row='B'", "choose"),
    ]
    assert [(r["VALUES"], r["ACTION"]) for r in conflicts[2:]] == [("", "keep"), ("", "delete")]
    tag_id = next(c.id for c in plan.conflicts if c.holder is Tagged)
    assert deleted == [
        {"DELETED": "merging.Person", "ROWS": "1", "PKS": str(b.pk), "WHY": "merged"},
        {"DELETED": "merging.Tagged", "ROWS": "1", "PKS": str(tag_b.pk), "WHY": f"conflict {tag_id}"},
    ]
    assert changes == [{"FIELD": "name", "FROM ROW": str(b.pk), "BEFORE": "''", "AFTER": "'Bea'"}]
    assert merge_report.preview_lines(plan, done=True)[0].startswith("Merged merging.Person")


def test_a_plan_with_no_references_says_so(rule: Rule) -> None:
    a, b = person(), person()

    lines = merge_report.preview_lines(merge_plan.build_plan(rule, a.pk, [b.pk]))

    assert lines[2] == "No row references the duplicates."
    assert lines[-1] == "0 rows to re-point, 1 rows deleted."


def test_several_groups_name_their_survivor_in_the_conflict_table(rule: Rule) -> None:
    a, b, _, _, _, _ = conflicted(rule)
    c, d = person("other@example.com"), person("other@example.com")
    Seat.objects.create(person=c, number=7)
    Seat.objects.create(person=d, number=7)
    plans = [merge_plan.build_plan(rule, a.pk, [b.pk]), merge_plan.build_plan(rule, c.pk, [d.pk])]

    table = rows(merge_report.conflict_table(plans))

    assert [r["SURVIVOR"] for r in table] == [str(a.pk)] * 4 + [str(c.pk)] * 2
    lines = merge_report.plans_lines(rule, "oldest", plans)
    assert lines[0] == "2 groups of merging.Person: email, survivor: oldest."
    assert rows(lines[1]) == [
        {
            "SURVIVOR": str(a.pk),
            "DUPLICATES": str(b.pk),
            "RE-POINT": "3",
            "DELETE": "2",
            "CONFLICTS": "2",
            "TO CHOOSE": "1",
        },
        {
            "SURVIVOR": str(c.pk),
            "DUPLICATES": str(d.pk),
            "RE-POINT": "0",
            "DELETE": "2",  # d, and its seat: the same as c's but for the owner
            "CONFLICTS": "1",
            "TO CHOOSE": "0",
        },
    ]
    assert lines[3] == merge_report.conflict_table(plans)
    assert merge_report.plans_json(rule, "oldest", plans) == {
        "rule": "default:merging.Person:configured:email",
        "policy": "oldest",
        "groups": [merge_report.preview_json(p) for p in plans],
    }


def test_record_json_of_a_merge_and_of_its_undo(rule: Rule) -> None:
    a, b, _, seat_b, _, _ = conflicted(rule)
    seat_id = next(c.id for c in merge_plan.build_plan(rule, a.pk, [b.pk]).conflicts if c.holder is Seat)
    record = merge.merge(rule, a.pk, [b.pk], resolutions={seat_id: seat_b.pk})

    assert merge_report.record_json(record) == {
        "id": record.pk,
        "survivor": str(a.pk),
        "removed": [str(b.pk)],
        "repointed": 3,  # two orders and b's seat
        "deleted": 3,  # b, a's seat, b's tag
        "undone_at": None,
        "undo": f"python manage.py integrity undo {record.pk}",
    }
    assert merge_report.undo_hint(record) == (
        f"merge record {record.pk}: undo with python manage.py integrity undo {record.pk}"
    )

    undone = merge_undo.undo(record)

    assert undone.undone_at is not None
    assert merge_report.record_json(undone)["undone_at"] == undone.undone_at
    assert json.loads(merge_report.dumps(merge_report.record_json(undone)))["undone_at"].startswith(
        str(undone.undone_at.date())
    )
    assert merge_report.undone_line(undone) == (
        f"undid merge record {record.pk}: merging.Person {b.pk} are back, "
        "3 references moved back to them, 3 rows restored."
    )


def test_result_of_merging_every_group(rule: Rule) -> None:
    a, b = person(), person()
    Order.objects.create(person=b)
    record = merge.merge(rule, a.pk, [b.pk])
    result = MergeAllResult(merged=[record], skipped=[(41, "the rows changed")], stopped=True, remaining=1)

    assert merge_report.result_json(result) == {
        "merged": [merge_report.record_json(record)],
        "skipped": [{"group": 41, "reason": "the rows changed"}],
        "stopped": True,
        "remaining": 1,
    }
    lines = merge_report.result_lines(result)
    assert rows(lines[0]) == [
        {
            "RECORD": str(record.pk),
            "SURVIVOR": str(a.pk),
            "REMOVED": str(b.pk),
            "RE-POINTED": "1",
            "DELETED": "1",
        }
    ]
    assert lines[1:] == [
        "skipped the group of row 41: the rows changed",
        "1 groups merged, 1 skipped.",
        merge_report.undo_hint(record),
    ]
