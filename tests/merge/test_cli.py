"""``manage.py integrity merge`` / ``integrity undo``: output, exit status, and what the database holds after."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from demo import seed, seed_crm
from demo.crm.models import Company, Customer
from demo.sales.models import BillingProfile, CampaignTarget, Deal, Tag
from demo.sales.models import Note as SalesNote
from integrity.models import MergeRecord
from tests.helpers import integrity_command as run
from tests.merging.models import Order, Person, Seat

pytestmark = pytest.mark.django_db(databases="__all__")

EMAIL_RULE = [{"model": "merging.Person", "fields": ["email"], "name": "email"}]
RULE_KEY = "default:merging.Person:configured:email"


def table(out: str, first: str) -> list[dict[str, str]]:
    """The rows of the text table whose first header is ``first``, read by the widths of its dashes."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split("  ")[0] == first)
    spans, col = [], 0
    for dashes in lines[start + 1].split("  "):
        spans.append((col, col + len(dashes)))
        col += len(dashes) + 2
    headers = [lines[start][a:b].strip() for a, b in spans]
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append({h: line[a:b].strip() for h, (a, b) in zip(headers, spans, strict=True)})
    return rows


def merge(*args: str) -> tuple[int, str, str]:
    return run("merge", "merging.Person", *args)


def as_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = merge("--json", *args)
    assert out, err
    return code, json.loads(out)


@pytest.fixture(autouse=True)
def email_rule() -> Iterator[None]:
    with override_settings(INTEGRITY_DUPLICATE_RULES=EMAIL_RULE):
        yield


@pytest.fixture
def people() -> dict[str, Person]:
    """ann1..ann3 share an email (ann2 the most referenced), bob1/bob2 another; carl is alone."""
    now = timezone.now()
    found = {
        "ann1": Person._default_manager.create(email="ann@x", name="Ann", created=now - timedelta(days=3)),
        "ann2": Person._default_manager.create(email="ann@x", name="Ann Lee", nickname="annie", created=now),
        "ann3": Person._default_manager.create(email="ann@x", name="", created=now - timedelta(days=1)),
        "bob1": Person._default_manager.create(email="bob@x", name="Bob"),
        "bob2": Person._default_manager.create(email="bob@x", name="Bobby"),
        "carl": Person._default_manager.create(email="carl@x", name="Carl"),
    }
    for name, n in (("ann1", 1), ("ann2", 2), ("bob2", 1), ("carl", 1)):
        for _ in range(n):
            Order._default_manager.create(person=found[name])
    return found


def pk(person: Person) -> str:
    return str(person.pk)


def snapshot() -> dict[str, Any]:
    """Everything a merge could change."""
    return {
        "people": sorted(Person._default_manager.values_list("pk", "email", "name", "nickname")),
        "orders": sorted(Order._default_manager.values_list("pk", "person_id")),
        "seats": sorted(Seat._default_manager.values_list("pk", "person_id", "number", "row")),
        "records": list(MergeRecord.objects.values_list("pk", "undone_at")),
    }


@pytest.fixture
def seats(people: dict[str, Person]) -> dict[str, Seat]:
    """Seat 1 of ann1 and ann2 differ (a choice); seat 2 of ann1 and ann3 are identical (pure)."""
    return {
        "ann1_1": Seat._default_manager.create(person=people["ann1"], number=1, row="A"),
        "ann2_1": Seat._default_manager.create(person=people["ann2"], number=1, row="B"),
        "ann1_2": Seat._default_manager.create(person=people["ann1"], number=2, row="C"),
        "ann3_2": Seat._default_manager.create(person=people["ann3"], number=2, row="C"),
    }


# ---------------------------------------------------------------------------
# One group
# ---------------------------------------------------------------------------


