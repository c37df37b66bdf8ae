"""PostgreSQL catalogs: which sequences feed which columns, and their values.

Tables are resolved with ``to_regclass`` (so the connection's search_path
decides, as it does for Django's own queries) and everything after that is
joined by OID, never by bare name, so two schemas holding a table of the same
name never get mixed up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.translation import gettext as _

from integrity.db import qualified, quote, quote_table
from integrity.reads import sqlstate
from integrity.sequences.backend import (
    STATES_CHUNK,
    ChooseNext,
    Feed,
    NotPermitted,
    SequenceLink,
    SequenceState,
    TableBusy,
)

# A sequence feeds a column when it is OWNED BY it (serial: deptype 'a';
# identity: deptype 'i') or when the column's default calls nextval() on it
# (the default expression depends on the sequence).
LINKS_SQL = """
WITH wanted AS (
    -- to_regclass() raises "permission denied for schema" on a schema-qualified
    -- name the role may not use, so such names are looked up in the catalog.
    SELECT w.ref,
           CASE WHEN cardinality(p.parts) = 2 THEN (
               SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = p.parts[1] AND c.relname = p.parts[2])
           ELSE to_regclass(w.name) END AS relid
    FROM unnest(%s::int[], %s::text[]) AS w(ref, name),
         LATERAL parse_ident(w.name) AS p(parts)
),
deps AS (
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
),
links AS (
    SELECT relid, attnum, seqid,
           CASE WHEN bool_or(dep = 'i') THEN 'identity'
                WHEN bool_or(dep = 'a') AND bool_or(dep = 'n') THEN 'serial'
                WHEN bool_or(dep = 'a') THEN 'owned'
                ELSE 'default' END AS kind
    FROM deps
    GROUP BY relid, attnum, seqid
)
SELECT w.ref, tn.nspname, tc.relname, a.attname,
       format_type(a.atttypid, a.atttypmod),
       sn.nspname, sc.relname, format_type(s.seqtypid, NULL),
       s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       l.kind,
       has_schema_privilege(sn.oid, 'USAGE') AND has_sequence_privilege(sc.oid, 'SELECT'),
       has_schema_privilege(tn.oid, 'USAGE') AND has_column_privilege(tc.oid, a.attnum, 'SELECT'),
       sc.oid::bigint,
       -- Every column this sequence feeds, in every table (model or not): a
       -- sequence shared by two tables must stay past the MAX of both. Looked
       -- up by the sequence's OID (index scans): a CTE of all the feeds,
       -- filtered here per link, made this quadratic (8 s at 11,000 sequences).
       (SELECT json_agg(json_build_array(x.nspname, x.relname, x.attname, x.type, x.integer, x.expression,
                                         x.readable, x.relid = l.relid AND x.attnum = l.attnum)
                        ORDER BY x.nspname, x.relname, x.attnum)::text
        FROM (
            SELECT f.relid, f.attnum, n.nspname, c.relname, a.attname,
                   format_type(a.atttypid, a.atttypmod) AS type,
                   COALESCE(NULLIF(t.typbasetype, 0), a.atttypid)
                       IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) AS integer,
                   -- Comparable: an integer column whose default (if any) is the sequence's
                   -- nextval() alone; 'INV-' || nextval(...) or nextval(...) * 10 is not.
                   CASE WHEN ad.oid IS NULL OR a.attidentity <> '' THEN NULL
                        WHEN pg_get_expr(ad.adbin, ad.adrelid) = format('nextval(%%L::regclass)', l.seqid::regclass::text)
                        THEN NULL
                        ELSE pg_get_expr(ad.adbin, ad.adrelid) END AS expression,
                   has_schema_privilege(n.oid, 'USAGE') AND has_column_privilege(c.oid, a.attnum, 'SELECT') AS readable
            FROM (
                SELECT d.refobjid AS relid, d.refobjsubid AS attnum
                FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = l.seqid
                  AND d.refclassid = 'pg_class'::regclass
                  AND d.deptype IN ('a', 'i')
                  AND d.refobjsubid > 0
                UNION
                SELECT ad.adrelid, ad.adnum
                FROM pg_depend d
                JOIN pg_attrdef ad ON ad.oid = d.objid
                WHERE d.refclassid = 'pg_class'::regclass
                  AND d.refobjid = l.seqid
                  AND d.classid = 'pg_attrdef'::regclass
            ) f
            JOIN pg_class c ON c.oid = f.relid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = f.relid AND a.attnum = f.attnum AND NOT a.attisdropped
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_attrdef ad ON ad.adrelid = f.relid AND ad.adnum = f.attnum
        ) x)
