"""Shared fixtures and helpers of the tests.

The merge tests': the configured rule on ``merging.Person``, people with
references, table dumps. The explain tests': real IntegrityErrors, parsed and
stored as the event group (and samples) ``events.write`` would store, through
the ORM so that the test's rollback removes them; sequence values are not
transactional, so ``keep_sequences`` puts back those the tests move.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.test import override_settings

from integrity.duplicates.rules import Rule, get_rule

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