def test_merge_repoints_deletes_and_records(people):
    ann1, ann2, ann3 = people["ann1"], people["ann2"], people["ann3"]
    ann2_orders = list(Order._default_manager.filter(person=ann2).values_list("pk", flat=True))

    code, out, err = merge("--keep", pk(ann1), "--remove", pk(ann2), pk(ann3))

    assert code == 0, err
    assert not Person._default_manager.filter(pk__in=[ann2.pk, ann3.pk]).exists()
    assert set(Order._default_manager.filter(pk__in=ann2_orders).values_list("person_id", flat=True)) == {
        ann1.pk
    }
    assert Order._default_manager.filter(person=ann1).count() == 3
    assert Person._default_manager.get(pk=ann1.pk).name == "Ann"  # no --take: the survivor's values stay
    [record] = MergeRecord.objects.all()
    assert (record.rule, record.survivor, record.removed) == (RULE_KEY, pk(ann1), [pk(ann2), pk(ann3)])
    assert record.repointed == 2
    assert f"Merged merging.Person {ann2.pk}, {ann3.pk} into {ann1.pk} (rule merging.Person: email)." in out
    assert table(out, "RELATION") == [
        {"RELATION": "merging.Order.person", "KIND": "foreign key", "ROWS RE-POINTED": "2"}
    ]
    assert table(out, "DELETED") == [
        {"DELETED": "merging.Person", "ROWS": "2", "PKS": f"{ann2.pk}, {ann3.pk}", "WHY": "merged"}
    ]
    assert out.rstrip().endswith(
        f"merge record {record.pk}: undo with python manage.py integrity undo {record.pk}"
    )


def test_dry_run_previews_and_changes_nothing(people, seats):
    ann1, ann3 = people["ann1"], people["ann3"]
    before = snapshot()

    code, out, err = merge("--keep", pk(ann1), "--remove", pk(ann3), "--dry-run")

    assert code == 0, err
    assert snapshot() == before
    assert out.startswith(f"Would merge merging.Person {ann3.pk} into {ann1.pk}")
    # ann3's seat 2 is identical to ann1's: collapsed, ann1's kept.
    conflicts = table(out, "CONFLICT")
    assert [(r["ROW"], r["OWNER"], r["ACTION"]) for r in conflicts] == [
        (str(seats["ann1_2"].pk), pk(ann1), "keep"),
        (str(seats["ann3_2"].pk), pk(ann3), "delete"),
    ]
    assert conflicts[0]["KEY"] == f"person={ann1.pk}, number=2"
    assert table(out, "DELETED")[1] == {
        "DELETED": "merging.Seat",
        "ROWS": "1",
        "PKS": str(seats["ann3_2"].pk),
        "WHY": f"conflict {conflicts[0]['CONFLICT']}",
    }
    assert "0 rows to re-point, 2 rows deleted." in out


def test_json_preview_and_result(people):
    ann1, ann2 = people["ann1"], people["ann2"]
    before = snapshot()

    code, preview = as_json("--keep", pk(ann1), "--remove", pk(ann2), "--dry-run")

    assert code == 0
    assert snapshot() == before
    assert preview["dry_run"] is True
    assert (preview["rule"], preview["survivor"], preview["duplicates"]) == (RULE_KEY, ann1.pk, [ann2.pk])
    assert preview["relations"] == [{"relation": "merging.Order.person", "kind": "foreign key", "rows": 2}]
    assert preview["conflicts"] == [] and preview["changes"] == []
    assert preview["deleted"] == [{"model": "merging.Person", "pks": [ann2.pk], "why": "merged"}]

    code, out, err = merge("--json", "--keep", pk(ann1), "--remove", pk(ann2))

    assert code == 0, err
    result = json.loads(out)
    [record] = MergeRecord.objects.all()
    assert result["record"] == {
        "id": record.pk,
        "survivor": pk(ann1),
        "removed": [pk(ann2)],
        "repointed": 2,
        "deleted": 1,
        "undone_at": None,
        "undo": f"python manage.py integrity undo {record.pk}",
    }
    assert result["relations"] == preview["relations"]
    assert f"merge record {record.pk}" in err  # the hint goes to stderr, stdout stays JSON


