"""PostgreSQL catalogs and statements the Enforce build needs: a table's schema, an index's validity, the
build's progress, and the one-build-per-rule lock.

Names are passed as ``regclass`` text built by :func:`integrity.db.qualified`
(each part quoted, embedded quotes doubled), values as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrity.db import qualified, quote_table

LOCK_CLASS = 7_113_013  # the advisory-lock namespace of Enforce builds (first key of the two-key form)

SCHEMA_SQL = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)
"""

INDEX_SQL = """
SELECT i.indisvalid, i.indrelid = to_regclass(%s) FROM pg_index i WHERE i.indexrelid = to_regclass(%s)
"""

PROGRESS_SQL = """
SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total, lockers_done, lockers_total
FROM pg_stat_progress_create_index WHERE pid = %s
"""


@dataclass(frozen=True)
class Progress:
    """One row of ``pg_stat_progress_create_index``: what the build is doing now."""

    phase: str
    blocks_done: int
    blocks_total: int
    tuples_done: int
    tuples_total: int
    lockers_done: int
    lockers_total: int

    @property
    def percent(self) -> int | None:
        """How far the current phase is, by blocks (or tuples), when PostgreSQL says."""
        for done, total in ((self.blocks_done, self.blocks_total), (self.tuples_done, self.tuples_total)):
            if total:
                return min(100, round(100 * done / total))
        return None


def schema_of(cursor: Any, db_table: str) -> str | None:
    """The schema of ``db_table``, or ``None`` when there is no such table."""
    cursor.execute(SCHEMA_SQL, [quote_table(db_table)])
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def index_state(cursor: Any, schema: str, index: str, db_table: str) -> tuple[bool, bool] | None:
    """``(valid, on db_table)`` of the index ``schema.index``; ``None`` when there is no such index."""
    cursor.execute(INDEX_SQL, [quote_table(db_table), qualified(schema, index)])
    row = cursor.fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]))


def relation_exists(cursor: Any, schema: str, name: str) -> bool:
    """Is ``schema.name`` taken by any relation (a table, an index, a sequence…)?"""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified(schema, name)])
    return bool(cursor.fetchone()[0])


def progress_of(cursor: Any, pid: int) -> Progress | None:
    """What the ``CREATE INDEX`` of backend ``pid`` is doing, or ``None`` when it is building none."""
    cursor.execute(PROGRESS_SQL, [pid])
    row = cursor.fetchone()
    return None if row is None else Progress(str(row[0]), *(int(v or 0) for v in row[1:]))


def backend_alive(cursor: Any, pid: int) -> bool:
    """Is backend ``pid`` still connected (the build's process has not died)?"""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)", [pid])
    return bool(cursor.fetchone()[0])


def try_lock(cursor: Any, key: str) -> tuple[int, bool]:
    """``(backend pid, granted)``: the session's advisory lock on ``key`` (one build per rule at a time)."""
    cursor.execute("SELECT pg_backend_pid(), pg_try_advisory_lock(%s, hashtext(%s))", [LOCK_CLASS, key])
    pid, granted = cursor.fetchone()
    return int(pid), bool(granted)
