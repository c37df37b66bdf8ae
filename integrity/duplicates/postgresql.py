"""PostgreSQL catalogs: the unique indexes of tables, in a form rules can be matched against.

Index keys and predicates are compared as PostgreSQL itself prints them
(``pg_get_indexdef`` / ``pg_get_expr``). For a rule on expressions or with a
condition, the rule's own index is built on an empty temporary copy of the
table (inside a savepoint that is rolled back) so that PostgreSQL prints both
sides the same way: no hand-written SQL normaliser, no false positives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, UniqueConstraint

from integrity import reads
from integrity.conf import settings
from integrity.db import quote, quote_table

UNIQUE_INDEXES_SQL = """
WITH wanted AS (
    SELECT w.ref, to_regclass(w.name) AS relid
    FROM unnest(%s::int[], %s::text[]) AS w(ref, name)
)
SELECT w.ref, ic.relname, i.indisvalid,
       ARRAY(SELECT CASE WHEN k.attnum = 0 THEN NULL ELSE a.attname::text END
             FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, n)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.n),
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, n::int, true) FROM generate_series(1, i.indnkeyatts) AS n),
       pg_get_expr(i.indpred, i.indrelid, true),
       {nulls_not_distinct},
       con.conname
FROM wanted w
JOIN pg_index i ON i.indrelid = w.relid AND i.indisunique AND NOT i.indisprimary
JOIN pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
ORDER BY w.ref, ic.relname
"""

LOCK_NOT_AVAILABLE = "55P03"
T = TypeVar("T")

PROBE_SQL = """
SELECT ARRAY(SELECT pg_get_indexdef(i.indexrelid, n::int, true) FROM generate_series(1, i.indnkeyatts) AS n),
       pg_get_expr(i.indpred, i.indrelid, true), {nulls_not_distinct}
FROM pg_index i WHERE i.indrelid = to_regclass(%s)
"""


@dataclass(frozen=True)
class UniqueIndex:
    """A unique index (or constraint) of a table, as the catalog prints it."""

    ref: int  # index of the table in the list passed to ``unique_indexes``
    name: str
    valid: bool
    columns: tuple[str | None, ...]  # None for an expression key
    keys: tuple[str, ...]  # every key as pg_get_indexdef prints it
    predicate: str | None
    nulls_not_distinct: bool
    constraint: str | None

    @property
    def has_expressions(self) -> bool:
        return any(c is None for c in self.columns)


@dataclass(frozen=True)
class IndexShape:
    """What an index built from a rule looks like: keys, predicate, NULL semantics."""

    keys: tuple[str, ...]
    predicate: str | None
    nulls_not_distinct: bool


class PostgresUniqueBackend:
    """Unique-index introspection for PostgreSQL."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        pg15 = connection.pg_version >= 150000  # type: ignore[attr-defined]
        self._nnd = "i.indnullsnotdistinct" if pg15 else "false"

    def tables_exist(self, tables: Sequence[str]) -> list[bool]:
        with self.connection.cursor() as cursor:
            names = [quote_table(t) for t in tables]
            cursor.execute("SELECT to_regclass(n) IS NOT NULL FROM unnest(%s::text[]) AS n", [names])
            return [row[0] for row in cursor.fetchall()]

    def unique_indexes(self, tables: Sequence[str], lock_timeout_ms: int = 2000) -> list[UniqueIndex]:
        """Every non-primary unique index of ``tables`` (one query).

        ``pg_get_indexdef`` locks the table it prints (ACCESS SHARE): raises
        ``TableLocked`` rather than wait behind a migration for good.
        """
        if not tables:
            return []
        names = [quote_table(t) for t in tables]

        def read(cursor: Any) -> list[Any]:
            cursor.execute(
                UNIQUE_INDEXES_SQL.format(nulls_not_distinct=self._nnd), [list(range(len(names))), names]
            )
            return cursor.fetchall()

        rows = self._rolled_back(read, lock_timeout_ms, ", ".join(tables))
        return [UniqueIndex(r[0], r[1], r[2], tuple(r[3]), tuple(r[4]), r[5], r[6], r[7]) for r in rows]

    def probe(
        self, model: type[Model], constraint: UniqueConstraint, lock_timeout_ms: int = 2000
    ) -> IndexShape | None:
        """Build ``constraint``'s index on an empty temporary copy of the table; read its shape.

        Everything happens in a savepoint that is rolled back: the real table is
        only read by ``LIKE`` (an ACCESS SHARE lock), never indexed. Raises
        ``TableLocked`` when that lock is not granted within ``lock_timeout_ms``.
        """
        qn = quote
        probe_table = "integrity_probe"
        with self.connection.schema_editor(atomic=False, collect_sql=False) as editor:
            statement: Any = constraint.create_sql(model, editor)
        if statement is None:
            return None
        statement.rename_table_references(model._meta.db_table, probe_table)

        def build(cursor: Any) -> IndexShape:
            cursor.execute(f"CREATE TEMP TABLE {qn(probe_table)} (LIKE {quote_table(model._meta.db_table)})")
            cursor.execute(str(statement))
            cursor.execute(PROBE_SQL.format(nulls_not_distinct=self._nnd), [f"pg_temp.{probe_table}"])
            keys, predicate, nnd = cursor.fetchone()
            return IndexShape(tuple(keys), predicate, nnd)

        return self._rolled_back(build, lock_timeout_ms, model._meta.db_table)

    def _rolled_back(self, work: Callable[[Any], T], lock_timeout_ms: int, tables: str) -> T:
        """``work(cursor)`` in a savepoint (a transaction in autocommit) that is always rolled back.

        Nothing it does stays, its lock timeout included (``SET LOCAL`` would
        outlive a released savepoint). A lock not granted in time: ``TableLocked``.
        """
        try:
            with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
                reads.set_timeouts(cursor, lock_timeout_ms, settings.READ_STATEMENT_TIMEOUT_MS)
                raise _Rollback(work(cursor))
        except _Rollback as done:
            return cast(T, done.value)
        except DatabaseError as exc:
            if reads.sqlstate(exc) in (LOCK_NOT_AVAILABLE, reads.QUERY_CANCELED):
                raise TableLocked(tables) from exc
            raise


class TableLocked(Exception):
    """Another transaction (e.g. a migration) holds a lock on the table that we do not wait for."""


class _Rollback(Exception):
    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value