FROM links l
JOIN wanted w ON w.relid = l.relid
JOIN pg_class tc ON tc.oid = l.relid
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = l.attnum AND NOT a.attisdropped
JOIN pg_class sc ON sc.oid = l.seqid AND sc.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_sequence s ON s.seqrelid = sc.oid
ORDER BY w.ref, a.attnum, sn.nspname, sc.relname
"""

LOCKED_SQL = """
SELECT DISTINCT w.schema, w.name
FROM unnest(%s::text[], %s::text[]) AS w(schema, name)
JOIN pg_namespace n ON n.nspname = w.schema
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
JOIN pg_locks l ON l.locktype = 'relation' AND l.relation = c.oid
 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
WHERE l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid()
"""

LOCK_NOT_AVAILABLE = "55P03"
INSUFFICIENT_PRIVILEGE = "42501"


class PostgresSequenceBackend:
    """Sequence backend for PostgreSQL 10 and later."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def links(self, tables: Sequence[str]) -> list[SequenceLink]:
        """Return every sequence feeding a column of ``tables`` (one query)."""
        if not tables:
            return []
        names = [quote_table(t) for t in tables]
        with self.connection.cursor() as cursor:
            cursor.execute(LINKS_SQL, [list(range(len(names))), names])
            rows = cursor.fetchall()
        return [replace(SequenceLink(*row[:16]), feeds=_feeds(row[16])) for row in rows]

    def _extreme_sql(self, link: SequenceLink) -> str:
        """A one-row query of the MAX (MIN when descending) over every comparable column fed, as ``v``.

        NULL when the link's own column is not comparable or one of them is
        not readable: no status is derived from a partial answer.
        """
        compared = link.compared
        if not (link.column_readable and link.own.comparable and link.extremes_readable):
            return "SELECT NULL::bigint AS v"
        agg = "MAX" if link.increment > 0 else "MIN"
        parts = [
            f"SELECT {agg}({quote(f.column)})::bigint FROM {qualified(f.schema, f.table)}"  # noqa: S608 - quoted names
            for f in compared
        ]
        if len(parts) == 1:
            return parts[0].replace("::bigint FROM", "::bigint AS v FROM", 1)
        pick = "GREATEST" if link.increment > 0 else "LEAST"
        return f"SELECT {pick}({', '.join(f'({p})' for p in parts)}) AS v"

    def _state_sql(self, index: int, link: SequenceLink) -> str:
        extreme = self._extreme_sql(link)
        # The aggregate goes in FROM, not in the select list: a thousand
        # select-list subqueries cost several times more to plan.
        if not link.sequence_readable:
            return f"SELECT {index:d}, NULL::bigint, NULL::bool, m.v FROM ({extreme}) m"  # noqa: S608
        seq = qualified(link.sequence_schema, link.sequence)
        return f"SELECT {index:d}, s.last_value, s.is_called, m.v FROM {seq} s, ({extreme}) m"  # noqa: S608

    def _states_sql(self, links: Sequence[SequenceLink]) -> str:
        """One statement reading every sequence and its column's MAX together.

        The sequences are read in the same statement as the MAXes, after its
        snapshot: a value read earlier (say in the catalog query) would make a
        healthy sequence look behind the MAX that inserts since raised.
        """
        if self.connection.pg_version < 180000:  # type: ignore[attr-defined]
            return "\nUNION ALL\n".join(self._state_sql(i, link) for i, link in enumerate(links))
        # PostgreSQL 18+: plain aggregates, and the sequences read by OID
        # through one pg_get_sequence_data() call per row, not one scan each.
        maxes = "\nUNION ALL\n".join(
            self._extreme_sql(link).replace("SELECT ", f"SELECT {i:d}, ", 1) for i, link in enumerate(links)
        )
        # Integers only, inlined: no parameters, so a "%" in a name stays literal.
        oids = ",".join(
            f"{link.sequence_id:d}" if link.sequence_readable and link.sequence_id else "NULL"
            for link in links
        )
        return (
            "SELECT x.i, s.last_value, s.is_called, x.v "  # noqa: S608 - quoted names
            f"FROM ({maxes}) AS x(i, v) "
            f"LEFT JOIN LATERAL pg_get_sequence_data(('{{{oids}}}'::oid[])[x.i + 1]::regclass) AS s ON true"
        )

    def states(self, links: Sequence[SequenceLink]) -> list[SequenceState]:
        """Return sequence values and column MAX for all links, one statement per ``STATES_CHUNK`` links.

        A link's sequence and MAX are always read by the same statement (see
        ``_states_sql``); chunks only bound the size of each statement, so the
        answer is the same as one statement's.
        """
        states: list[SequenceState] = []
        with self.connection.cursor() as cursor:
            for start in range(0, len(links), STATES_CHUNK):
                chunk = links[start : start + STATES_CHUNK]
                cursor.execute(self._states_sql(chunk))
                rows = {r[0]: r[1:] for r in cursor.fetchall()}
                states += [SequenceState(*rows[i]) for i in range(len(chunk))]
        return states

    def locked(self, relations: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``relations`` (schema, name) another session holds or awaits in ACCESS EXCLUSIVE mode.

        Only that mode blocks a plain read; a waiting request counts, since
        later readers queue behind it. Reads ``pg_locks`` only: locks nothing.
        """
        if not relations:
            return set()
        with self.connection.cursor() as cursor:
            cursor.execute(LOCKED_SQL, [[r[0] for r in relations], [r[1] for r in relations]])
            return {(schema, name) for schema, name in cursor.fetchall()}

    def _lock_sql(self, link: SequenceLink) -> str:
        # SHARE ROW EXCLUSIVE blocks INSERT/UPDATE/DELETE and other
        # resyncs of the tables, but not SELECT.
        return f"LOCK TABLE {', '.join(_locked_tables(link))} IN SHARE ROW EXCLUSIVE MODE"

    def _setval(self, link: SequenceLink, target: int) -> tuple[str, list[Any]]:
        # By its schema-qualified, quoted name (not its OID), so that the statement
        # the pages show is the very one run, and one a data migration can hold.
        return "SELECT setval(%s::regclass, %s, false)", [
            qualified(link.sequence_schema, link.sequence),
            target,
        ]

    def statements(self, link: SequenceLink, target: int) -> list[str]:
        """The statements ``set_next`` runs to move the sequence to ``target``, values inlined, as run."""
        # compose_sql: how Django's PostgreSQL backend logs an executed statement (connection.queries).
        setval = self.connection.ops.compose_sql(*self._setval(link, target))  # type: ignore[attr-defined]
        return [self._lock_sql(link), str(setval)]

    def set_next(self, link: SequenceLink, lock_timeout_ms: int, choose: ChooseNext) -> tuple[int, int]:
        """Lock every table the sequence feeds against writers (not readers), then move the sequence."""
        tables = _locked_tables(link)
        seq = qualified(link.sequence_schema, link.sequence)
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout_ms)}ms"])
            try:
                cursor.execute(self._lock_sql(link))
                extreme_sql = self._extreme_sql(link)
                cursor.execute(f"SELECT s.last_value, s.is_called, m.v FROM {seq} s, ({extreme_sql}) m")  # noqa: S608
                last_value, is_called, extreme = cursor.fetchone()
                state = SequenceState(last_value, is_called, extreme)
                before = last_value + link.increment if is_called else last_value
                target = choose(state)
                if target is None or target == before:
                    return before, before
                cursor.execute(*self._setval(link, target))
            except DatabaseError as exc:
                code = sqlstate(exc)
                if code == LOCK_NOT_AVAILABLE:
                    raise TableBusy(", ".join(tables)) from exc
                if code == INSUFFICIENT_PRIVILEGE:
                    raise NotPermitted(
                        _("The database user may not lock %(table)s or change %(seq)s.")
                        % {"table": ", ".join(tables), "seq": seq}
                    ) from exc
                raise
            return before, target


def _locked_tables(link: SequenceLink) -> list[str]:
    return sorted({qualified(f.schema, f.table) for f in link.compared})


def _feeds(raw: str | None) -> tuple[Feed, ...]:
    return tuple(Feed(*item) for item in json.loads(raw or "[]"))
