"""What the PostgreSQL catalog knows of the references to a table that ``_meta`` may not.

Every foreign key constraint into a table (``pg_constraint``, any schema,
whether a model exists for the referencing table or not), the primary key of
the referencing table (to record the rows a merge moves, for the undo), and
the statements a merge needs for a table that has no model: count and digest
the rows referencing some values, check whether any row still does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections

from integrity.db import escaped, qualified, quote

TABLE = "foreign key (no model)"
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

_COLUMNS = (
    "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY k(n, i) "
    "JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n ORDER BY k.i)"
)
_FOREIGN_KEYS = f"""
SELECT c.conname::text, n.nspname::text, r.relname::text, c.conrelid::bigint,
       rn.nspname::text, rr.relname::text, c.confrelid::bigint, c.confdeltype::text,
       c.condeferrable AND c.condeferred,
       {_COLUMNS.format(keys="c.conkey", rel="c.conrelid")},
       {_COLUMNS.format(keys="c.confkey", rel="c.confrelid")},
       COALESCE((SELECT {_COLUMNS.format(keys="i.indkey::int2[]", rel="i.indrelid")}
                 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indisprimary), '{{}}')
FROM pg_constraint c
JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
JOIN pg_class rr ON rr.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = rr.relnamespace
WHERE c.contype = 'f' AND c.conparentid = 0 AND c.confrelid = ANY(%s::oid[])
ORDER BY n.nspname, r.relname, c.conname
"""  # noqa: S608 (the column lists are constant text)


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key constraint: ``columns`` of ``schema.table`` reference ``ref_columns`` of the other table."""

    name: str
    schema: str
    table: str
    oid: int
    ref_schema: str
    ref_table: str
    ref_oid: int
    on_delete: str
    deferred: bool  # DEFERRABLE INITIALLY DEFERRED: checked at commit
    columns: tuple[str, ...]
    ref_columns: tuple[str, ...]
    primary_key: tuple[str, ...]  # of the referencing table; empty when it has none

    @property
    def quoted(self) -> str:
        return qualified(self.schema, self.table)

    @property
    def in_statement(self) -> str:
        return escaped(self.quoted)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}.{', '.join(self.columns)}"

    @property
    def checked_at_commit(self) -> bool:
        """No action on delete, checked at commit: a row may reference a deleted key the transaction gives back."""
        return self.deferred and self.on_delete == "NO ACTION"


def table_oids(alias: str, tables: Iterable[str]) -> dict[str, int | None]:
    """The OID of each (quoted, maybe schema-qualified) table name, None for a table that does not exist."""
    names = sorted(set(tables))
    if not names:
        return {}
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT t, to_regclass(t)::oid::bigint FROM unnest(%s::text[]) t", [names])
        return {name: oid for name, oid in cursor.fetchall()}


def foreign_keys_into(alias: str, oids: Sequence[int]) -> list[ForeignKey]:
    """Every foreign key constraint referencing one of these tables, from every schema (one query)."""
    if not oids:
        return []
    with connections[alias].cursor() as cursor:
        cursor.execute(_FOREIGN_KEYS, [list(oids)])
        rows = cursor.fetchall()
    return [
        ForeignKey(
            name=row[0],
            schema=row[1],
            table=row[2],
            oid=row[3],
            ref_schema=row[4],
            ref_table=row[5],
            ref_oid=row[6],
            on_delete=ON_DELETE.get(row[7], row[7]),
            deferred=row[8],
            columns=tuple(row[9]),
            ref_columns=tuple(row[10]),
            primary_key=tuple(row[11]),
        )
        for row in rows
    ]


@dataclass(frozen=True, eq=False)
class TableRelation:
    """A single-column foreign key of a table no model of this database describes.

    It offers what the merge uses of a ``Relation``: a label, the column, the
    referenced attribute (``target``) of the merged model, the table and its
    primary key column; ``holder`` is None (no model).
    """

    key: ForeignKey
    target: str
    kind: str = TABLE
    holder: None = None
    content_type: None = None
    content_type_id: None = None
    parent_link: bool = False

    @property
    def label(self) -> str:
        return self.key.label

    @property
    def column(self) -> str:
        return self.key.columns[0]

    @property
    def table(self) -> str:
        return self.key.quoted

    @property
    def pk_column(self) -> str:
        return self.key.primary_key[0]

    def stored(self, value: Any) -> Any:
        return value

    def storable(self, values: Iterable[Any]) -> dict[Any, Any]:
        """As ``Relation.storable``: a foreign key's column holds every key of the column it references."""
        return {v: v for v in values if v is not None}


def tally(alias: str, rel: TableRelation, values: Sequence[Any]) -> list[tuple[Any, int, int]]:
    """Per referenced value: how many rows reference it, and the summed hash of their primary keys."""
    col, pk = escaped(quote(rel.column)), escaped(quote(rel.pk_column))
    with connections[alias].cursor() as cursor:
        cursor.execute(
            f"SELECT {col}, count(*), sum(hashtext(({pk})::text)::bigint) FROM {rel.key.in_statement} "  # noqa: S608
            f"WHERE {col} = ANY(%s) GROUP BY {col}",
            [list(values)],
        )
        return [(value, int(n), int(h or 0)) for value, n, h in cursor.fetchall()]


def any_referencing_sql(rel: TableRelation, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """The rows of the table that still reference one of ``values``."""
    column = escaped(quote(rel.column))
    return f"SELECT 1 FROM {rel.key.in_statement} WHERE {column} = ANY(%s)", [list(values)]  # noqa: S608


def referencing_sql(
    key: ForeignKey, pk_column: str, pks: Sequence[Any], keep: Sequence[Any] | None = None
) -> tuple[str, list[Any]]:
    """The rows that reference, by this constraint, one of the rows ``pks`` of the referenced table.

    With ``keep`` (values of the referenced columns another row takes in the
    same transaction), rows referencing exactly those are not counted, if the
    constraint is checked at commit only: no action fires for them.
    """
    mine = ", ".join(f"t.{escaped(quote(c))}" for c in key.columns)
    theirs = ", ".join(f"r.{escaped(quote(c))}" for c in key.ref_columns)
    ref = escaped(qualified(key.ref_schema, key.ref_table))
    params: list[Any] = [list(pks)]
    kept = ""
    if keep is not None and key.checked_at_commit:
        kept = f" AND ({mine}) IS DISTINCT FROM ({', '.join(['%s'] * len(keep))})"
        params += list(keep)
    sql = (
        f"SELECT 1 FROM {key.in_statement} t WHERE ({mine}) IN "  # noqa: S608
        f"(SELECT {theirs} FROM {ref} r WHERE r.{escaped(quote(pk_column))} = ANY(%s)){kept}"
    )
    return sql, params
