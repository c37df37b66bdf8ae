"""PostgreSQL statements of a merge and its undo: lock, snapshot, re-point, delete, restore.

Every statement works on a whole set of rows (``= ANY(array)``), so a merge
costs a number of statements that depends on the relations, never on the
number of rows. Identifiers are quoted; values are parameters. Snapshots are
``row_to_json`` of the stored row and restores go through
``json_populate_recordset`` of the table's own row type, so every column comes
back with its exact type and value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Func, IntegerField, QuerySet

from integrity.db import escaped, quote, quote_table
from integrity.reads import sqlstate

LOCK_NOT_AVAILABLE = "55P03"
# A statement and its parameters: what each writing function below executes, built by its ``*_sql``
# twin so that the confirmation pages show the very statements (``shown``).
Statement = tuple[str, list[Any]]


class RowsBusy(Exception):
    """Another transaction holds the rows (or table) past ``lock_timeout``."""


class RowHash(Func):
    """``hashtext(x::text)``: an order-independent digest of a set of keys, summed."""

    template = "hashtext((%(expressions)s)::text)::bigint"
    output_field = IntegerField()


def table_name(connection: BaseDatabaseWrapper, db_table: str) -> str:
    """The quoted table name (:func:`integrity.db.quote_table`); ``"schema"."table"`` names are kept as they are."""
    return quote_table(db_table)


def _name(name: str) -> str:
    """A column name in a statement with parameters: quoted, ``%`` doubled."""
    return escaped(quote(name))


def _is_busy(exc: BaseException) -> bool:
    return sqlstate(exc) == LOCK_NOT_AVAILABLE


EXISTS_PER_STATEMENT = 500  # well under PostgreSQL's 1,664 entries of a select list


def queryset_sql(qs: QuerySet[Any]) -> Statement | None:
    """The queryset's SELECT on its own database; None when it can match no row (``__in`` an empty list)."""
    try:
        sql, params = qs.query.get_compiler(using=qs.db).as_sql()
    except EmptyResultSet:
        return None
    return sql, list(params)


def exist_each(cursor: Any, selects: Sequence[Statement | None]) -> list[bool]:
    """For each SELECT, whether it finds a row, in one statement per 500 (None: a SELECT matching nothing).

    A merge checks every relation of the model before it deletes: one round
    trip for all of them instead of one for each.
    """
    found = [False] * len(selects)
    asked = [(i, s) for i, s in enumerate(selects) if s is not None]
    for start in range(0, len(asked), EXISTS_PER_STATEMENT):
        part = asked[start : start + EXISTS_PER_STATEMENT]
        cursor.execute(
            "SELECT " + ", ".join(f"EXISTS ({sql})" for _i, (sql, _params) in part),
            [p for _i, (_sql, params) in part for p in params],
        )
        for (i, _s), value in zip(part, cursor.fetchone(), strict=True):
            found[i] = bool(value)
    return found


def set_lock_timeout(cursor: Any, ms: int) -> None:
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(ms)}ms"])


def shown(connection: BaseDatabaseWrapper, statement: Statement) -> str:
    """A statement as it runs, its values inlined: as Django's PostgreSQL backend logs it (``connection.queries``)."""
    return str(connection.ops.compose_sql(*statement))  # type: ignore[attr-defined]


def lock_rows_sql(table: str, pk: str, pks: Sequence[Any]) -> Statement:
    table = escaped(table)  # spliced into a statement with parameters
    qn = _name
    return (
        f"SELECT {qn(pk)} FROM {table} WHERE {qn(pk)} = ANY(%s) ORDER BY {qn(pk)} FOR UPDATE",  # noqa: S608
        [list(pks)],
    )


def lock_rows(cursor: Any, table: str, pk: str, pks: Sequence[Any]) -> list[Any]:
    """``SELECT pk … FOR UPDATE`` of the given rows; the primary keys found. ``RowsBusy`` on timeout."""
    try:
        cursor.execute(*lock_rows_sql(table, pk, pks))
    except OperationalError as exc:
        if _is_busy(exc):
            raise RowsBusy(table) from exc
        raise
    return [row[0] for row in cursor.fetchall()]


def lock_tables_sql(tables: Sequence[str]) -> Statement:
    return f"LOCK TABLE {escaped(', '.join(tables))} IN SHARE ROW EXCLUSIVE MODE", []


def lock_tables(cursor: Any, tables: Sequence[str]) -> None:
    """Block writes to ``tables`` until commit (``SHARE ROW EXCLUSIVE``); ``RowsBusy`` on timeout."""
    if not tables:
        return
    try:
        cursor.execute(*lock_tables_sql(tables))
    except OperationalError as exc:
        if _is_busy(exc):
            raise RowsBusy(", ".join(tables)) from exc
        raise


