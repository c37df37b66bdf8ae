"""Migration operations for reusable apps: ``MergeDuplicates`` before the unique rule, ``ResyncSequences``.

The story: the next release of an app makes customers unique by e-mail,
case-insensitively; installs hold duplicates (referenced by orders, by
memberships with their own unique pair, by generic notes); the
``AddConstraint`` fails with "could not create unique index … is
duplicated" and the guide says: clean up the duplicates, then migrate again,
by hand. ``tests.dedupe``'s migrations do it in the release instead: model
without the rule, duplicates loaded, ``MergeDuplicates``, ``AddConstraint``.
Each runs for real in a subprocess on a fresh database.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import migrations
from django.db.migrations.writer import MigrationWriter
from django.db.models.functions import Lower

from integrity.operations import MergeDuplicates, ResyncSequences
from tests.migrate_run import Project, project

CONSTRAINT = "dedupe_customer_email_ci"


def dedupe_state(p: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the dedupe app, and what integrity logged."""
    return {
        "customers": p.query("SELECT id, email, name FROM dedupe_customer ORDER BY id"),
        "orders": p.query("SELECT id, customer_id FROM dedupe_order ORDER BY id"),
        "memberships": p.query("SELECT id, customer_id, club, role FROM dedupe_membership ORDER BY id"),
        "notes": p.query("SELECT id, object_id FROM dedupe_note ORDER BY id"),
    }


def applied(p: Project) -> list[str]:
    return [r[0] for r in p.query("SELECT name FROM django_migrations WHERE app = 'dedupe' ORDER BY id")]


def constraint_exists(p: Project) -> bool:
    return bool(p.query("SELECT 1 FROM pg_indexes WHERE indexname = %s", [CONSTRAINT]))


LOADED: dict[str, list[tuple[Any, ...]]] = {
    "customers": [
        (1, "ada@example.com", "Ada"),
        (2, "Ada@Example.com", "Ada L."),
        (3, "bob@example.com", "Bob"),
        (4, "bob@example.com", "Bob"),
        (5, "BOB@example.com", "Robert"),
        (6, "cy@example.com", "Cy"),
    ],
    "orders": [(1, 1), (2, 2), (3, 2), (4, 4), (5, 5)],
    "memberships": [(1, 1, "chess", "member"), (2, 2, "chess", "member"), (3, 4, "go", "member")],
    "notes": [(1, 2), (2, 5)],
}


def test_merge_duplicates_lets_the_constraint_be_added() -> None:
    with project("integrity_operations_merge") as p:
        result = p.run("migrate", "--noinput")
        assert result.returncode == 0, result.stderr
        assert (
            "MergeDuplicates: merged 2 group(s) of dedupe.Customer by Lower(email) (survivor: oldest): "
            "3 row(s) removed, 7 reference(s) moved; merge log #1, #2" in result.stdout
        )
        assert constraint_exists(p)
        assert dedupe_state(p) == {
            "customers": [
                (1, "ada@example.com", "Ada"),
                (3, "bob@example.com", "Bob"),
                (6, "cy@example.com", "Cy"),
            ],
            "orders": [(1, 1), (2, 1), (3, 1), (4, 3), (5, 3)],
            # Ada's two identical chess memberships collapse into the survivor's; Bob's go moves.
            "memberships": [(1, 1, "chess", "member"), (3, 3, "go", "member")],
            # Generic references, which the migration state does not describe, move too.
            "notes": [(1, 1), (2, 3)],
        }
        records = p.query(
            "SELECT id, model, rule, survivor, removed, user_id FROM integrity_mergerecord ORDER BY id"
        )
        # Named after the rule the model declares, so the merge log and the rule pages agree.
        assert records == [  # the largest group first
            (1, "dedupe.Customer", f"default:dedupe.Customer:{CONSTRAINT}", "3", ["4", "5"], None),
            (2, "dedupe.Customer", f"default:dedupe.Customer:{CONSTRAINT}", "1", ["2"], None),
        ]


def test_each_merge_can_be_undone_from_the_merge_log() -> None:
    with project("integrity_operations_undo") as p:
        result = p.run("migrate", "dedupe", "0003", "--noinput")
        assert result.returncode == 0, result.stderr
        undone = p.run("integrity", "undo", "2")  # Ada's group
        assert undone.returncode == 0, undone.stderr + undone.stdout
        state = dedupe_state(p)
        assert state["customers"] == [LOADED["customers"][i] for i in (0, 1, 2, 5)]
        assert state["orders"] == [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)]
        assert state["memberships"] == [
            (1, 1, "chess", "member"),
            (2, 2, "chess", "member"),
            (3, 3, "go", "member"),
        ]
        assert state["notes"] == [(1, 2), (2, 3)]


