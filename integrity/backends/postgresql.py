"""PostgreSQL catalogs: which sequences feed which columns, and their values.

Tables are resolved with ``to_regclass`` (so the connection's search_path
decides, as it does for Django's own queries) and everything after that is
joined by OID, never by bare name, so two schemas holding a table of the same
name never get mixed up.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from integrity.backends.base import ChooseNext, SequenceLink, SequenceState, TableBusy

# A sequence feeds a column when it is OWNED BY it (serial: deptype 'a';
# identity: deptype 'i') or when the column's default calls nextval() on it
# (the default expression depends on the sequence).
LINKS_SQL = """
WITH wanted AS (
    SELECT w.ref, to_regclass(w.name) AS relid
    FROM unnest(%s::int[], %s::text[]) AS w(ref, name)
),
links AS (
    SELECT d.refobjid AS relid, d.refobjsubid AS attnum, d.objid AS seqid, d.deptype::text AS dep
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i')
      AND d.refobjsubid > 0
      AND d.refobjid IN (SELECT relid FROM wanted)
    UNION ALL
    SELECT ad.adrelid, ad.adnum, d.refobjid, 'n'
    FROM pg_attrdef ad
    JOIN pg_depend d
      ON d.classid = 'pg_attrdef'::regclass
     AND d.objid = ad.oid
     AND d.refclassid = 'pg_class'::regclass
    WHERE ad.adrelid IN (SELECT relid FROM wanted)
)
SELECT w.ref, tn.nspname, tc.relname, a.attname,
       format_type(a.atttypid, a.atttypmod),
       sn.nspname, sc.relname, format_type(s.seqtypid, NULL),
       s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       CASE WHEN bool_or(l.dep = 'i') THEN 'identity'
            WHEN bool_or(l.dep = 'a') AND bool_or(l.dep = 'n') THEN 'serial'
            WHEN bool_or(l.dep = 'a') THEN 'owned'
            ELSE 'default' END,
       has_sequence_privilege(sc.oid, 'SELECT'),
       has_column_privilege(tc.oid, a.attnum, 'SELECT')
FROM links l
JOIN wanted w ON w.relid = l.relid
JOIN pg_class tc ON tc.oid = l.relid
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = l.attnum AND NOT a.attisdropped
JOIN pg_class sc ON sc.oid = l.seqid AND sc.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_sequence s ON s.seqrelid = sc.oid
GROUP BY w.ref, tn.nspname, tc.relname, tc.oid, a.attnum, a.attname, a.atttypid, a.atttypmod,
         sn.nspname, sc.relname, sc.oid, s.seqtypid, s.seqstart, s.seqincrement, s.seqmin, s.seqmax
ORDER BY w.ref, a.attnum, sn.nspname, sc.relname
"""

LOCK_NOT_AVAILABLE = "55P03"


class PostgresSequenceBackend:
    """Sequence backend for PostgreSQL 10 and later."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.qn = connection.ops.quote_name

    def links(self, tables: Sequence[str]) -> list[SequenceLink]:
        """Return every sequence feeding a column of ``tables`` (one query)."""
        if not tables:
            return []
        names = [self.qn(t) for t in tables]
        with self.connection.cursor() as cursor:
            cursor.execute(LINKS_SQL, [list(range(len(names))), names])
            rows = cursor.fetchall()
        return [SequenceLink(*row) for row in rows]

    def _relation(self, schema: str, name: str) -> str:
        return f"{self.qn(schema)}.{self.qn(name)}"

    def _extreme_sql(self, link: SequenceLink) -> str:
        if not link.column_readable:
            return "NULL::bigint"
        agg = "MAX" if link.increment > 0 else "MIN"
        table = self._relation(link.schema, link.table)
        return f"(SELECT {agg}({self.qn(link.column)})::bigint FROM {table})"  # noqa: S608 - quoted names

    def _state_sql(self, index: int, link: SequenceLink) -> str:
        extreme = self._extreme_sql(link)
        if not link.sequence_readable:
            return f"SELECT {index:d}, NULL::bigint, NULL::bool, {extreme}"
        seq = self._relation(link.sequence_schema, link.sequence)
        return f"SELECT {index:d}, last_value, is_called, {extreme} FROM {seq}"  # noqa: S608 - quoted names

    def states(self, links: Sequence[SequenceLink]) -> list[SequenceState]:
        """Return sequence values and column MAX for all links in one statement."""
        if not links:
            return []
        sql = "\nUNION ALL\n".join(self._state_sql(i, link) for i, link in enumerate(links))
        with self.connection.cursor() as cursor:
            cursor.execute(sql)
            rows = sorted(cursor.fetchall())
        return [SequenceState(last_value=r[1], is_called=r[2], column_extreme=r[3]) for r in rows]

    def set_next(self, link: SequenceLink, lock_timeout_ms: int, choose: ChooseNext) -> tuple[int, int]:
        """Lock the table against writers (not readers), then move the sequence."""
        table = self._relation(link.schema, link.table)
        seq = self._relation(link.sequence_schema, link.sequence)
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout_ms)}ms"])
            try:
                # SHARE ROW EXCLUSIVE blocks INSERT/UPDATE/DELETE and other
                # resyncs of the table, but not SELECT.
                cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            except OperationalError as exc:
                if getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                    raise TableBusy(table) from exc
                raise
            extreme_sql = self._extreme_sql(link)
            cursor.execute(f"SELECT last_value, is_called, {extreme_sql} FROM {seq}")  # noqa: S608 - quoted names
            last_value, is_called, extreme = cursor.fetchone()
            state = SequenceState(last_value, is_called, extreme)
            before = last_value + link.increment if is_called else last_value
            target = choose(state)
            if target is None or target == before:
                return before, before
            cursor.execute("SELECT setval(%s::regclass, %s, false)", [seq, target])
            return before, target