class _Number(str):
    """A JSON number's own text, kept until it is known whether a Python number holds it exactly."""


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _parsed(value: Any) -> Any:
    """Numbers inside a JSON value as ``json.loads`` reads them (as a ``JSONField`` would)."""
    if isinstance(value, _Number):
        return _number(value)
    if isinstance(value, list):
        return [_parsed(v) for v in value]
    if isinstance(value, dict):
        return {k: _parsed(v) for k, v in value.items()}
    return value


def _exact(number: int | float, text: str) -> bool:
    """Whether ``number`` is ``text``'s value, also once jsonb (the merge record) has written it out again."""
    if isinstance(number, int):
        return text != "-0"
    if number.is_integer():  # jsonb writes it without exponent, so it is read back as an int
        return Decimal(number) == Decimal(text)
    return Decimal(repr(number)) == Decimal(text)


def _column_value(value: Any) -> Any:
    # A float cannot hold every numeric (1234567890.1234567891 would come back
    # rounded, 9999999999.9999999999 would overflow numeric(20,10)), nor -0,
    # and jsonb turns 3.4028235e+38 into another integer: such a number stays
    # its text, which the column's own type reads back exactly.
    if isinstance(value, _Number):
        number = _number(value)
        return number if _exact(number, value) else str(value)
    return _parsed(value)


def snapshot(cursor: Any, table: str, pk: str, pks: Sequence[Any]) -> list[dict[str, Any]]:
    """Every column of the given rows, as ``row_to_json`` stores it, by primary key.

    A column's number that no Python number holds exactly (a long ``numeric``, -0)
    comes as its text, so that a restore puts back the very value.
    """
    table = escaped(table)  # spliced into a statement with parameters
    if not pks:
        return []
    qn = _name
    # t.* (not t): a column named t would win over the whole row. As text, so
    # that numbers are read here rather than rounded to floats by the driver.
    cursor.execute(
        f"SELECT row_to_json(t.*)::text FROM {table} t WHERE t.{qn(pk)} = ANY(%s) ORDER BY t.{qn(pk)}",  # noqa: S608
        [list(pks)],
    )
    rows = [json.loads(row[0], parse_float=_Number, parse_int=_Number) for row in cursor.fetchall()]
    return [{name: _column_value(value) for name, value in row.items()} for row in rows]


def repoint_sql(
    connection: BaseDatabaseWrapper,
    where: tuple[str, str, str],
    new: Any,
    olds: Sequence[Any],
    content_type: tuple[str, int] | None = None,
) -> Statement:
    """The statement of ``repoint``; ``where``: (table, primary key column, the column re-pointed)."""
    table, pk, column = (
        escaped(where[0]),
        where[1],
        where[2],
    )  # the table spliced into a statement with parameters
    qn = _name

    def matching(alias: str) -> str:
        ct = f" AND {alias}{qn(content_type[0])} = %s" if content_type is not None else ""
        return f"{alias}{qn(column)} = ANY(%s){ct}"

    params: list[Any] = [list(olds)] + ([content_type[1]] if content_type is not None else [])
    # PostgreSQL 18 returns the old value itself (one pass). Before it, the old
    # values come from a self-join; a row changed meanwhile is re-checked
    # against the WHERE (EvalPlanQual) and skipped if it no longer matches, and
    # the join's old value cannot be stale: the merge holds the members FOR
    # UPDATE, so no transaction can commit a row that moves from one member to
    # another (its foreign key check needs a lock on the member), and it holds
    # the generic tables (which have no such check) against all writes.
    if connection.pg_version >= 180000:  # type: ignore[attr-defined]
        # Named aliases: in a table called "old", old.col would be the new value.
        statement = (
            f"UPDATE {table} AS t SET {qn(column)} = %s WHERE {matching('t.')} "  # noqa: S608
            f"RETURNING WITH (OLD AS o) t.{qn(pk)}, o.{qn(column)}"
        )
    else:
        statement = (
            f"UPDATE {table} t SET {qn(column)} = %s FROM (SELECT {qn(pk)} AS pk, {qn(column)} AS old "  # noqa: S608
            f"FROM {table} WHERE {matching('')}) o WHERE t.{qn(pk)} = o.pk AND {matching('t.')} RETURNING t.{qn(pk)}, o.old"
        )
        params = [*params, *params]
    return statement, [new, *params]


def repoint(
    cursor: Any,
    table: str,
    pk: str,
    column: str,
    new: Any,
    olds: Sequence[Any],
    content_type: tuple[str, int] | None = None,
) -> list[tuple[Any, Any]]:
    """Set ``column`` to ``new`` where it holds one of ``olds``: one statement; ``(pk, old value)`` per row.

    The primary key returned is the row's after the update: the column may be
    (part of) the key itself, and the undo finds the row by it.
    """
    cursor.execute(*repoint_sql(cursor.db, (table, pk, column), new, olds, content_type))
    return cursor.fetchall()