def test_without_the_operation_the_constraint_fails_on_the_duplicates_and_nothing_changes() -> None:
    with project(
        "integrity_operations_without", DEDUPE_MIGRATIONS="tests.dedupe.migrations_without_merge"
    ) as p:
        result = p.run("migrate", "--noinput")
        assert result.returncode == 1
        assert f'could not create unique index "{CONSTRAINT}"' in result.stderr
        assert "Key (lower(email::text))=(ada@example.com) is duplicated." in result.stderr
        assert dedupe_state(p) == LOADED
        assert applied(p) == ["0001_initial", "0002_load_duplicates"]
        assert not constraint_exists(p)


def test_a_group_that_needs_a_choice_fails_the_migration_with_the_list_and_nothing_is_merged() -> None:
    with project(
        "integrity_operations_choice", DEDUPE_MIGRATIONS="tests.dedupe.migrations_needs_choice"
    ) as p:
        result = p.run("migrate", "--noinput")
        assert result.returncode == 1
        assert (
            "CommandError: MergeDuplicates dedupe.Customer: 1 group(s) of dedupe.Customer under Lower(email) "
            "need a human choice" in result.stderr
        )
        assert "group of row 3: Choose which row to keep for each conflict." in result.stderr
        # Bob's group was skipped, Ada's merged, then the failure rolled every merge back.
        assert p.query("SELECT count(*) FROM integrity_mergerecord") == [(0,)]
        assert [r[0] for r in dedupe_state(p)["customers"]] == [1, 2, 3, 4, 5, 6]
        assert applied(p) == ["0001_initial", "0002_load_conflicting"]
        assert not constraint_exists(p)


def test_resync_sequences_in_a_data_migration() -> None:
    with project("integrity_operations_resync") as p:
        result = p.run("migrate", "dedupe", "0002", "--noinput")
        assert result.returncode == 0, result.stderr
        assert "ResyncSequences: public.dedupe_customer_id_seq next value 1 → 7 (recorded)" in result.stdout
        # Forward only: a second run finds nothing behind and moves nothing.
        assert p.query(
            "SELECT model, value_before, value_after FROM integrity_sequenceresync ORDER BY model"
        ) == [
            ("dedupe.Customer", 1, 7),
            ("dedupe.Membership", 1, 4),
            ("dedupe.Note", 1, 3),
            ("dedupe.Order", 1, 6),
        ]
        assert "dedupe_" not in p.run("migrate", "--noinput").stderr


@pytest.mark.parametrize(
    "operation",
    [
        ResyncSequences("shop"),
        ResyncSequences(["shop.Product", "shop.Order"]),
        MergeDuplicates("dedupe.Customer", expressions=[Lower("email")], survivor="most-referenced"),
        MergeDuplicates("dedupe.Customer", fields=["email", "name"], survivor="newest", name="pair"),
    ],
)
def test_operations_serialize_in_migration_files(operation: object) -> None:
    migration = type("Migration", (migrations.Migration,), {"operations": [operation], "dependencies": []})
    source = MigrationWriter(migration("0001_x", "shop")).as_string()
    assert "import integrity.operations" in source
    namespace: dict[str, object] = {}
    exec(source, namespace)  # noqa: S102 - the text the writer produced, as a migration file holds it
    loaded = namespace["Migration"]
    assert MigrationWriter(loaded("0001_x", "shop")).as_string() == source  # type: ignore[operator]
    [again] = loaded.operations  # type: ignore[attr-defined]
    assert type(again) is type(operation)
    assert again.describe() == operation.describe()  # type: ignore[attr-defined]


def test_bad_arguments_are_refused_when_the_migration_is_loaded() -> None:
    with pytest.raises(ValueError, match="survivor must be one of most-referenced, oldest, newest"):
        MergeDuplicates("dedupe.Customer", fields=["email"], survivor="first")
    with pytest.raises(ValueError, match="fields=.* or expressions=.*, not both"):
        MergeDuplicates("dedupe.Customer", fields=["email"], expressions=[Lower("email")])
    with pytest.raises(ValueError, match="app_label.Model"):
        MergeDuplicates("Customer", fields=["email"])
