"""Shared fixtures and helpers of the tests.

The merge tests': the configured rule on ``merging.Person``, people with
references, table dumps. The explain tests': real IntegrityErrors, parsed and
stored as the event group (and samples) ``events.write`` would store, through
the ORM so that the test's rollback removes them; sequence values are not
transactional, so ``keep_sequences`` puts back those the tests move, and
``restore_sequences`` (which a module turns on with
``pytest.mark.usefixtures("restore_sequences")``) every sequence of both
PostgreSQL databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections
from django.test import override_settings

from integrity.duplicates.rules import Rule, get_rule
from tests.helpers import PG_ALIASES

RULES = [
    {"model": "merging.Person", "fields": ["email"], "name": "email"},
    {"model": "merging.Person", "fields": ["nickname"], "name": "nickname"},
]


@pytest.fixture
def constraints_checked() -> Iterator[None]:
    """Foreign keys are DEFERRABLE: check them before the test's transaction is rolled back, as a commit would."""
    yield
    if connection.in_atomic_block and not connection.needs_rollback:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def rules_configured(db: None) -> Iterator[None]:
    with override_settings(INTEGRITY_DUPLICATE_RULES=RULES):
        yield


@pytest.fixture
def rule(rules_configured: None) -> Rule:
    return get_rule("default:merging.Person:configured:email")


@pytest.fixture
def nickname_rule(rules_configured: None) -> Rule:
    return get_rule("default:merging.Person:configured:nickname")


# Explain: real errors stored as event groups ---------------------------------------------------


SEQUENCES = ["shop_product_id_seq", "clinic_doctor_id_seq", "ticket_sequence"]


@pytest.fixture
def keep_sequences() -> Iterator[None]:
    """Put the sequences the tests move back as they were (a separate connection: they are not rolled back)."""
    wrapper = connections["default"]
    conn = wrapper.get_new_connection(wrapper.get_connection_params())
    conn.autocommit = True
    saved = [
        (name, *conn.execute(f"SELECT last_value, is_called FROM {name}").fetchone()) for name in SEQUENCES
    ]
    yield
    try:
        for name, last, called in saved:
            conn.execute("SELECT setval(%s::regclass, %s, %s)", [name, last, called])
    finally:
        conn.close()


# Sequences: every one of both PostgreSQL databases put back -----------------------------------


def _sequence_values(conn: Any) -> dict[int, tuple[int, bool]]:
    names = conn.execute("SELECT oid, oid::regclass::text FROM pg_class WHERE relkind = 'S'").fetchall()
    if not names:
        return {}
    sql = " UNION ALL ".join(f"SELECT {oid:d}, last_value, is_called FROM {name}" for oid, name in names)
    return {oid: (last, called) for oid, last, called in conn.execute(sql).fetchall()}


@pytest.fixture
def restore_sequences() -> Iterator[None]:
    """Put every sequence back as it was (a separate connection: works even after a failed test)."""
    saved = {}
    for alias in PG_ALIASES:
        wrapper = connections[alias]
        conn = wrapper.get_new_connection(wrapper.get_connection_params())
        conn.autocommit = True
        saved[alias] = (conn, _sequence_values(conn))
    yield
    for conn, values in saved.values():
        try:
            conn.execute("SET lock_timeout = '5s'")
            for oid, (last, called) in values.items():
                conn.execute("SELECT setval(%s::regclass, %s, %s)", [oid, last, called])
        finally:
            conn.close()
