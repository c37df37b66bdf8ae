"""Does PostgreSQL enforce each rule? enforced / missing (and why) / invalid / configured / unsupported.

The crm demo app's migrations leave one rule in each state in the test
database; tests change indexes with SQL inside the test's transaction (DDL is
transactional in PostgreSQL), so every change is rolled back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.db import connection, connections, models
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.test.utils import CaptureQueriesContext, isolate_apps

from demo.crm.models import Company
from integrity.duplicates.enforcement import Enforcement, classify
from integrity.duplicates.rules import FIELD, Rule, get_rule, rules_for
from tests.helpers import run_all as sql

pytestmark = pytest.mark.django_db(databases="__all__")

NAME = "default:crm.Company:unique:name"
VAT = "default:crm.Company:unique:vat_number"
EMAIL_CI = "default:crm.Customer:crm_customer_email_ci_uniq"
NAME_CI = "default:crm.Customer:configured:customer_name_ci"
MENTORSHIP = "default:crm.Mentorship:unique_together:mentee,mentor"
ACCOUNT = "default:crm.Account:unique:user"
MEMBERSHIP = "default:crm.Membership:crm_membership_active_code_uniq"
DEVICE = "default:crm.Device:crm_device_vendor_serial_uniq"
SUBSCRIBER = "default:crm.Subscriber:crm_subscriber_email_uniq"
LEGACY = "default:crm.LegacyContact:unique:email"

DRIFT = "Drift: the migrations say it exists, the database has no such index."
UNMANAGED = "The model has managed = False: Django never created this index."
NO_TABLE = "The table does not exist on this database."
CONFIGURED = "Configured in INTEGRITY_DUPLICATE_RULES: not enforced by the database."

DROP_MENTORSHIP = "DROP INDEX crm_mentorship_mentor_mentee_uniq"
DROP_EMAIL = "DROP INDEX crm_customer_email_ci_uniq"
DROP_MEMBERSHIP = "DROP INDEX crm_membership_active_code_uniq"
DROP_DEVICE = "ALTER TABLE crm_device DROP CONSTRAINT crm_device_vendor_serial_uniq"


def state(key: str) -> Enforcement:
    return classify([get_rule(key)])[key]


def pending(name: str) -> str:
    return f"Migration {name} adds it and is not applied."


def test_the_crm_rules_as_its_migrations_leave_them():
    found = classify(rules_for(["default"], apps.get_app_config("crm").get_models()))
    assert {key: (e.state, e.index, e.reason) for key, e in found.items()} == {
        NAME: ("enforced", "crm_company_name_key", ""),
        VAT: ("missing", None, DRIFT),
        EMAIL_CI: ("enforced", "crm_customer_email_ci_uniq", ""),
        NAME_CI: ("configured", None, CONFIGURED),
        # unique_together (mentee, mentor), enforced by an index on (mentor_id, mentee_id)
        MENTORSHIP: ("enforced", "crm_mentorship_mentor_mentee_uniq", ""),
        ACCOUNT: ("enforced", "crm_account_user_id_key", ""),
        MEMBERSHIP: ("enforced", "crm_membership_active_code_uniq", ""),
        DEVICE: ("enforced", "crm_device_vendor_serial_uniq", ""),
        SUBSCRIBER: ("missing", None, DRIFT),
        LEGACY: ("missing", None, UNMANAGED),
    }
    assert all(e.table_exists and e.scannable for e in found.values())


@pytest.mark.parametrize(
    ("key", "statements"),
    [
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE UNIQUE INDEX t ON crm_mentorship (mentee_id, mentor_id)"], id="together-declared-order"),
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "ALTER TABLE crm_mentorship ADD CONSTRAINT t UNIQUE (mentor_id, mentee_id)"], id="together-constraint"),
        pytest.param(EMAIL_CI, [DROP_EMAIL, "CREATE UNIQUE INDEX t ON crm_customer (lower(email))"], id="hand-made-functional"),
        pytest.param(MEMBERSHIP, [DROP_MEMBERSHIP, "CREATE UNIQUE INDEX t ON crm_membership (code) WHERE active"], id="hand-made-partial"),
        pytest.param(DEVICE, [DROP_DEVICE, "CREATE UNIQUE INDEX t ON crm_device (serial, vendor) NULLS NOT DISTINCT"], id="nulls-not-distinct-other-order"),
        pytest.param(VAT, ["CREATE UNIQUE INDEX t ON crm_company (vat_number)"], id="plain"),
        pytest.param(VAT, ["CREATE UNIQUE INDEX t ON crm_company (vat_number) INCLUDE (name)"], id="include-ignored"),
        pytest.param(VAT, ["ALTER TABLE crm_company ADD CONSTRAINT t UNIQUE (vat_number) DEFERRABLE INITIALLY DEFERRED"], id="deferrable-ignored"),
    ],
)  # fmt: skip
def test_an_index_that_matches_enforces_the_rule(key, statements):
    sql(*statements)
    assert state(key) == Enforcement("enforced", index="t")


@pytest.mark.parametrize(
    ("key", "statements"),
    [
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE UNIQUE INDEX t ON crm_mentorship (mentee_id)"], id="subset"),
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE UNIQUE INDEX t ON crm_mentorship (mentee_id, mentor_id, topic)"], id="superset"),
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE UNIQUE INDEX t ON crm_mentorship (mentee_id, mentor_id) WHERE topic <> ''"], id="partial-for-plain-rule"),
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE UNIQUE INDEX t ON crm_mentorship (mentee_id, mentor_id) NULLS NOT DISTINCT"], id="nulls-not-distinct-for-plain-rule"),
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE UNIQUE INDEX t ON crm_mentorship (mentee_id, coalesce(mentor_id, 0))"], id="expression-key"),
        pytest.param(MENTORSHIP, [DROP_MENTORSHIP, "CREATE INDEX t ON crm_mentorship (mentee_id, mentor_id)"], id="not-unique"),
        pytest.param(EMAIL_CI, [DROP_EMAIL, "CREATE UNIQUE INDEX t ON crm_customer (upper(email))"], id="upper-for-lower"),
        pytest.param(EMAIL_CI, [DROP_EMAIL, "CREATE UNIQUE INDEX t ON crm_customer (lower(name))"], id="lower-of-other-column"),
        pytest.param(EMAIL_CI, [DROP_EMAIL, "CREATE UNIQUE INDEX t ON crm_customer (email)"], id="column-for-expression"),
        pytest.param(EMAIL_CI, [DROP_EMAIL, "CREATE UNIQUE INDEX t ON crm_customer (lower(email)) WHERE name <> ''"], id="partial-for-expression"),
        pytest.param(EMAIL_CI, [DROP_EMAIL, "CREATE UNIQUE INDEX t ON crm_customer (lower(email)) NULLS NOT DISTINCT"], id="expression-nulls-not-distinct"),
        pytest.param(MEMBERSHIP, [DROP_MEMBERSHIP, "CREATE UNIQUE INDEX t ON crm_membership (code)"], id="plain-for-partial-rule"),
        pytest.param(MEMBERSHIP, [DROP_MEMBERSHIP, "CREATE UNIQUE INDEX t ON crm_membership (code) WHERE NOT active"], id="other-condition"),
        pytest.param(MEMBERSHIP, [DROP_MEMBERSHIP, "CREATE UNIQUE INDEX t ON crm_membership (active) WHERE active"], id="condition-other-column"),
        pytest.param(DEVICE, [DROP_DEVICE, "CREATE UNIQUE INDEX t ON crm_device (vendor, serial)"], id="nulls-distinct-for-nnd-rule"),
        pytest.param(DEVICE, [DROP_DEVICE, "CREATE UNIQUE INDEX t ON crm_device (serial) NULLS NOT DISTINCT"], id="nnd-subset"),
        pytest.param(VAT, ["CREATE UNIQUE INDEX t ON crm_company (vat_number) NULLS NOT DISTINCT"], id="nnd-for-plain-field"),
        pytest.param(VAT, ["CREATE UNIQUE INDEX t ON crm_company (vat_number) WHERE vat_number <> ''"], id="partial-for-field"),
        pytest.param(VAT, ["CREATE UNIQUE INDEX t ON crm_company (vat_number, name)"], id="field-in-superset"),
        pytest.param(VAT, ["CREATE UNIQUE INDEX t ON crm_company (lower(vat_number))"], id="expression-for-field"),
    ],
)  # fmt: skip
def test_an_index_that_does_not_match_exactly_is_no_enforcement(key, statements):
    """The false positives of similar tools: each of these indexes leaves the rule unenforced."""
    sql(*statements)
    assert state(key) == Enforcement("missing", reason=DRIFT)


@isolate_apps("demo.crm")
def test_include_and_deferrable_on_the_rule_are_ignored_for_matching():
    class VatRule(models.Model):
        name = models.CharField(max_length=100)
        vat_number = models.CharField(max_length=20, null=True)  # noqa: DJ001

        class Meta:
            app_label = "crm"
            db_table = "crm_company"
            constraints = [
                models.UniqueConstraint(fields=["vat_number"], include=["name"], name="vat_incl"),
                models.UniqueConstraint(
                    fields=["vat_number"], deferrable=models.Deferrable.DEFERRED, name="vat_deferred"
                ),
            ]

    sql("CREATE UNIQUE INDEX t ON crm_company (vat_number)")
    found = classify(rules_for(["default"], [VatRule]))
    assert found == {
        "default:crm.VatRule:vat_incl": Enforcement("enforced", index="t"),
        "default:crm.VatRule:vat_deferred": Enforcement("enforced", index="t"),
    }


def test_a_valid_index_wins_over_an_invalid_one():
    sql(
        "CREATE UNIQUE INDEX a_broken ON crm_company (vat_number)",
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'a_broken'::regclass",
    )
    assert state(VAT).state == "invalid"
    sql("CREATE UNIQUE INDEX b_good ON crm_company (vat_number)")
    assert state(VAT) == Enforcement("enforced", index="b_good")


@pytest.mark.parametrize(
    ("key", "index"),
    [
        (NAME, "crm_company_name_key"),  # matched by columns
        (EMAIL_CI, "crm_customer_email_ci_uniq"),  # matched by the probe (expression)
        (MEMBERSHIP, "crm_membership_active_code_uniq"),  # matched by the probe (condition)
    ],
)
def test_an_index_postgresql_marks_invalid_enforces_nothing(key, index):
    sql(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{index}'::regclass")
    found = state(key)
    assert (found.state, found.index, found.table_exists, found.scannable) == ("invalid", index, True, True)
    assert found.reason == (
        f"Index {index} exists but PostgreSQL marks it invalid (a failed CREATE UNIQUE INDEX CONCURRENTLY?)."
    )


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_failed_create_unique_index_concurrently_is_invalid():
    """The index is built by hand, concurrently, to restore the dropped rule, and fails on duplicates.

    (The table of the demo's own story, crm_subscriber, is left to tests/test_demo.py.)
    """
    Company.objects.bulk_create(Company(name=n, vat_number="DE1") for n in ("A", "B"))
    try:
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            with pytest.raises(psycopg.errors.UniqueViolation):
                other.execute("CREATE UNIQUE INDEX CONCURRENTLY vat_by_hand ON crm_company (vat_number)")
        found = state(VAT)
        assert (found.state, found.index, found.scannable) == ("invalid", "vat_by_hand", True)
        assert found.reason == (
            "Index vat_by_hand exists but PostgreSQL marks it invalid (a failed CREATE UNIQUE INDEX CONCURRENTLY?)."
        )
    finally:
        sql("DROP INDEX IF EXISTS vat_by_hand")
    assert state(VAT) == Enforcement("missing", reason=DRIFT)


def migrate_crm(target: str | None) -> None:
    """Migrate the crm app (inside the test's transaction: rolled back with it)."""
    MigrationExecutor(connection).migrate([("crm", target)])


def test_an_unapplied_migration_that_adds_the_rule_is_named():
    migrate_crm("0004_subscriber_email_uniq")
    assert state(EMAIL_CI) == Enforcement("missing", reason=pending("crm.0005_customer_email_ci"))
    # The other rules are untouched by it.
    assert state(NAME).state == "enforced"
    assert state(VAT) == Enforcement("missing", reason=DRIFT)


def test_before_the_app_is_migrated_every_table_is_missing():
    migrate_crm(None)
    found = classify(get_rule(key) for key in (NAME, EMAIL_CI, MENTORSHIP, LEGACY, NAME_CI))
    assert found == {
        NAME: Enforcement("missing", reason=pending("crm.0001_initial"), table_exists=False),
        EMAIL_CI: Enforcement("missing", reason=pending("crm.0001_initial"), table_exists=False),
        MENTORSHIP: Enforcement("missing", reason=pending("crm.0001_initial"), table_exists=False),
        # No migration ever indexes an unmanaged model's table.
        LEGACY: Enforcement("missing", reason=UNMANAGED, table_exists=False),
        NAME_CI: Enforcement("configured", reason=CONFIGURED, table_exists=False),
    }
    assert not any(e.scannable for e in found.values())


MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("{app}", "{dependency}")]
    operations = [{operations}]
"""


@pytest.fixture
def add_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[Callable[..., None]]:
    """``add_pending(app, name, dependency, operations)``: an unapplied migration next to the app's real ones."""
    monkeypatch.syspath_prepend(str(tmp_path))
    packages: list[str] = []

    def add(app: str, name: str, dependency: str, operations: str) -> None:
        package = f"pending_{app}"
        folder = tmp_path / package
        folder.mkdir()
        real = list(import_module(f"demo.{app}.migrations").__path__)
        (folder / "__init__.py").write_text(f"__path__ = {[*real, str(folder)]!r}\n")
        text = MIGRATION.format(app=app, dependency=dependency, operations=operations)
        (folder / f"{name}.py").write_text(text)
        settings.MIGRATION_MODULES = {**(settings.MIGRATION_MODULES or {}), app: package}
        packages.append(package)

    yield add
    for module in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[module]


def test_a_pending_alter_unique_together_is_named(add_pending):
    sql(DROP_MENTORSHIP)
    add_pending(
        "crm",
        "0006_mentorship_unique",
        "0005_customer_email_ci",
        'migrations.AlterUniqueTogether(name="mentorship", unique_together={("mentor", "mentee")})',
    )
    assert state(MENTORSHIP) == Enforcement("missing", reason=pending("crm.0006_mentorship_unique"))


def test_a_pending_alter_field_with_unique_is_named(add_pending):
    add_pending(
        "crm",
        "0006_vat_unique_again",
        "0005_customer_email_ci",
        'migrations.AlterField(model_name="company", name="vat_number", '
        "field=models.CharField(max_length=20, unique=True, null=True, blank=True))",
    )
    assert state(VAT) == Enforcement("missing", reason=pending("crm.0006_vat_unique_again"))


def test_a_pending_add_field_of_a_one_to_one_is_named(add_pending):
    sql("ALTER TABLE crm_account DROP CONSTRAINT crm_account_user_id_key")
    add_pending(
        "crm",
        "0006_account_user",
        "0005_customer_email_ci",
        'migrations.AddField(model_name="account", name="user", '
        'field=models.OneToOneField(on_delete=models.CASCADE, to="auth.user"))',
    )
    assert state(ACCOUNT) == Enforcement("missing", reason=pending("crm.0006_account_user"))


def test_a_pending_migration_that_does_not_add_the_rule_is_not_blamed(add_pending):
    add_pending(
        "crm",
        "0006_vat_longer",
        "0005_customer_email_ci",
        'migrations.AlterField(model_name="company", name="vat_number", '
        "field=models.CharField(max_length=30, null=True, blank=True))",
    )
    assert state(VAT) == Enforcement("missing", reason=DRIFT)


def test_a_pending_migration_of_another_app_with_a_model_of_the_same_name_is_not_blamed(add_pending):
    add_pending(
        "shop",
        "0003_company_vat",
        "0002_initial_products",
        'migrations.AlterField(model_name="company", name="vat_number", '
        "field=models.CharField(max_length=20, unique=True, null=True))",
    )
    assert state(VAT) == Enforcement("missing", reason=DRIFT)


@isolate_apps("demo.crm")
def test_a_table_that_does_not_exist():
    class Ghost(models.Model):
        code = models.CharField(max_length=10, unique=True)

        class Meta:
            app_label = "crm"
            db_table = "crm_ghost"

    class Shade(models.Model):
        code = models.CharField(max_length=10, unique=True)

        class Meta:
            app_label = "crm"
            db_table = "crm_shade"
            managed = False

    found = classify(rules_for(["default"], [Ghost, Shade]))
    assert found == {
        "default:crm.Ghost:unique:code": Enforcement("missing", reason=NO_TABLE, table_exists=False),
        "default:crm.Shade:unique:code": Enforcement("missing", reason=UNMANAGED, table_exists=False),
    }


def test_a_database_that_is_not_postgresql_is_unsupported_and_costs_no_query():
    rule = Rule("legacy", Company, "unique:name", FIELD, fields=("name",))
    with CaptureQueriesContext(connections["legacy"]) as legacy, CaptureQueriesContext(connection) as default:
        found = classify([rule])
    assert found == {
        "legacy:crm.Company:unique:name": Enforcement(
            "unsupported", reason="Only PostgreSQL is supported.", table_exists=False
        )
    }
    assert not found["legacy:crm.Company:unique:name"].scannable
    assert (len(legacy), len(default)) == (0, 0)


PLAIN_ENFORCED = [
    NAME,
    MENTORSHIP,
    ACCOUNT,
    DEVICE,
    "default:auth.User:unique:username",
    "default:auth.Permission:unique_together:content_type,codename",
    "default:shop.Tag:unique:name",
    "default:helpdesk.Ticket:unique:number",
]


@pytest.mark.parametrize("keys", [PLAIN_ENFORCED[:1], PLAIN_ENFORCED], ids=["one", "eight"])
def test_plain_rules_cost_the_same_queries_per_alias_however_many(keys, django_assert_num_queries):
    rules = [get_rule(key) for key in keys]
    # Which tables exist; their unique indexes (in a savepoint rolled back, for its lock timeout).
    with django_assert_num_queries(6) as captured:
        found = classify(rules)
    assert {e.state for e in found.values()} == {"enforced"}
    assert [q["sql"].split()[0] for q in captured.captured_queries] == [
        "SELECT",
        "SAVEPOINT",
        "SELECT",
        "WITH",
        "ROLLBACK",
        "RELEASE",
    ]


@pytest.mark.parametrize("keys", [[VAT], [VAT, SUBSCRIBER, NAME]], ids=["one", "two"])
def test_missing_rules_read_the_migrations_once(keys, django_assert_num_queries):
    with django_assert_num_queries(6 + 2) as captured:  # + the migration recorder: its table, its rows
        classify(get_rule(key) for key in keys)
    assert "django_migrations" in captured.captured_queries[-1]["sql"]


def test_each_rule_on_an_expression_or_a_condition_costs_one_probe():
    def statements(keys: list[str]) -> list[str]:
        rules = [get_rule(key) for key in keys]
        with CaptureQueriesContext(connection) as captured:
            classify(rules)
        return [" ".join(q["sql"].split()[:3]) for q in captured.captured_queries]

    assert len(statements(PLAIN_ENFORCED)) == 6
    one = statements([*PLAIN_ENFORCED, EMAIL_CI])
    two = statements([*PLAIN_ENFORCED, EMAIL_CI, MEMBERSHIP])
    assert (len(one), len(two)) == (6 + 7, 6 + 2 * 7)
    # A probe, in a savepoint that is rolled back: the real table is never indexed.
    probe = ["SAVEPOINT", "SELECT", "CREATE", "CREATE", "SELECT", "ROLLBACK", "RELEASE"]
    assert [s.split()[0] for s in two[6:13]] == probe
    assert two[7] == "SELECT set_config('lock_timeout', '1000ms',"  # INTEGRITY_READ_LOCK_TIMEOUT_MS
    assert (two[8], two[9]) == ("CREATE TEMP TABLE", "CREATE UNIQUE INDEX")
    assert [s.split()[0] for s in two[13:]] == probe


def test_two_aliases_cost_the_same_queries_each():
    rules = [
        get_rule(NAME),
        get_rule("other:auth.User:unique:username"),
        get_rule("other:helpdesk.Ticket:unique:number"),
    ]
    with CaptureQueriesContext(connection) as default, CaptureQueriesContext(connections["other"]) as other:
        found = classify(rules)
    assert (len(default), len(other)) == (6, 6)
    assert [e.state for e in found.values()] == ["enforced"] * 3


def test_the_probe_leaves_nothing_behind():
    def indexes() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'crm_customer'::regclass"
            )
            return sorted(row[0] for row in cursor.fetchall())

    before = indexes()
    for _ in range(2):  # twice in one transaction: the temporary table is gone after each probe
        assert state(EMAIL_CI).state == "enforced"
    assert indexes() == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.integrity_probe')")
        assert cursor.fetchone() == (None,)


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_locked_table_is_not_waited_for():
    """A migration holds ACCESS EXCLUSIVE on crm_customer: its rules say so, the other tables' are classified."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute("LOCK TABLE crm_customer IN ACCESS EXCLUSIVE MODE")
        with override_settings(INTEGRITY_LOCK_TIMEOUT_MS=200):
            found = classify([get_rule(EMAIL_CI), get_rule(NAME), get_rule(VAT), get_rule(NAME_CI)])
    finally:
        other.rollback()
        other.close()
    assert found == {
        EMAIL_CI: Enforcement(
            "missing",
            reason="Could not compare: another transaction holds a lock on the table (a migration?). Try again.",
        ),
        NAME: Enforcement("enforced", index="crm_company_name_key"),
        VAT: Enforcement("missing", reason=DRIFT),
        NAME_CI: Enforcement("configured", reason=CONFIGURED),
    }
    assert state(EMAIL_CI).state == "enforced"  # once the lock is gone
