"""Unique-index catalog of PostgreSQL (integrity.duplicates.postgresql), on real tables.

Tables and indexes are made with raw SQL inside each test; DDL is
transactional, so the test's rollback removes them again.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import connection, models
from django.db.models import Q
from django.db.models.functions import Lower, Upper
from django.test.utils import CaptureQueriesContext, isolate_apps

from demo.crm.models import Customer, Device, Membership
from integrity.duplicates.postgresql import IndexShape, PostgresUniqueBackend, TableLocked, UniqueIndex

pytestmark = pytest.mark.django_db(databases="__all__")


def run(sql: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def backend() -> PostgresUniqueBackend:
    return PostgresUniqueBackend(connection)


@pytest.fixture
def table() -> str:
    run("CREATE SCHEMA it_u")
    run("CREATE TABLE it_u.things (id serial PRIMARY KEY, a int, b text, c text, flag boolean NOT NULL)")
    return '"it_u"."things"'


def test_tables_exist_in_order_with_schemas_and_quoting(backend, table):
    names = ["crm_customer", table, "nope", "entry", '"archive"."entry"', 'weird"name']
    assert backend.tables_exist(names) == [True, True, False, True, True, False]


def test_each_kind_of_unique_index_as_the_catalog_prints_it(backend, table):
    run("CREATE UNIQUE INDEX u_plain ON it_u.things (b, a)")
    run("CREATE UNIQUE INDEX u_expr ON it_u.things (a, lower(b))")
    run("CREATE UNIQUE INDEX u_partial ON it_u.things (c) WHERE flag")
    run("CREATE UNIQUE INDEX u_nnd ON it_u.things (a) NULLS NOT DISTINCT")
    run("CREATE UNIQUE INDEX u_incl ON it_u.things (c) INCLUDE (a, b)")
    run("ALTER TABLE it_u.things ADD CONSTRAINT u_con UNIQUE (a, c)")
    run("CREATE INDEX not_unique ON it_u.things (a)")
    found = {i.name: i for i in backend.unique_indexes(["nope", table])}
    assert found == {
        "u_con": UniqueIndex(1, "u_con", True, ("a", "c"), ("a", "c"), None, False, "u_con"),
        "u_expr": UniqueIndex(1, "u_expr", True, ("a", None), ("a", "lower(b)"), None, False, None),
        "u_incl": UniqueIndex(1, "u_incl", True, ("c",), ("c",), None, False, None),
        "u_nnd": UniqueIndex(1, "u_nnd", True, ("a",), ("a",), None, True, None),
        "u_partial": UniqueIndex(1, "u_partial", True, ("c",), ("c",), "flag", False, None),
        "u_plain": UniqueIndex(1, "u_plain", True, ("b", "a"), ("b", "a"), None, False, None),
    }  # no primary key, no plain index, nothing for the table that does not exist
    assert found["u_expr"].has_expressions and not found["u_plain"].has_expressions


def test_indexes_of_several_tables_in_one_query_with_their_reference(backend, table):
    run("CREATE UNIQUE INDEX u_plain ON it_u.things (a)")
    with CaptureQueriesContext(connection) as captured:
        found = backend.unique_indexes(["crm_device", table, "crm_customer"])
    assert sum("pg_get_indexdef" in q["sql"] for q in captured.captured_queries) == 1
    assert sorted((i.ref, i.name) for i in found) == [
        (0, "crm_device_vendor_serial_uniq"),
        (1, "u_plain"),
        (2, "crm_customer_email_ci_uniq"),
    ]
    [device] = [i for i in found if i.ref == 0]
    assert (device.columns, device.nulls_not_distinct, device.constraint) == (
        ("vendor", "serial"),
        True,
        "crm_device_vendor_serial_uniq",
    )


def test_no_tables_no_query(backend):
    with CaptureQueriesContext(connection) as captured:
        assert backend.unique_indexes([]) == []
    assert len(captured) == 0


def test_an_invalid_index_is_listed_as_invalid(backend, table):
    run("CREATE UNIQUE INDEX u_plain ON it_u.things (a)")
    run("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'it_u.u_plain'::regclass")
    [index] = backend.unique_indexes([table])
    assert (index.name, index.valid) == ("u_plain", False)


def test_same_table_name_in_two_schemas_is_told_apart(backend):
    run('CREATE UNIQUE INDEX archived_note ON "archive"."entry" (note)')
    assert [i.name for i in backend.unique_indexes(['"archive"."entry"'])] == ["archived_note"]
    assert backend.unique_indexes(["entry"]) == []


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (Customer, IndexShape(("lower(email::text)",), None, False)),
        (Membership, IndexShape(("code",), "active", False)),
        (Device, IndexShape(("vendor", "serial"), None, True)),
    ],
)
def test_probe_prints_the_rules_index_as_postgresql_would(backend, model, shape):
    [constraint] = model._meta.constraints
    assert backend.probe(model, constraint) == shape


@isolate_apps("demo.crm")
def test_probe_of_expressions_conditions_and_null_semantics_together(backend):
    class Probed(models.Model):
        email = models.CharField(max_length=100)
        code = models.CharField(max_length=10, null=True)  # noqa: DJ001
        active = models.BooleanField()

        class Meta:
            app_label = "crm"
            db_table = "probed"

    run(
        "CREATE TABLE probed (id bigserial PRIMARY KEY, email varchar(100), code varchar(10), active boolean)"
    )
    upper = models.UniqueConstraint(
        Upper("email"), "code", name="p1", condition=Q(active=False), nulls_distinct=False
    )
    lower = models.UniqueConstraint(Lower("email"), name="p2", condition=Q(code__startswith="x"))
    assert backend.probe(Probed, upper) == IndexShape(("upper(email::text)", "code"), "NOT active", True)
    assert backend.probe(Probed, lower) == IndexShape(
        ("lower(email::text)",), "code::text ~~ 'x%'::text", False
    )


def test_probe_leaves_no_table_no_index_and_no_lock(backend):
    [constraint] = Customer._meta.constraints
    before = run("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'crm_customer'::regclass")
    for _ in range(2):
        backend.probe(Customer, constraint)
    assert (
        run("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'crm_customer'::regclass")
        == before
    )
    assert run("SELECT to_regclass('pg_temp.integrity_probe')") == [(None,)]
    # LIKE reads the real table: an ACCESS SHARE lock (held until the transaction ends), nothing stronger.
    modes = run(
        "SELECT mode FROM pg_locks WHERE relation = 'crm_customer'::regclass AND pid = pg_backend_pid()"
    )
    assert {m for (m,) in modes} <= {"AccessShareLock"}


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_probe_outside_a_transaction_commits_nothing(backend):
    """In autocommit (the management command), the probe opens its own transaction and rolls it back."""
    [constraint] = Membership._meta.constraints
    assert connection.get_autocommit()
    assert backend.probe(Membership, constraint) == IndexShape(("code",), "active", False)
    assert connection.get_autocommit()
    assert run("SELECT to_regclass('pg_temp.integrity_probe')") == [(None,)]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_probe_gives_up_on_a_locked_table(backend):
    [constraint] = Customer._meta.constraints
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute("LOCK TABLE crm_customer IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TableLocked, match="crm_customer"):
            backend.probe(Customer, constraint, lock_timeout_ms=100)
    finally:
        other.rollback()
        other.close()
    assert run("SHOW lock_timeout") == [("0",)]
    assert backend.probe(Customer, constraint) == IndexShape(("lower(email::text)",), None, False)


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_unique_indexes_give_up_on_a_locked_table(backend):
    """pg_get_indexdef locks the table it prints: a migration's ACCESS EXCLUSIVE would make it wait."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute("LOCK TABLE crm_customer IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TableLocked, match="crm_company, crm_customer"):
            backend.unique_indexes(["crm_company", "crm_customer"], lock_timeout_ms=100)
        assert [i.name for i in backend.unique_indexes(["crm_company"], lock_timeout_ms=100)] == [
            "crm_company_name_key"
        ]
    finally:
        other.rollback()
        other.close()
    assert run("SHOW lock_timeout") == [("0",)]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_in_autocommit_the_catalog_query_is_its_own_transaction(backend):
    with CaptureQueriesContext(connection) as captured:
        backend.unique_indexes(["crm_company"])
    statements = [q["sql"] for q in captured.captured_queries]
    assert statements[0] == "BEGIN" and statements[-1] == "ROLLBACK"
    assert statements[1] == "SELECT set_config('lock_timeout', '2000ms', true)"
    assert len(statements) == 4
    assert connection.get_autocommit()
