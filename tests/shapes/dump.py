"""A dump of every table in every non-system schema of the test database, and the difference of two.

Every merge test compares the database before the merge, after it (exactly
the planned rows changed) and after the undo (identical), whatever the table:
models, tables without a model, other schemas, other apps.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection

from integrity.db import qualified

# Written by every merge and every undo: compared on their own.
BOOKKEEPING = {"public.integrity_mergerecord", "public.django_admin_log"}

Dump = dict[str, list[str]]


def tables() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_%%' ORDER BY 1, 2"
        )
        return cursor.fetchall()


def dump_all() -> Dump:
    """Every row of every table, as sorted ``row_to_json`` text, by ``schema.table``."""
    out = {}
    with connection.cursor() as cursor:
        for schema, table in tables():
            cursor.execute(f"SELECT row_to_json(t.*)::text FROM {qualified(schema, table)} t")  # noqa: S608
            out[f"{schema}.{table}"] = sorted(row[0] for row in cursor.fetchall())
    return out


def changes(before: Dump, after: Dump) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per table whose rows differ (bookkeeping aside): the rows ``gone`` and the rows ``new``."""
    out = {}
    for table in sorted(set(before) | set(after)):
        if table in BOOKKEEPING:
            continue
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            out[table] = {
                "gone": [json.loads(r) for r in sorted(old - new)],
                "new": [json.loads(r) for r in sorted(new - old)],
            }
    return out


def without_bookkeeping(d: Dump) -> Dump:
    return {t: rows for t, rows in d.items() if t not in BOOKKEEPING}