def test_conflicts_needing_a_choice_exit_1_and_change_nothing(people, seats):
    ann1, ann2 = people["ann1"], people["ann2"]
    before = snapshot()

    code, out, err = merge("--keep", pk(ann1), "--remove", pk(ann2))

    assert code == 1
    assert snapshot() == before
    assert "1 conflict needs a choice" in err and "--keep-child CONFLICT_ID=PK" in err
    rows = [r for r in table(out, "CONFLICT") if r["ACTION"] == "choose"]
    assert [(r["ROW"], r["OWNER"], r["VALUES"]) for r in rows] == [
        (str(seats["ann1_1"].pk), pk(ann1), "row='A'"),
        (str(seats["ann2_1"].pk), pk(ann2), "row='B'"),
    ]
    assert {(r["HOLDER"], r["KEY"]) for r in rows} == {
        ("merging.Seat (merging_seat_person_number)", f"person={ann1.pk}, number=1")
    }
    code, preview = as_json("--keep", pk(ann1), "--remove", pk(ann2))
    assert code == 1
    [conflict] = preview["conflicts"]
    assert preview["needs_choice"] == [conflict["id"]]
    assert conflict["holder"] == "merging.Seat" and conflict["key"] == {"person": ann1.pk, "number": 1}
    assert [(r["pk"], r["owner"]) for r in conflict["rows"]] == [
        (seats["ann1_1"].pk, ann1.pk),
        (seats["ann2_1"].pk, ann2.pk),
    ]
    assert snapshot() == before


def conflict_id(*args: str) -> str:
    code, preview = as_json(*args, "--dry-run")
    assert code == 1  # a dry run that shows a conflict to choose exits 1 too
    [found] = preview["needs_choice"]
    return str(found)


def test_keep_child_resolves_the_conflict(people, seats):
    ann1, ann2 = people["ann1"], people["ann2"]
    choice = conflict_id("--keep", pk(ann1), "--remove", pk(ann2))

    code, out, err = merge(
        "--keep", pk(ann1), "--remove", pk(ann2), "--keep-child", f"{choice}={seats['ann2_1'].pk}"
    )

    assert code == 0, err
    # ann2's seat 1 (row B) now belongs to ann1; ann1's own seat 1 was deleted.
    assert sorted(Seat._default_manager.filter(person=ann1).values_list("number", "row")) == [
        (1, "B"),
        (2, "C"),
    ]
    assert not Seat._default_manager.filter(pk=seats["ann1_1"].pk).exists()
    assert not Person._default_manager.filter(pk=ann2.pk).exists()
    assert table(out, "DELETED")[1] == {
        "DELETED": "merging.Seat",
        "ROWS": "1",
        "PKS": str(seats["ann1_1"].pk),
        "WHY": f"conflict {choice}",
    }


def test_take_copies_a_field_from_a_duplicate(people):
    ann1, ann2 = people["ann1"], people["ann2"]

    code, out, err = merge(
        "--keep", pk(ann1), "--remove", pk(ann2), "--take", f"name={ann2.pk}", f"nickname={ann2.pk}"
    )

    assert code == 0, err
    survivor = Person._default_manager.get(pk=ann1.pk)
    assert (survivor.name, survivor.nickname) == ("Ann Lee", "annie")
    assert table(out, "FIELD") == [
        {"FIELD": "name", "FROM ROW": pk(ann2), "BEFORE": "'Ann'", "AFTER": "'Ann Lee'"},
        {"FIELD": "nickname", "FROM ROW": pk(ann2), "BEFORE": "NULL", "AFTER": "'annie'"},
    ]


def test_without_rule_the_rule_under_which_rows_are_duplicates_is_used(people):
    """Person has unique:handle (enforced) and configured:email: the rows share only an email."""
    people["bob1"].handle = "bob"
    people["bob1"].save()
    code, preview = as_json("--keep", pk(people["bob1"]), "--remove", pk(people["bob2"]), "--dry-run")
    assert code == 0
    assert preview["rule"] == RULE_KEY


def test_rule_by_name_or_key(people):
    ann1, ann2 = people["ann1"], people["ann2"]
    for rule in ("configured:email", RULE_KEY):
        code, preview = as_json("--keep", pk(ann1), "--remove", pk(ann2), "--rule", rule, "--dry-run")
        assert (code, preview["rule"]) == (0, RULE_KEY)


