"""``migrate`` checks the sequences it leaves behind: a data migration that wrote explicit ids.

The story: a forum's data migration writes its two default categories with
their ids; PostgreSQL's sequence stays at 1; the first test that creates a
category fails with "duplicate key value violates unique constraint", on
every run, because the test database is built again each time. Here the
test database is built for real by Django's test runner (a subprocess on a
fresh database) with each ``INTEGRITY_AFTER_MIGRATE``.
"""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.db.migrations import Migration
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from integrity.sequences import after_migrate
from tests.migrate_run import project

STORY = "tests.explicit_ids.story"
SEQUENCE = "public.explicit_ids_category_id_seq"
MIGRATION = "explicit_ids.0002_default_categories"


def test_warn_by_default_names_the_migration_and_the_story_test_still_fails() -> None:
    with project("integrity_after_migrate_warn") as p:
        result = p.run("test", STORY, "--noinput")
    assert result.returncode == 1, result.stderr
    warning = next(line for line in result.stderr.splitlines() if SEQUENCE in line)
    assert "behind its data after migrate" in warning
    assert "MAX(id) is 2, next value 1" in warning
    assert f"migrations of explicit_ids in this run: {MIGRATION}" in warning
    assert "integrity.operations.ResyncSequences" in result.stderr
    # "warn" changes nothing: the test that creates a row fails as it did in the story.
    assert 'duplicate key value violates unique constraint "explicit_ids_category_pkey"' in result.stderr
    assert "FAILED (errors=1)" in result.stderr


def test_fix_resyncs_when_the_test_database_is_built_and_the_story_test_passes() -> None:
    with project("integrity_after_migrate_fix", INTEGRITY_AFTER_MIGRATE="fix") as p:
        result = p.run("test", STORY, "--noinput")
        assert result.returncode == 0, result.stderr
        assert f"{SEQUENCE} of explicit_ids.Category.id is behind" in result.stderr
        assert "resynced forward: next value 1 → 3 (recorded)" in result.stderr
        assert "Ran 1 test" in result.stderr and "\nOK" in result.stderr

        migrated = p.run("migrate", "--noinput")
        assert migrated.returncode == 0, migrated.stderr
        # Recorded like the admin's resync, with no user.
        rows = p.query(
            "SELECT user_id, model, sequence, value_before, value_after FROM integrity_sequenceresync "
            "WHERE model = 'explicit_ids.Category'"
        )
        assert rows == [(None, "explicit_ids.Category", SEQUENCE, 1, 3)]
        assert p.query("SELECT nextval(%s)", [SEQUENCE]) == [(3,)]


def test_error_fails_the_test_database_creation_with_the_message() -> None:
    with project("integrity_after_migrate_error", INTEGRITY_AFTER_MIGRATE="error") as p:
        result = p.run("test", STORY, "--noinput")
        assert result.returncode != 0
        assert (
            f"CommandError: integrity: sequence {SEQUENCE} of explicit_ids.Category.id is behind"
            in result.stderr
        )
        assert MIGRATION in result.stderr
        assert "Ran 1 test" not in result.stderr  # the tests never ran

        migrated = p.run("migrate", "--noinput")
        assert migrated.returncode == 1
        assert f"CommandError: integrity: sequence {SEQUENCE}" in migrated.stderr
        # Failing the command changes nothing: the sequence is where the migration left it.
        assert p.query("SELECT last_value, is_called FROM explicit_ids_category_id_seq") == [(1, False)]


def test_off_says_nothing_and_a_migrate_with_nothing_to_apply_checks_nothing() -> None:
    with project("integrity_after_migrate_off", INTEGRITY_AFTER_MIGRATE="off") as p:
        result = p.run("migrate", "--noinput")
        assert result.returncode == 0, result.stderr
        assert SEQUENCE not in result.stderr + result.stdout
        again = p.run("migrate", "--noinput", INTEGRITY_AFTER_MIGRATE="error")
        assert again.returncode == 0, again.stderr  # nothing applied: nothing this run could have caused
        assert "No migrations to apply" in again.stdout


def _plan(*apps: str) -> list[tuple[Migration, bool]]:
    loader = MigrationLoader(connection)
    return [(m, False) for key, m in sorted(loader.disk_migrations.items()) if key[0] in apps]


@pytest.mark.django_db
def test_one_status_statement_per_alias_whatever_the_number_of_apps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = _plan("shop")
    every = _plan("shop", "clinic", "helpdesk", "metrics", "crm", "sales", "auth", "integrity", "merging")
    assert len(after_migrate.migrated_models("default", every)) > 3 * len(
        after_migrate.migrated_models("default", one)
    )
    counts = []
    for plan in (one, every):
        with CaptureQueriesContext(connection) as ctx:
            after_migrate.check("default", plan, "warn")
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    # The catalog query and the status statement; the rest are the bounded reads' savepoints and limits.
    bookkeeping = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "SELECT set_config(")
    work = [q["sql"] for q in ctx.captured_queries if not q["sql"].strip().startswith(bookkeeping)]
    assert len(work) == 2, work
    # 10: each bounded block's savepoint is rolled back (not only released), so its locks end with it.
    assert counts[0] - len(work) <= 10, [q["sql"][:80] for q in ctx.captured_queries]


@pytest.mark.django_db
def test_flush_sends_post_migrate_without_a_plan_and_nothing_is_checked() -> None:
    last = after_migrate._last_app()
    assert last is not None
    with CaptureQueriesContext(connection) as ctx:
        after_migrate.on_post_migrate(sender=last, app_config=last, using="default")
    assert ctx.captured_queries == []


@pytest.mark.parametrize("value", ["fixx", "WARN", None, 1])
def test_a_bad_setting_is_a_system_check_error(value: object) -> None:
    with override_settings(INTEGRITY_AFTER_MIGRATE=value):
        errors = [e for e in run_checks() if "INTEGRITY_AFTER_MIGRATE" in e.msg]
    assert [e.id for e in errors] == ["integrity.E004"]
    assert errors[0].msg == (
        f"INTEGRITY_AFTER_MIGRATE must be one of 'warn', 'fix', 'error', 'off', not {value!r}."
    )


@pytest.mark.parametrize("value", ["warn", "fix", "error", "off"])
def test_every_documented_value_passes_the_checks(value: str) -> None:
    with override_settings(INTEGRITY_AFTER_MIGRATE=value):
        assert [e for e in run_checks() if "INTEGRITY_AFTER_MIGRATE" in e.msg] == []


def test_the_demo_warns_about_its_product_migration_on_every_run() -> None:
    """The demo's shop migration writes products 1..8 with explicit ids: its migrate says so, first run or not."""
    with project("integrity_after_migrate_demo") as p:
        env = {**p.env, "DJANGO_SETTINGS_MODULE": "demo.settings"}
        for _run in range(2):
            result = p.run("demo", "--no-serve", **env)
            assert result.returncode == 0, result.stderr
            warning = [line for line in result.stderr.splitlines() if "public.shop_product_id_seq" in line]
            assert len(warning) == 1, result.stderr
            assert "MAX(id) is 8, next value 1" in warning[0]
            assert "shop.0002_initial_products" in warning[0]
            assert "Demo data loaded" in result.stdout
