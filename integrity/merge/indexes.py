"""Unique indexes of the referencing tables, read from the catalog, checked before anything is written.

Declared rules (``conflicts``) cover what the models say; the database may
enforce more: an index created by raw SQL, on an expression, partial, on a
table with no model. For each table whose rows a merge re-points, every
unique index that re-pointing can break is evaluated over the rows as they
would be (the moved columns replaced, generated columns recomputed, in a
derived table with the table's own column names, so the index's own
expressions and predicate apply unchanged). Rows it would make collide that
no declared conflict settles are a refusal in the preview, naming the index;
so is an index whose expressions cannot be evaluated, and an exclusion
constraint, which this check does not model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction
from django.utils.translation import gettext as _

from integrity.db import escaped, quote
from integrity.merge.exceptions import Unsupported
from integrity.merge.references import location

if TYPE_CHECKING:
    from integrity.merge.plan import Move, Plan

_COLUMNS = """
SELECT a.attname::text, format_type(a.atttypid, NULL), a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_INDEXES = """
SELECT c.relname::text, i.indnullsnotdistinct, pg_get_expr(i.indpred, i.indrelid),
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, false) FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
       i.indexprs IS NOT NULL OR i.indpred IS NOT NULL,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) n
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = n)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass AND i.indisunique ORDER BY c.relname
"""
_EXCLUSIONS = (
    "SELECT conname::text FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'x' ORDER BY 1"
)


_sql = escaped


def _name(name: str) -> str:
    return escaped(quote(name))


def _refused(message: str, **what: Any) -> Exception:
    return Unsupported(message % what)


class _Table:
    """The rows of one table a merge re-points, as SQL: which rows move, and their columns once moved."""

    def __init__(self, cursor: Any, table: str, pk: str, moves: list[Move]) -> None:
        self.table, self.pk, self.sql_table = table, pk, _sql(table)
        cursor.execute(_COLUMNS, [table])
        self.columns = [
            (name, _sql(kind), gen, _sql(expr or "")) for name, kind, gen, expr in cursor.fetchall()
        ]
        types = {name: kind for name, kind, _gen, _expr in self.columns}
        self.cases: dict[str, list[tuple[str, list[Any]]]] = {}
        conditions, self.params = [], []
        for move in moves:
            rel = move.relation
            col, kind = rel.column, types[rel.column]
            cond = f"{_name(col)} = ANY(CAST(%s AS {kind}[]))"
            params: list[Any] = [[rel.stored(v) for v in move.olds]]
            if rel.content_type is not None:
                cond += f" AND {_name(str(rel.content_type.column))} = %s"
                params.append(rel.content_type_id)
            conditions.append(f"({cond})")
            self.params += params
            self.cases.setdefault(col, []).append(
                (f"WHEN {cond} THEN CAST(%s AS {kind})", [*params, rel.stored(move.new)])
            )
        self.moving = f"COALESCE({' OR '.join(conditions)}, false)"

    @property
    def columns_moved(self) -> set[str]:
        return set(self.cases)

    def moved_rows(self) -> tuple[str, list[Any]]:
        """``SELECT`` of the moving rows with the moved columns' new values (and generated ones recomputed)."""
        select, params = [], []
        for name, _kind, generated, _expr in self.columns:
            if name in self.cases and not generated:
                whens = " ".join(w for w, _p in self.cases[name])
                select.append(f"CASE {whens} ELSE {_name(name)} END AS {_name(name)}")
                params += [p for _w, ps in self.cases[name] for p in ps]
            else:
                select.append(_name(name))
        inner = f"SELECT {', '.join(select)} FROM {self.sql_table} WHERE {self.moving}"  # noqa: S608
        params += self.params
        if not any(generated == "s" for _n, _k, generated, _e in self.columns):
            return inner, params
        outer = ", ".join(
            f"({expr}) AS {_name(name)}" if generated == "s" else _name(name)
            for name, _kind, generated, expr in self.columns
        )
        return f"SELECT {outer} FROM ({inner}) x", params  # noqa: S608

    def collisions(
        self, cursor: Any, keys: list[str], predicate: str | None, nulls_equal: bool
    ) -> list[list[Any]]:
        """Primary keys of the rows that would share one key of the index (groups of two or more)."""
        keys = [_sql(k) for k in keys]
        predicate = _sql(predicate) if predicate else None
        ks = [f"_k{i}" for i in range(len(keys))]
        key_select = ", ".join(f"({k}) AS {name}" for k, name in zip(keys, ks, strict=True))
        pred = f"({predicate})" if predicate else "true"
        moved, params = self.moved_rows()
        mine, theirs = ", ".join(f"({k})" for k in keys), ", ".join(ks)
        if nulls_equal:
            theirs_m = ", ".join(f"m.{k}" for k in ks)
            match = f"EXISTS (SELECT 1 FROM m WHERE ({theirs_m}) IS NOT DISTINCT FROM ({mine}))"  # noqa: S608
            not_null = "true"
        else:
            match = f"({mine}) IN (SELECT {theirs} FROM m)"  # noqa: S608
            not_null = " AND ".join(f"{k} IS NOT NULL" for k in ks)
        pk = _name(self.pk)
        statement = (
            f"WITH m AS (SELECT {pk} AS _pk, {key_select} FROM ({moved}) x WHERE {pred}), "  # noqa: S608
            f"s AS (SELECT {pk} AS _pk, {key_select} FROM {self.sql_table} x "
            f"WHERE NOT {self.moving} AND {pred} AND {match}) "
            f"SELECT json_agg(_pk ORDER BY _pk::text) FROM (SELECT * FROM m UNION ALL SELECT * FROM s) u "
            f"WHERE {not_null} GROUP BY {theirs} HAVING count(*) > 1"
        )
        cursor.execute(statement, [*params, *self.params])
        return [row[0] for row in cursor.fetchall()]