# ---------------------------------------------------------------------------
# Every group of a rule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "ann", "bob"),
    [("most-referenced", "ann2", "bob2"), ("oldest", "ann1", "bob1"), ("newest", "ann3", "bob2")],
)
def test_all_merges_every_group_by_policy(people, policy, ann, bob):
    code, out, err = merge("--rule", "configured:email", "--all", "--survivor", policy)

    assert code == 0, err
    survivors = {people[ann].pk, people[bob].pk, people["carl"].pk}
    assert set(Person._default_manager.values_list("pk", flat=True)) == survivors
    assert Order._default_manager.filter(person=people[ann]).count() == 3
    assert Order._default_manager.filter(person=people[bob]).count() == 1
    records = MergeRecord.objects.order_by("pk")
    assert [r.survivor for r in records] == [pk(people[ann]), pk(people[bob])]
    assert "merged 1/2 groups" in err and "merged 2/2 groups" in err
    assert "2 groups merged, 0 skipped." in out
    for record in records:
        assert f"merge record {record.pk}: undo with python manage.py integrity undo {record.pk}" in out


def test_all_dry_run_and_json(people):
    before = snapshot()
    code, out, err = merge("--rule", "configured:email", "--all", "--survivor", "oldest", "--dry-run")
    assert code == 0, err
    assert snapshot() == before
    assert "2 groups of merging.Person: email, survivor: oldest." in out
    assert [(r["SURVIVOR"], r["DUPLICATES"], r["RE-POINT"]) for r in table(out, "SURVIVOR")] == [
        (pk(people["ann1"]), f"{people['ann2'].pk}, {people['ann3'].pk}", "2"),
        (pk(people["bob1"]), pk(people["bob2"]), "1"),
    ]

    code, result = as_json("--rule", "configured:email", "--all", "--survivor", "oldest")
    assert code == 0
    assert [g["survivor"] for g in result["groups"]] == [people["ann1"].pk, people["bob1"].pk]
    assert [m["survivor"] for m in result["merged"]] == [pk(people["ann1"]), pk(people["bob1"])]
    assert (result["skipped"], result["stopped"], result["remaining"]) == ([], False, 0)
    assert Person._default_manager.count() == 3


def test_all_with_a_conflict_merges_nothing(people, seats):
    before = snapshot()

    code, out, err = merge("--rule", "configured:email", "--all", "--survivor", "oldest")

    assert code == 1
    assert snapshot() == before  # bob's group, which has no conflict, is not merged either
    assert "1 conflict needs a choice" in err
    assert "choose" in out and "merging.Seat" in out
    assert "merged" not in err


class InterruptAfterFirstGroup(io.StringIO):
    """A stderr that presses Ctrl-C (a real SIGINT) when the first group is reported merged."""

    def write(self, text: str) -> int:
        written = super().write(text)
        if text.startswith("merged 1/"):
            os.kill(os.getpid(), signal.SIGINT)
        return written


def test_ctrl_c_stops_between_groups(people):
    handler = signal.getsignal(signal.SIGINT)
    code, out, err = run(
        "merge",
        "merging.Person",
        "--rule",
        "configured:email",
        "--all",
        "--survivor",
        "oldest",
        stderr=InterruptAfterFirstGroup(),
    )

    assert code == 1
    assert "stopping after this group" in err
    assert "stopped: 1 groups merged, 1 left as they were." in err
    [record] = MergeRecord.objects.all()
    assert record.survivor == pk(people["ann1"])
    assert Person._default_manager.filter(email="ann@x").count() == 1
    assert Person._default_manager.filter(email="bob@x").count() == 2  # untouched
    assert "1 groups merged, 0 skipped." in out
    assert signal.getsignal(signal.SIGINT) is handler  # put back


# ---------------------------------------------------------------------------
# Undo
# ---------------------------------------------------------------------------


