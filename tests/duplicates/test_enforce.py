"""Enforce, as a service and as ``integrity enforce``: the plan is Django's own SQL, built concurrently; what
cannot be built this way is refused (exit 2) with the command or the code that finishes it instead.

Plans read the catalog only (non-transactional tests, rolled back); builds run
CREATE INDEX CONCURRENTLY on a connection of their own, so those tests commit
(``transaction=True``) and the ``restore`` fixture puts the demo's drift back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from integrity.duplicates import enforce
from integrity.duplicates.enforcement import classify
from integrity.duplicates.rules import get_rule
from integrity.models import EnforceRun
from tests.helpers import (
    held,
    integrity_command,
    leave_invalid_subscriber_index,
    run,
    sql_rows,
    undo_enforce,
    unique_indexes,
    vat_index_name,
)

VAT = "default:crm.Company:unique:vat_number"
SUBSCRIBER = "default:crm.Subscriber:crm_subscriber_email_uniq"
EMAIL_CI = "default:crm.Customer:crm_customer_email_ci_uniq"
NAME_CI = "default:crm.Customer:configured:customer_name_ci"
LEGACY = "default:crm.LegacyContact:unique:email"
NAME = "default:crm.Company:unique:name"

DB = pytest.mark.django_db(databases="__all__")
COMMITTING = pytest.mark.django_db(databases="__all__", transaction=True)


def vat_name() -> str:
    return vat_index_name()


def vat_sql() -> list[str]:
    name = vat_name()
    return [
        f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON "crm_company" ("vat_number")',
        f'ALTER TABLE "crm_company" ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"',
    ]


def state(key: str) -> tuple[str, str | None]:
    found = classify([get_rule(key)])[key]
    return found.state, found.index


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    undo_enforce()


# ---------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------


@DB
def test_a_drifted_unique_field_is_rebuilt_as_djangos_constraint_concurrently():
    plan = enforce.plan_for(get_rule(VAT))
    assert plan.action == "build"
    assert plan.index == vat_name() and vat_name().endswith("_uniq")
    assert plan.statements == vat_sql()
    assert plan.sql == "".join(f"{s};\n" for s in vat_sql())
    assert unique_indexes("crm_company") == [("crm_company_name_key", True)]  # a plan changes nothing


@DB
def test_an_expression_rule_is_rebuilt_as_a_plain_unique_index_as_django_creates_it():
    run("DROP INDEX crm_customer_email_ci_uniq")
    plan = enforce.plan_for(get_rule(EMAIL_CI))
    assert plan.statements == [
        'CREATE UNIQUE INDEX CONCURRENTLY "crm_customer_email_ci_uniq" ON "crm_customer" ((LOWER("email")))'
    ]


@DB
def test_an_unapplied_migration_gets_the_migrate_command_not_a_build():
    MigrationExecutor(connection).migrate([("crm", "0004_subscriber_email_uniq")])
    plan = enforce.plan_for(get_rule(EMAIL_CI))
    assert (plan.action, plan.statements) == ("migrate", [plan.create_index])
    assert plan.migrate_command == "python manage.py migrate crm 0005_customer_email_ci"
    assert plan.sql == ""


@DB
def test_a_configured_rule_gets_the_meta_code_that_declares_it():
    plan = enforce.plan_for(get_rule(NAME_CI))
    assert plan.action == "configure"
    assert plan.meta_code == (
        "from django.db import models\n"
        "from django.db.models.functions import Lower, Trim\n\n\n"
        "class Customer(models.Model):\n    ...\n\n    class Meta:\n        constraints = [\n"
        '            models.UniqueConstraint(Lower(Trim("name")), name="crm_customer_name_ci_uniq"),\n'
        "        ]\n"
    )
    assert "python manage.py makemigrations crm" in plan.reason


@DB
def test_the_meta_code_of_a_configured_rule_compiles_to_the_rule():
    rule = get_rule(NAME_CI)
    namespace: dict[str, object] = {}
    code = enforce.meta_code(rule).split("\n\n\n")[0]
    exec(code, namespace)  # noqa: S102 - the imports the code needs exist
    constraint = eval(  # noqa: S307 - the line the page shows
        enforce.meta_code(rule).splitlines()[-2].strip().rstrip(","), namespace
    )
    assert [str(e) for e in constraint.expressions] == [str(e) for e in rule.expressions]


@DB
def test_an_unmanaged_model_is_refused_with_its_reason():
    plan = enforce.plan_for(get_rule(LEGACY))
    assert (plan.action, plan.reason) == (
        "refused",
        "The model has managed = False: Django never created this index.",
    )


@DB
def test_a_name_django_would_not_quote_exactly_is_refused():
    run("CREATE TABLE taken_elsewhere (id int)")
    run(f'ALTER TABLE taken_elsewhere RENAME TO "{vat_name()}"')
    plan = enforce.plan_for(get_rule(VAT))
    assert plan.action == "refused"
    assert (
        plan.reason
        == f"Another relation is already named {vat_name()}: Django's name for this rule is taken."
    )


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


@DB
def test_dry_run_prints_the_sql_and_changes_nothing():
    code, out, _err = integrity_command("enforce", VAT, "--dry-run")
    assert code == 0
    assert out.splitlines()[3:5] == [f"{s};" for s in vat_sql()]
    assert "Dry run: nothing was changed." in out
    assert state(VAT)[0] == "missing"
    assert not EnforceRun.objects.exists()


@DB
def test_unknown_rule_is_exit_2():
    code, _out, err = integrity_command("enforce", "default:crm.Company:unique:nope")
    assert code == 2
    assert "Unknown rule 'default:crm.Company:unique:nope'" in err


@DB
def test_an_unapplied_migration_is_exit_2_with_the_command():
    MigrationExecutor(connection).migrate([("crm", "0004_subscriber_email_uniq")])
    code, out, _err = integrity_command("enforce", EMAIL_CI)
    assert code == 2
    assert "python manage.py migrate crm 0005_customer_email_ci" in out


@DB
def test_a_configured_rule_is_exit_2_with_the_meta_code():
    code, out, _err = integrity_command("enforce", NAME_CI, "--json")
    assert code == 2
    payload = json.loads(out)
    assert payload["action"] == "configure"
    assert (
        'models.UniqueConstraint(Lower(Trim("name")), name="crm_customer_name_ci_uniq")'
        in payload["meta_code"]
    )


@DB
def test_an_enforced_rule_is_exit_0_and_nothing_to_do():
    code, out, _err = integrity_command("enforce", NAME, "--json")
    assert code == 0
    assert json.loads(out)["status"] == "enforced"


@COMMITTING
def test_enforce_builds_the_drifted_constraint_and_the_rule_is_enforced(restore: None):
    code, out, err = integrity_command("enforce", VAT, "--json")
    assert (code, err) == (0, "")
    payload = json.loads(out)
    assert payload["status"] == "done"
    assert payload["sql"] == vat_sql()
    assert state(VAT) == ("enforced", vat_name())
    assert sql_rows("SELECT contype FROM pg_constraint WHERE conname = %s", [vat_name()]) == [("u",)]
    assert unique_indexes("crm_company") == [("crm_company_name_key", True), (vat_name(), True)]
    # What a later migration needs: Django's introspection finds it as the field's unique constraint.
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        from demo.crm.models import Company

        found = editor._constraint_names(Company, ["vat_number"], unique=True, primary_key=False)  # type: ignore[attr-defined]
    assert found == [vat_name()]


@COMMITTING
def test_enforce_drops_an_invalid_leftover_first_and_builds_it_again(restore: None):
    leave_invalid_subscriber_index()
    assert state(SUBSCRIBER) == ("invalid", "crm_subscriber_email_uniq")
    code, out, _err = integrity_command("enforce", SUBSCRIBER)
    assert code == 0, out
    assert out.splitlines()[3:6] == [
        'DROP INDEX CONCURRENTLY IF EXISTS "public"."crm_subscriber_email_uniq";',
        'CREATE UNIQUE INDEX CONCURRENTLY "crm_subscriber_email_uniq" ON "crm_subscriber" ("email");',
        'ALTER TABLE "crm_subscriber" ADD CONSTRAINT "crm_subscriber_email_uniq" UNIQUE USING INDEX '
        '"crm_subscriber_email_uniq";',
    ]
    assert "Enforced by crm_subscriber_email_uniq, verified valid." in out
    assert state(SUBSCRIBER) == ("enforced", "crm_subscriber_email_uniq")
    assert unique_indexes("crm_subscriber") == [("crm_subscriber_email_uniq", True)]


@COMMITTING
def test_duplicates_make_the_build_fail_cleanly_with_the_groups(restore: None):
    run("INSERT INTO crm_company (name, vat_number) VALUES ('A', 'GB1'), ('B', 'GB1'), ('C', 'GB2')")
    before = sql_rows("SELECT id, name, vat_number FROM crm_company ORDER BY id")
    code, out, _err = integrity_command("enforce", VAT, "--json")
    assert code == 1
    payload = json.loads(out)
    assert payload["status"] == "refused"
    assert payload["message"].startswith(
        "Duplicates came in while the index was built: it was dropped, nothing else changed."
    )
    assert [(g["key"], g["size"]) for g in payload["groups"]] == [(["GB1"], 2)]
    assert unique_indexes("crm_company") == [("crm_company_name_key", True)]  # no invalid index left
    assert sql_rows("SELECT id, name, vat_number FROM crm_company ORDER BY id") == before
    assert state(VAT)[0] == "missing"


@COMMITTING
@override_settings(INTEGRITY_LOCK_TIMEOUT_MS=100, INTEGRITY_ENFORCE_RETRIES=1)
def test_a_table_locked_through_every_retry_is_refused_and_nothing_is_left(restore: None):
    with held("crm_company", mode="SHARE UPDATE EXCLUSIVE"):  # what a VACUUM or another build holds
        code, out, _err = integrity_command("enforce", VAT, "--json")
    assert code == 1
    payload = json.loads(out)
    assert payload["status"] == "refused"
    assert payload["message"] == (
        "The table stayed locked by other transactions (2 tries of 100 ms each): nothing was changed; try again."
    )
    assert unique_indexes("crm_company") == [("crm_company_name_key", True)]
    assert EnforceRun.objects.get().attempts == 2


@DB
def test_a_table_a_migration_holds_is_refused_before_anything_is_tried():
    with held("crm_company"):
        code, out, _err = integrity_command("enforce", VAT, "--json")
    assert code == 1
    payload = json.loads(out)
    assert (payload["status"], payload["reason"]) == (
        "refused",
        "Could not compare: another transaction holds a lock on the table (a migration?). Try again.",
    )
    assert not EnforceRun.objects.exists()


@COMMITTING
def test_a_second_build_of_the_same_rule_is_refused_while_one_runs(restore: None):
    other = connection.copy() if hasattr(connection, "copy") else None
    assert other is not None
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [7_113_013, VAT])
        code, out, _err = integrity_command("enforce", VAT, "--json")
    other.close()
    assert code == 1
    assert json.loads(out)["message"] == "Another Enforce of this rule is running: try again later."
    assert state(VAT)[0] == "missing"