def _moving(move: Move) -> bool:
    return bool(move.olds) and any(move.counts.get(pk) for pk in move.moved_from)


def check_indexes(alias: str, plan: Plan) -> None:
    """``Unsupported`` if re-pointing would break a unique index (or may break an exclusion constraint)."""
    by_table: dict[tuple[str, str], list[Move]] = {}
    for move in plan.moves:
        if _moving(move):
            by_table.setdefault(location(alias, move.relation), []).append(move)
    with connections[alias].cursor() as cursor:
        for (table, pk), moves in by_table.items():
            _check_table(alias, cursor, plan, _Table(cursor, table, pk, moves), moves[0].relation.holder)


def _check_table(alias: str, cursor: Any, plan: Plan, rows: _Table, holder: Any) -> None:
    cursor.execute(_EXCLUSIONS, [rows.table])
    for (name,) in cursor.fetchall():
        raise _refused(
            _(
                "re-pointing rows of %(table)s could violate its exclusion constraint %(name)s, which the merge "
                "cannot check beforehand; nothing was changed."
            ),
            table=rows.table,
            name=name,
        )
    known = [c for c in plan.conflicts if holder is not None and c.holder is holder]
    settled = [{str(r.pk) for r in c.rows} for c in known]
    losers = {str(pk) for c in known if c.keep is not None for pk in c.losers}
    cursor.execute(_INDEXES, [rows.table])
    for name, nulls_equal, predicate, keys, computed, columns in cursor.fetchall():
        if not computed and not set(columns) & rows.columns_moved:
            continue  # plain columns, none of them moved: re-pointing cannot change its keys
        try:
            with transaction.atomic(using=alias):
                groups = rows.collisions(cursor, keys, predicate, nulls_equal)
        except DatabaseError as exc:
            raise _refused(
                _(
                    "the unique index %(index)s of %(table)s cannot be evaluated for the rows re-pointed (%(error)s); "
                    "nothing was changed."
                ),
                index=name,
                table=rows.table,
                error=str(exc).strip(),
            ) from exc
        for group in groups:
            pks = {str(pk) for pk in group}
            if pks in settled or len(pks - losers) < 2:
                continue
            raise _refused(
                _(
                    "re-pointing would give rows %(pks)s of %(table)s the same key in its unique index %(index)s "
                    "(%(keys)s), which no declared rule covers, so the preview cannot offer a choice; "
                    "nothing was changed."
                ),
                pks=", ".join(sorted(pks)),
                table=rows.table,
                index=name,
                keys=", ".join(keys),
            )
