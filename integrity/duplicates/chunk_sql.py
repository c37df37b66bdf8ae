"""The statements of a chunked scan (``integrity.duplicates.chunked``), built around ``service.keyed``.

Every statement wraps the rule's own queryset (condition, NULL semantics and
key expressions are Django's, as in the one-statement scan) as a subquery
``q`` whose key columns are ``k0, k1, …`` and whose primary key is ``pk``;
PostgreSQL pulls such a subquery up, so a range on ``q.k0`` still reaches an
index on the expression and a ``ctid`` range on ``q.row_ctid`` is a TID range
scan. Identifiers are quoted by ``integrity.db.quote``; values are parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Field
from django.db.models.expressions import RawSQL

from integrity.db import escaped, quote, quote_table
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import keyed

Statement = tuple[str, list[Any]]


@dataclass(frozen=True)
class Shape:
    """The rule's rows as a subquery (``q``) and the names of its columns."""

    sql: str  # SELECT pk, row_ctid, k0, k1, … FROM the table WHERE the rule's condition
    params: tuple[Any, ...]
    names: tuple[str, ...]  # k0, k1, …
    pk: str

    def keys(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + quote(n) for n in self.names)

    def row(self, alias: str = "") -> str:
        """The keys as a row value, for range comparisons (``ROW(x)`` compares like ``x``)."""
        return f"ROW({self.keys(alias)})"

    def desc(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{quote(n)} DESC" for n in self.names)

    def same_key(self, a: str, b: str, *, nulls_equal: bool) -> str:
        # NULLs-equal rules match NULL key parts too: ARRAY[x] = ARRAY[y] is NULL-safe and can hash-join.
        return " AND ".join(
            f"ARRAY[{a}.{quote(n)}] = ARRAY[{b}.{quote(n)}]"
            if nulls_equal
            else f"{a}.{quote(n)} = {b}.{quote(n)}"
            for n in self.names
        )


def shape(rule: Rule, order: Sequence[int] | None = None) -> Shape:
    """The rule's rows; ``order`` permutes the key columns (to follow an index's column order)."""
    qs, names = keyed(rule)
    table = quote_table(rule.model._meta.db_table)
    pk = rule.model._meta.pk.attname
    # The base table's alias is its name, joins or not: its ctid, for physical chunks.
    qs = qs.annotate(row_ctid=RawSQL(f"{escaped(table)}.ctid", [], output_field=Field()))
    sql, params = qs.values(pk, "row_ctid", *names).query.sql_with_params()
    ordered = tuple(names[i] for i in order) if order is not None else tuple(names)
    return Shape(sql, tuple(params), ordered, pk)


def table_size(rule: Rule) -> Statement:
    """(rows the statistics estimate, pages they counted, pages the table has now)."""
    return (
        "SELECT c.reltuples, c.relpages, pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)",
        [quote_table(rule.model._meta.db_table)],
    )


def _q(s: Shape) -> str:
    return f"({s.sql}) q"


def ordered_probe(s: Shape, chunk_rows: int) -> Statement:
    """The rows of one key range in key order: EXPLAINed to learn whether an index gives that order."""
    sql = f"SELECT {s.keys('q')} FROM {_q(s)} ORDER BY {s.keys('q')} LIMIT %s"  # noqa: S608
    return sql, [*s.params, int(chunk_rows)]


def like(rows: str) -> str:
    """The empty table the staged rows' partitioned table is made like."""
    return f"{rows}_like"


def templates(s: Shape, rows: str, top: str) -> list[Statement]:
    """Empty temporary tables typed like the keys (collations included): staged rows, kept groups."""
    return [
        (
            f"CREATE TEMP TABLE {quote(like(rows))} AS SELECT {s.keys('q')}, q.{quote(s.pk)} AS pk "  # noqa: S608
            f"FROM {_q(s)} LIMIT 0",
            list(s.params),
        ),
        (
            f"CREATE TEMP TABLE {quote(top)} AS SELECT {s.keys()}, 0::bigint AS n, ARRAY[pk] AS pks "  # noqa: S608
            f"FROM {quote(like(rows))} LIMIT 0",
            [],
        ),
    ]


def partitions(s: Shape, rows: str, parts: int) -> str:
    """The staged rows' table, hash-partitioned by key: each partition is combined by one statement."""
    sql = [f"CREATE TEMP TABLE {quote(rows)} (LIKE {quote(like(rows))}) PARTITION BY HASH ({s.keys()})"]
    sql += [
        f"CREATE TEMP TABLE {quote(f'{rows}_{i}')} PARTITION OF {quote(rows)} "
        f"FOR VALUES WITH (MODULUS {int(parts)}, REMAINDER {int(i)})"
        for i in range(parts)
    ]
    return "; ".join(sql)


def _prefix(s: Shape, width: int) -> str:
    """The first ``width`` keys of ``q`` as a row: a bound on the leading keys keeps every group whole."""
    return "ROW(" + ", ".join(f"q.{quote(n)}" for n in s.names[:width]) + ")"


def _after(s: Shape, after: Sequence[Any] | None) -> tuple[str, list[Any]]:
    if after is None:
        return "TRUE", []
    return f"{_prefix(s, len(after))} > ROW({', '.join(['%s'] * len(after))})", list(after)


def column_type(rule: Rule, column: str) -> Statement:
    """The SQL type of one of the table's columns, as ``format_type`` prints it (for a cast)."""
    sql = "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = %s"
    return sql, [quote_table(rule.model._meta.db_table), column]


def histogram(rule: Rule, column: str, type_name: str) -> Statement:
    """What ANALYZE saw of a column: histogram bounds, NULL and most-common-value fractions, rows, writes since."""
    sql = (
        f"SELECT (s.histogram_bounds::text)::{type_name}[], s.null_frac, "  # noqa: S608
        "COALESCE((SELECT sum(f) FROM unnest(s.most_common_freqs) AS f), 0), c.reltuples, "
        "COALESCE(u.n_mod_since_analyze, 0) FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace "
        "JOIN pg_stats s ON s.schemaname = ns.nspname AND s.tablename = c.relname AND s.attname = %s "
        "LEFT JOIN pg_stat_all_tables u ON u.relid = c.oid WHERE c.oid = to_regclass(%s)"
    )
    return sql, [column, quote_table(rule.model._meta.db_table)]


def boundary(s: Shape, *, after: Sequence[Any] | None, chunk_rows: int) -> Statement:
    """The key of the ``chunk_rows``-th row past ``after``, in index order: where the next range ends.

    No row there: the range runs to the end. The range takes every row of its
    last key, however many, so no group is ever split between two ranges.
    """
    where, params = _after(s, after)
    sql = f"SELECT {s.keys('q')} FROM {_q(s)} WHERE {where} ORDER BY {s.keys('q')} OFFSET %s LIMIT 1"  # noqa: S608
    return sql, [*s.params, *params, int(chunk_rows) - 1]


def key_range(
    s: Shape,
    *,
    after: Sequence[Any] | None,
    upto: Sequence[Any] | None,
    sample: int,
    limit: int,
    least: int,
) -> Statement:
    """The groups of the keys in (``after``, ``upto``]: their count and rows, the largest with their pks.

    A plain read (no temporary table, no write), so PostgreSQL may run it in
    parallel like the one statement. Returned: one row per kept group (the
    ``limit`` largest of at least ``least`` rows, with their first ``sample``
    pks), each with the range's totals; just the totals when none is kept.
    """
    where, params = _after(s, after)
    if upto is not None:
        where += f" AND {_prefix(s, len(upto))} <= ROW({', '.join(['%s'] * len(upto))})"
        params += list(upto)
    # An ordered aggregate sorts inside itself: no Sort node, so the disabled sorts of key ranges
    # cannot turn this into a walk of the primary key index filtered by key.
    pks = (
        f"(SELECT (array_agg(m.{quote(s.pk)} ORDER BY m.{quote(s.pk)}))[1:%s] FROM ({s.sql}) m "  # noqa: S608
        f"WHERE {s.same_key('m', 't', nulls_equal=False)})"
    )
    sql = (
        f"WITH g AS (SELECT {s.keys('q')}, count(*) AS n FROM {_q(s)} WHERE {where} "  # noqa: S608
        f"GROUP BY {s.keys('q')} HAVING count(*) > 1), "
        f"tot AS (SELECT count(*) AS groups, COALESCE(sum(n), 0) AS grouped FROM g), "
        f"t AS (SELECT * FROM g WHERE n >= %s ORDER BY n DESC, {s.keys()} LIMIT %s) "
        f"SELECT tot.groups, tot.grouped, {s.keys('t')}, t.n, {pks} FROM tot LEFT JOIN t ON true "
        f"ORDER BY t.n DESC, {s.keys('t')}"
    )
    return sql, [*s.params, *params, int(least), int(limit), int(sample), *s.params]


def keep(s: Shape, top: str, rows: Sequence[Sequence[Any]]) -> Statement:
    """Kept groups (keys, size, pks) into ``top``: one statement, one row of values each."""
    one = "(" + ", ".join(["%s"] * (len(s.names) + 2)) + ")"
    sql = f"INSERT INTO {quote(top)} ({s.keys()}, n, pks) VALUES {', '.join([one] * len(rows))}"  # noqa: S608
    return sql, [value for row in rows for value in row]


def copy_chunk(s: Shape, rows: str, first_block: int, last_block: int | None) -> Statement:
    """Stage the keys and pks of the rows in pages [first, last) (``None``: to the table's end)."""
    bound = "q.row_ctid >= %s::tid" + ("" if last_block is None else " AND q.row_ctid < %s::tid")
    params = [f"({int(first_block)},0)"] + ([] if last_block is None else [f"({int(last_block)},0)"])
    sql = f"INSERT INTO {quote(rows)} SELECT {s.keys('q')}, q.{quote(s.pk)} FROM {_q(s)} WHERE {bound}"  # noqa: S608
    return sql, [*s.params, *params]


def combine(s: Shape, part: str, top: str, *, nulls_equal: bool, sample: int, limit: int) -> Statement:
    """The groups of one partition of the staged rows (a key lives in one partition only): totals, top kept."""
    sql = (
        f"WITH g AS (SELECT {s.keys()}, count(*) AS n FROM {quote(part)} GROUP BY {s.keys()} HAVING count(*) > 1), "  # noqa: S608
        f"t AS (SELECT * FROM g ORDER BY n DESC, {s.keys()} LIMIT %s), "
        f"ins AS (INSERT INTO {quote(top)} SELECT {s.keys('t')}, t.n, (array_agg(r.pk ORDER BY r.pk))[1:%s] "
        f"FROM t JOIN {quote(part)} r ON {s.same_key('r', 't', nulls_equal=nulls_equal)} "
        f"GROUP BY {s.keys('t')}, t.n) "
        f"SELECT count(*), COALESCE(sum(n), 0) FROM g"
    )
    return sql, [int(limit), int(sample)]


def kept(s: Shape, top: str, limit: int) -> Statement:
    """The ``limit`` largest groups kept, then by key in the rule's order (the one-statement scan's order)."""
    keys = ", ".join(quote(n) for n in sorted(s.names, key=lambda n: int(n[1:])))
    sql = f"SELECT {keys}, n, pks FROM {quote(top)} ORDER BY n DESC, {keys} LIMIT %s"  # noqa: S608
    return sql, [int(limit)]


def drop(*tables: str) -> str:
    return "DROP TABLE IF EXISTS " + ", ".join(quote(t) for t in tables)