def test_undo_puts_everything_back_and_twice_is_refused(people, seats):
    ann1, ann3 = people["ann1"], people["ann3"]
    before = snapshot()["people"], snapshot()["orders"], snapshot()["seats"]
    code, _out, err = merge("--keep", pk(ann1), "--remove", pk(ann3), "--take", f"created={ann3.pk}")
    assert code == 0, err
    [record] = MergeRecord.objects.all()

    code, out, err = run("undo", str(record.pk))

    assert code == 0, err
    assert (snapshot()["people"], snapshot()["orders"], snapshot()["seats"]) == before
    assert Person._default_manager.get(pk=ann1.pk).created == ann1.created
    record.refresh_from_db()
    assert record.undone_at is not None
    assert out.startswith(f"undid merge record {record.pk}: merging.Person {ann3.pk} are back")

    code, out, err = run("undo", str(record.pk), "--json")
    assert code == 1
    assert out == ""
    assert "undone already" in err
    assert (snapshot()["people"], snapshot()["orders"], snapshot()["seats"]) == before


def test_undo_json(people):
    merge("--keep", pk(people["bob1"]), "--remove", pk(people["bob2"]))
    [record] = MergeRecord.objects.all()
    code, out, err = run("undo", str(record.pk), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["id"], result["model"], result["removed"]) == (
        record.pk,
        "merging.Person",
        [pk(people["bob2"])],
    )
    assert result["undone_at"] is not None
    assert Order._default_manager.filter(person=people["bob2"]).count() == 1


def test_undo_refused_when_the_survivor_changed(people):
    ann1, ann2 = people["ann1"], people["ann2"]
    merge("--keep", pk(ann1), "--remove", pk(ann2), "--take", f"name={ann2.pk}")
    [record] = MergeRecord.objects.all()
    Person._default_manager.filter(pk=ann1.pk).update(name="Someone else")

    code, _out, err = run("undo", str(record.pk))

    assert code == 1
    assert "changed since the merge" in err
    assert not Person._default_manager.filter(pk=ann2.pk).exists()
    record.refresh_from_db()
    assert record.undone_at is None


# ---------------------------------------------------------------------------
# Bad input: a clear message, the documented exit status, nothing changed
# ---------------------------------------------------------------------------


BAD_ARGUMENTS = [
    # (arguments, with {ann1}-style placeholders, exit status, part of the message)
    (
        ["merge", "merging.Nobody", "--keep", "{ann1}", "--remove", "{ann2}"],
        2,
        "Unknown model merging.Nobody",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--rule", "nope"],
        2,
        "no rule 'nope'",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--database", "nope"],
        2,
        "Unknown database",
    ),
    (
        ["merge", "merging.Person", "--keep", "abc", "--remove", "{ann2}"],
        2,
        "'abc' is not a valid primary key",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "x1", "--rule", "configured:email"],
        2,
        "'x1' is not a valid",
    ),
    (
        ["merge", "merging.Person", "--keep", "{bob1}", "--remove", "{ann2}", "--rule", "configured:email"],
        2,
        "are not duplicates of row",
    ),
    (
        ["merge", "merging.Person", "--keep", "{carl}", "--remove", "{ann2}", "--rule", "configured:email"],
        2,
        "are not duplicates of row",
    ),
    (
        ["merge", "merging.Person", "--keep", "{bob1}", "--remove", "{ann2}"],
        2,
        "not duplicates of each other under any",
    ),
    (["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann1}"], 2, "at least one duplicate"),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "999999", "--rule", "configured:email"],
        1,
        "do not exist",
    ),
    (
        ["merge", "merging.Person", "--keep", "999999", "--remove", "{ann1}", "--rule", "configured:email"],
        1,
        "does not exist",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--take", "nope={ann2}"],
        2,
        "no field 'nope'",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--take", "name={bob1}"],
        2,
        "not one of the rows being merged",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--take", "name"],
        2,
        "--take takes NAME=PK",
    ),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--keep-child", "abc=1"],
        2,
        "No conflict abc",
    ),
    (["merge", "merging.Person", "--keep", "{ann1}"], 2, "--keep PK --remove PK"),
    (
        ["merge", "merging.Person", "--keep", "{ann1}", "--remove", "{ann2}", "--survivor", "oldest"],
        2,
        "--survivor chooses",
    ),
    (["merge", "merging.Person", "--all", "--survivor", "oldest"], 2, "--all needs --rule"),
    (["merge", "merging.Person", "--all", "--rule", "configured:email"], 2, "--all needs --rule"),
    (
        [
            "merge",
            "merging.Person",
            "--all",
            "--rule",
            "configured:email",
            "--survivor",
            "oldest",
            "--keep",
            "{ann1}",
        ],
        2,
        "--keep cannot be used",
    ),
    (["merge", "merging.Person", "--all", "--rule", "nope", "--survivor", "oldest"], 2, "no rule 'nope'"),
    (["undo", "999999"], 2, "No merge record 999999"),
    (["undo", "abc"], 2, "No merge record abc"),
]


