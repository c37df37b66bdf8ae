"""Shared fixtures of the merge tests: the configured rule on ``merging.Person`` and table dumps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from integrity.rules import Rule, get_rule

RULES = [
    {"model": "merging.Person", "fields": ["email"], "name": "email"},
    {"model": "merging.Person", "fields": ["nickname"], "name": "nickname"},
]


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


def merging_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name LIKE 'merging\\_%%' ORDER BY 1"
        )
        return [r[0] for r in cursor.fetchall()]


def dump(tables: list[str] | None = None) -> dict[str, list[Any]]:
    """Every row of every ``merging_*`` table (or of ``tables``), as ``row_to_json``, by id."""
    out = {}
    with connection.cursor() as cursor:
        for table in tables or merging_tables():
            qt = connection.ops.quote_name(table)
            cursor.execute(f"SELECT row_to_json(t)::text FROM {qt} t ORDER BY id")  # noqa: S608
            out[table] = [r[0] for r in cursor.fetchall()]
    return out