def delete_sql(table: str, pk: str, pks: Sequence[Any]) -> Statement:
    return f"DELETE FROM {escaped(table)} WHERE {_name(pk)} = ANY(%s)", [list(pks)]  # noqa: S608


def delete(cursor: Any, table: str, pk: str, pks: Sequence[Any]) -> int:
    """``DELETE`` exactly these rows, nothing else (no cascade: the caller checked the references)."""
    if not pks:
        return 0
    cursor.execute(*delete_sql(table, pk, pks))
    return int(cursor.rowcount)


def _insertable_columns(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def restore_sql(cursor: Any, table: str, rows: Sequence[dict[str, Any]]) -> Statement:
    """The statement of ``restore`` (the table's columns read from the catalog)."""
    qn = _name
    columns = ", ".join(qn(c) for c in _insertable_columns(cursor, table))
    table = escaped(table)  # spliced into a statement with parameters
    return (
        f"INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE "  # noqa: S608
        f"SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)",
        [json.dumps(list(rows), cls=DjangoJSONEncoder)],
    )


def restore(cursor: Any, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert snapshotted rows back with their own primary keys and values; the number inserted."""
    if not rows:
        return 0
    cursor.execute(*restore_sql(cursor, table, rows))
    return int(cursor.rowcount)


def restore_columns_sql(table: str, pk: str, row: dict[str, Any], columns: Sequence[str]) -> Statement:
    table = escaped(table)  # spliced into a statement with parameters
    qn = _name
    names = ", ".join(qn(c) for c in columns)
    return (
        f"UPDATE {table} t SET ({names}) = (SELECT {names} FROM json_populate_record(NULL::{table}, %s::json)) "  # noqa: S608
        f"WHERE t.{qn(pk)} = (SELECT {qn(pk)} FROM json_populate_record(NULL::{table}, %s::json))",
        [json.dumps(row, cls=DjangoJSONEncoder), json.dumps(row, cls=DjangoJSONEncoder)],
    )


def restore_columns(cursor: Any, table: str, pk: str, row: dict[str, Any], columns: Sequence[str]) -> int:
    """Set ``columns`` of one row back to the snapshotted values in ``row``."""
    if not columns:
        return 0
    cursor.execute(*restore_columns_sql(table, pk, row, columns))
    return int(cursor.rowcount)


def _column_type(cursor: Any, table: str, column: str) -> str:
    # Without the type modifier: an explicit CAST to varchar(n) would silently
    # truncate a value; the assignment to the column checks its length instead.
    cursor.execute(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
        [table, column],
    )
    return str(cursor.fetchone()[0])


def move_back_sql(cursor: Any, moved: dict[str, Any], old: Any, pks: Sequence[Any]) -> Statement:
    """The statement of ``move_back`` for one entry of a merge record's ``moved`` (types read from the catalog)."""
    qn = _name
    table, pk, column, content_type = (
        moved["table"],
        moved["pk_column"],
        moved["column"],
        moved["content_type"],
    )
    # Values come back from JSON (a UUID as text): cast them to the columns' own types.
    pk_type, col_type = _column_type(cursor, table, pk), _column_type(cursor, table, column)
    table = escaped(table)  # spliced into a statement with parameters
    where = f"{qn(pk)} = ANY(CAST(%s AS {pk_type}[])) AND {qn(column)} = CAST(%s AS {col_type})"
    params: list[Any] = [old, [str(p) for p in pks], str(moved["new"])]
    if content_type:
        where += f" AND {qn(str(content_type[0]))} = %s"
        params.append(content_type[1])
    return f"UPDATE {table} SET {qn(column)} = CAST(%s AS {col_type}) WHERE {where}", params  # noqa: S608


def move_back(
    cursor: Any,
    table: str,
    pk: str,
    column: str,
    new: Any,
    old: Any,
    pks: Sequence[Any],
    content_type: Sequence[Any] | None = None,
) -> int:
    """Point rows ``pks`` back from ``new`` to ``old``, only where they still hold ``new``; how many were."""
    moved = {"table": table, "pk_column": pk, "column": column, "new": new, "content_type": content_type}
    cursor.execute(*move_back_sql(cursor, moved, old, pks))
    return int(cursor.rowcount)


def missing_columns(cursor: Any, wanted: dict[str, list[str]]) -> list[str]:
    """``table.column`` for each of ``wanted`` (quoted table -> column names) that the database does not hold."""
    if not wanted:
        return []
    cursor.execute(
        "SELECT w.name, a.attname FROM unnest(%s::text[]) AS w(name) "
        "JOIN pg_attribute a ON a.attrelid = to_regclass(w.name) AND a.attnum > 0 AND NOT a.attisdropped",
        [list(wanted)],
    )
    present = {(name, column) for name, column in cursor.fetchall()}
    return [
        f"{table}.{column}"
        for table, columns in wanted.items()
        for column in columns
        if (table, column) not in present
    ]