@pytest.mark.parametrize(("args", "status", "message"), BAD_ARGUMENTS)
def test_bad_input(people, seats, args, status, message):
    before = snapshot()
    code, out, err = run(*[a.format(**{k: p.pk for k, p in people.items()}) for a in args])
    assert (code, out) == (status, "")
    assert message in err
    assert snapshot() == before


def test_keep_child_row_not_in_the_conflict(people, seats):
    ann1, ann2 = people["ann1"], people["ann2"]
    choice = conflict_id("--keep", pk(ann1), "--remove", pk(ann2))
    before = snapshot()
    code, _out, err = merge(
        "--keep", pk(ann1), "--remove", pk(ann2), "--keep-child", f"{choice}={seats['ann1_2'].pk}"
    )
    assert code == 2
    assert f"not one of the rows in conflict {choice}" in err
    assert snapshot() == before


def test_unknown_policy_is_an_argument_error(people):
    # argparse's error: exit status 2 from the command line (call_command raises it as a CommandError).
    before = snapshot()
    _code, _out, err = merge("--rule", "configured:email", "--all", "--survivor", "youngest")
    assert "invalid choice: 'youngest'" in err
    assert snapshot() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["merge", "nope.Nope", "--keep", "1", "--remove", "2"], "Unknown model nope.Nope"),
        (["merge", "merging.Person", "--all", "--survivor", "oldest"], "--all needs --rule"),
        (["merge", "merging.Person", "--all", "--survivor", "youngest"], "invalid choice: 'youngest'"),
        (["undo", "abc"], "No merge record abc"),
    ],
)
def test_bad_arguments_exit_with_status_2_from_the_shell(args, message):
    """Only arguments refused before any data is read: a subprocess would use the real database."""
    result = subprocess.run(
        [sys.executable, "manage.py", "integrity", *args],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_model_without_rules(people):
    code, _out, err = run("merge", "merging.Order", "--keep", "1", "--remove", "2")
    assert code == 2
    assert "merging.Order has no uniqueness rule on default" in err


# ---------------------------------------------------------------------------
# The demo: companies imported three times with one VAT number (a dropped constraint)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _drop_the_failed_index_afterwards(django_db_blocker: Any) -> Iterator[None]:
    """The demo's failed concurrent index is committed outside the tests' transactions: undo it."""
    yield
    with django_db_blocker.unblock():
        seed_crm.undo_failed_concurrent_index()


@pytest.fixture
def crm() -> dict[str, Company]:
    seed.load()
    return {c.name: c for c in Company.objects.all()}


def crm_snapshot() -> dict[str, Any]:
    """Every company and what references one (customers do by name: ``to_field``)."""
    return {
        "companies": sorted(Company.objects.values_list("pk", "name", "vat_number")),
        "customers": sorted(Customer.objects.values_list("pk", "company_id")),
        "deals": sorted(Deal.objects.values_list("pk", "company_id")),
        "tags": sorted(Tag.companies.through.objects.values_list("tag_id", "company_id")),
        "targets": sorted(CampaignTarget.objects.values_list("pk", "company_id", "status")),
        "notes": sorted(SalesNote.objects.values_list("pk", "object_id")),
        "billing": sorted(BillingProfile.objects.values_list("pk", "company_id", "iban")),
    }


def test_demo_acme_merge_asks_for_the_billing_profile_then_carries_everything(crm):
    acme, spaced, lower = crm["Acme Ltd"], crm[" Acme Ltd"], crm["acme ltd"]
    args = ["merge", "crm.Company", "--keep", str(acme.pk), "--remove", str(spaced.pk), str(lower.pk)]
    before = crm_snapshot()

    # No --rule: the name rule is enforced and the names differ; vat_number's constraint was dropped.
    code, out, err = run(*args, "--json")

    assert code == 1
    assert crm_snapshot() == before
    preview = json.loads(out)
    assert preview["dry_run"] is False and preview["needs_choice"]
    assert preview["rule"] == "default:crm.Company:unique:vat_number"
    [choice] = [c for c in preview["conflicts"] if c["keep"] is None]
    assert choice["holder"] == "sales.BillingProfile"
    theirs = BillingProfile.objects.get(company=spaced)
    assert {r["pk"]: r["owner"] for r in choice["rows"]} == {
        BillingProfile.objects.get(company=acme).pk: acme.pk,
        theirs.pk: spaced.pk,
    }
    relations = {r["relation"]: r["rows"] for r in preview["relations"]}
    assert relations["crm.Customer.company"] == Customer.objects.filter(company__in=[spaced, lower]).count()

    code, out, err = run(*args, "--keep-child", f"{choice['id']}={theirs.pk}")

    assert code == 0, err
    assert list(Company.objects.filter(vat_number="GB123456789")) == [acme]
    names = {"Acme Ltd", " Acme Ltd", "acme ltd"}
    assert Customer.objects.filter(company_id="Acme Ltd").count() == sum(
        1 for _pk, name in before["customers"] if name in names
    )
    assert Deal.objects.filter(company=acme).count() == 5
    assert BillingProfile.objects.get(company=acme).iban == theirs.iban
    assert SalesNote.objects.filter(object_id=acme.pk).count() == 2
    assert sorted(Tag.objects.filter(companies=acme).values_list("name", flat=True)) == ["enterprise", "eu"]
    [record] = MergeRecord.objects.all()
    assert f"merge record {record.pk}: undo with python manage.py integrity undo {record.pk}" in out

    code, out, err = run("undo", str(record.pk))

    assert code == 0, err
    assert crm_snapshot() == before


def test_demo_all_needs_the_billing_choice_then_merges_by_most_referenced(crm):
    args = ["merge", "crm.Company", "--rule", "unique:vat_number", "--all", "--survivor", "most-referenced"]
    before = crm_snapshot()

    code, out, err = run(*args)

    assert code == 1
    assert crm_snapshot() == before  # Globex, which has no conflict, is not merged either
    assert "sales.BillingProfile" in out and "1 conflict needs a choice" in err

    BillingProfile.objects.filter(company=crm[" Acme Ltd"]).delete()
    code, out, err = run(*args)

    assert code == 0, err
    kept = dict(Company.objects.exclude(vat_number=None).values_list("vat_number", "name"))
    assert kept["GB123456789"] == "Acme Ltd"  # most deals, customers and more
    assert Company.objects.filter(vat_number="DE811907980").count() == 1
    assert Customer.objects.count() == len(before["customers"])
    names = set(Company.objects.values_list("name", flat=True))
    assert set(Customer.objects.exclude(company=None).values_list("company_id", flat=True)) <= names
    assert "2 groups merged, 0 skipped." in out


def test_all_merges_the_groups_it_planned_without_scanning_again(people):
    """One scan plans every group, one count at the end: the merges don't re-scan the table per batch."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        code, result = as_json("--rule", "configured:email", "--all", "--survivor", "oldest")
    assert code == 0
    assert [m["survivor"] for m in result["merged"]] == [pk(people["ann1"]), pk(people["bob1"])]
    scans = [q["sql"] for q in queries.captured_queries if "HAVING COUNT(*) > 1" in q["sql"]]
    assert len(scans) == 2, scans  # the plans' page of groups, then the count of what is left
