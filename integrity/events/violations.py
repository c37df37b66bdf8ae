"""What an ``IntegrityError`` says: kind, constraint, table, key columns and values, model and rule.

``parse()`` reads the driver's exception only (psycopg 3 / psycopg2 ``diag``,
sqlite3 and MySQL message texts) and maps tables and columns to models through
``_meta``: it never touches the database, so it is safe inside a failed
transaction. ``resolve()`` may read the catalogs to name the rule an
unusually named index enforces, and does so only on a usable connection.
"""

from __future__ import annotations

import ast
import contextlib
import re
from dataclasses import dataclass, replace
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections
from django.db.models import Model

from integrity.db import models_for_alias
from integrity.duplicates.enforcement import classify
from integrity.duplicates.rules import CONFIGURED, FIELD, Rule, rules_for_alias

UNIQUE, FOREIGN_KEY, NOT_NULL, CHECK, EXCLUSION = "unique", "foreign key", "not null", "check", "exclusion"
UNKNOWN = "unknown"
# DataErrors of a sequence that ran out: nextval past the sequence's own limit, or a value past the column's.
SEQUENCE_LIMIT, OUT_OF_RANGE = "sequence limit", "out of range"
DATA_SQLSTATES = {"2200H": SEQUENCE_LIMIT, "22003": OUT_OF_RANGE}
SQLSTATES = {"23505": UNIQUE, "23503": FOREIGN_KEY, "23502": NOT_NULL, "23514": CHECK, "23P01": EXCLUSION}
SQLSTATES |= DATA_SQLSTATES
MYSQL_CODES = {1062: UNIQUE, 1586: UNIQUE, 1048: NOT_NULL, 3819: CHECK, 4025: CHECK}  # 4025: MariaDB
MYSQL_CODES |= dict.fromkeys((1216, 1217, 1451, 1452), FOREIGN_KEY)
MYSQL_PARENT_CODES = {1217, 1451}  # "Cannot delete or update a parent row"
SQLITE_PRIMARY_KEY_CODES = {1555, 2579}  # SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_ROWID


@dataclass(frozen=True)
class Violation:
    """One parsed integrity violation.

    ``table`` is the table of the row being written or deleted, so ``columns``
    and ``fields`` are its own: for a foreign key, the referencing table,
    except on a delete ("still referenced"), where it is the referenced one and
    ``referenced_table`` names the table still pointing at it.
    """

    kind: str
    sqlstate: str | None
    vendor: str
    constraint: str | None
    schema: str | None
    table: str | None
    columns: tuple[str, ...]
    values: tuple[str | None, ...]
    message: str
    detail: str | None
    referenced_table: str | None = None
    model: str | None = None
    fields: tuple[str, ...] = ()
    rule: str | None = None
    primary_key: bool = False
    sequence: str | None = None  # the sequence a "sequence limit" error names


def parse(exc: BaseException, alias: str = "default") -> Violation:
    """The ``Violation`` an ``IntegrityError`` (Django's or the driver's) describes, mapped to models on ``alias``.

    Never runs a query. What the driver does not say stays ``None`` or empty;
    the kind is ``UNKNOWN`` when neither SQLSTATE, error code nor text tell it.
    """
    driver = _driver_error(exc)
    diag, module = getattr(driver, "diag", None), type(driver).__module__
    vendor = connections[alias].vendor if alias in connections else None
    code, text = (None, "") if diag is not None else _mysql_code(driver)
    if diag is not None:
        violation = _postgresql(driver, diag)
    elif code is not None or module.startswith(("MySQLdb", "pymysql")) or vendor == "mysql":
        violation = _mysql(code, text)
    elif module.startswith("sqlite3") or vendor == "sqlite" or _SQLITE.match(text):
        violation = _sqlite(driver)
    else:
        violation = _postgresql(driver, None)  # the text alone: "...\nDETAIL:  Key ..."
    if violation.kind in (SEQUENCE_LIMIT, OUT_OF_RANGE):
        violation = _ran_out(violation, getattr(exc, "integrity_sql", None))
    return _mapped(violation, alias) if vendor and violation.table else violation


def resolve(violation: Violation, alias: str = "default") -> Violation:
    """``violation`` with the rule its constraint enforces, found in the catalogs when ``_meta`` could not tell.

    Only for a unique violation on a known model of a PostgreSQL alias, and
    only when that connection is usable (not inside a failed transaction):
    otherwise ``violation`` comes back unchanged, and no query runs.
    """
    if violation.kind != UNIQUE or violation.rule or violation.primary_key or not violation.model:
        return violation
    connection = connections[alias]
    if connection.vendor != "postgresql" or not violation.constraint or not _usable(connection):
        return violation
    try:
        enforcements = classify(_rules(alias, apps.get_model(violation.model)))
    except DatabaseError:  # the catalogs could not be read: _meta's answer stands
        return violation
    key = next((k for k, e in enforcements.items() if e.index == violation.constraint), None)
    return replace(violation, rule=key) if key else violation


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception: Django raises its wrapper ``from`` it."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    return next((e for e in chain if getattr(e, "diag", None) is not None), chain[-1])


def _new(kind: str, vendor: str, message: str, **known: Any) -> Violation:
    fields: dict[str, Any] = dict.fromkeys(("sqlstate", "constraint", "schema", "table", "detail"))
    fields |= {"columns": (), "values": (), **known}
    return Violation(kind=kind, vendor=vendor, message=message, **fields)


def _search(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found[1] if found else None


# PostgreSQL -----------------------------------------------------------------------------------

_PG_KINDS = {"not-null": NOT_NULL} | {k: k for k in (UNIQUE, FOREIGN_KEY, CHECK, EXCLUSION)}
_KEY_END = re.compile(
    r'\)(?: already exists| is duplicated| is not present in table "(?P<present>.*)"'
    r'| is still referenced from table "(?P<referencing>.*)")\.\Z',
    re.S,
)


def _postgresql(driver: BaseException, diag: Any) -> Violation:
    text_message, _sep, rest = str(driver).partition("\nDETAIL:  ")

    def get(name: str) -> Any:
        return getattr(diag, name, None)

    message = get("message_primary") or text_message.removeprefix("ERROR:  ")
    detail = get("message_detail") or (rest.split("\n", 1)[0] or None)
    sqlstate = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None) or get("sqlstate")
    said = _search(r"(unique|foreign key|not-null|check|exclusion) constraint", message) or ""
    kind = SQLSTATES.get(sqlstate or "") or _PG_KINDS.get(said, UNKNOWN)
    constraint = get("constraint_name") or _search(r'constraint "(.+?)"', message)
    table = get("table_name") or _search(r'(?:table|relation) "(.+?)"', message)
    v = _new(kind, "postgresql", message, sqlstate=sqlstate, detail=detail, constraint=constraint)
    v = replace(v, schema=get("schema_name"), table=table)
    if kind == NOT_NULL:
        column = get("column_name") or _search(r'column "(.+?)"', message)
        return replace(v, columns=(column,), values=(None,)) if column else v
    if kind not in (UNIQUE, FOREIGN_KEY, EXCLUSION) or not detail:
        return v
    columns, values, present, referencing = _key(detail)
    v = replace(v, columns=columns, values=values, referenced_table=present)
    parent = _search(r'^update or delete on table "(.+?)" violates', message)
    if referencing and parent:  # a delete: the key is the referenced table's, whose schema is not said
        v = replace(v, table=parent, schema=None, referenced_table=referencing)
    return replace(v, primary_key=kind == UNIQUE and constraint == f"{v.table}_pkey")  # PostgreSQL's name


def _key(detail: str) -> tuple[tuple[str, ...], tuple[str | None, ...], str | None, str | None]:
    """Columns, values and the other table of ``Key (a, b)=(1, 2) ...``."""
    start = detail.find("(") + 1
    end = _closing(detail, start)
    if not start or end is None or detail[end : end + 3] != ")=(":
        return (), (), None, None
    columns = tuple(_unquote(c) for c in _split(detail[start:end]))
    rest = detail[end + 3 :]
    conflict = rest.find(f") conflicts with existing key ({detail[start:end]})=(")
    found = _KEY_END.search(rest)
    present = referencing = None
    if conflict >= 0:
        text = rest[:conflict]
    elif found:
        text, present, referencing = rest[: found.start()], found["present"], found["referencing"]
    else:  # another language: the values end at the last parenthesis
        text = rest[: rest.rfind(")")]
    parts = text.split(", ") if len(columns) > 1 else [text]
    if len(parts) != len(columns):
        parts = [text]  # some value holds ", ": which one is not knowable, so the text stays whole
    return columns, tuple(None if p == "null" else p for p in parts), present, referencing


def _scan(text: str, start: int = 0) -> Any:
    """``(index, char, depth)`` of each character outside quoted names and literals."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        char = text[i]
        if quote:  # a doubled quote closes and reopens at once: same result
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        else:
            depth += (char in "([") - (char in ")]")
            yield i, char, depth


def _closing(text: str, start: int) -> int | None:
    """Index of the parenthesis closing the one just before ``start``."""
    return next((i for i, char, depth in _scan(text, start) if char == ")" and depth == -1), None)


def _split(text: str) -> list[str]:
    """Split at the commas outside parentheses and quotes (an index's key list)."""
    cuts = [i for i, char, depth in _scan(text) if char == "," and depth == 0]
    return [text[a + 1 : b].strip() for a, b in zip([-1, *cuts], [*cuts, len(text)], strict=True)]


def _unquote(name: str) -> str:
    if len(name) > 1 and name[0] == name[-1] == '"' and '"' not in name[1:-1].replace('""', ""):
        return name[1:-1].replace('""', '"')
    return name


# A sequence that ran out ------------------------------------------------------------------------

_NAME = r'(?:"(?:[^"]|"")+"|[^\s."(]+)'
_INSERT = re.compile(rf"^\s*INSERT\s+INTO\s+(?P<first>{_NAME})(?:\.(?P<second>{_NAME}))?", re.I)


def inserted_table(sql: str | None) -> tuple[str | None, str | None]:
    """``(schema, table)`` of an ``INSERT INTO [schema.]table`` statement; ``(None, None)`` for another one."""
    found = _INSERT.match(sql or "")
    if found is None:
        return None, None
    first, second = _unquote(found["first"]), found["second"]
    return (first, _unquote(second)) if second else (None, first)


def _ran_out(v: Violation, sql: str | None) -> Violation:
    """The sequence (2200H names it) and the table the failing INSERT wrote to (neither error names it)."""
    sequence = _search(r'value of sequence "(.+?)"', v.message)
    schema, table = inserted_table(sql)
    v = replace(v, sequence=sequence, constraint=None)
    return replace(v, schema=schema, table=table) if table and not v.table else v


# SQLite and MySQL: message texts ---------------------------------------------------------------

_SQLITE = re.compile(r"(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) constraint failed(?:: (.*))?\Z", re.S)
_SQLITE_KINDS = {"UNIQUE": UNIQUE, "NOT NULL": NOT_NULL, "CHECK": CHECK, "FOREIGN KEY": FOREIGN_KEY}


def _sqlite(driver: BaseException) -> Violation:
    message = str(driver)
    found = _SQLITE.match(message)
    v = _new(_SQLITE_KINDS[found[1]] if found else UNKNOWN, "sqlite", message)
    what = (found[2] if found else None) or ""
    v = replace(v, primary_key=getattr(driver, "sqlite_errorcode", None) in SQLITE_PRIMARY_KEY_CODES)
    if v.kind == CHECK or (what.startswith("index '") and what.endswith("'")):
        return replace(v, constraint=what.removeprefix("index '").removesuffix("'") or None)
    if not what:
        return v
    pairs = [item.rpartition(".") for item in what.split(", ")]
    v = replace(v, table=pairs[0][0] or None, columns=tuple(p[2] for p in pairs))
    return replace(v, values=(None,)) if v.kind == NOT_NULL else v


_TICKED = r"`(?:[^`]|``)+`"
_MYSQL_FK = re.compile(
    rf"\((?P<child>{_TICKED}(?:\.{_TICKED})?), CONSTRAINT (?P<name>{_TICKED}) FOREIGN KEY \((?P<cols>[^)]*)\)"
    rf" REFERENCES (?P<parent>{_TICKED}(?:\.{_TICKED})?) \((?P<refcols>[^)]*)\)"
)


def _ticked(text: str) -> list[str]:
    return [name[1:-1].replace("``", "`") for name in re.findall(_TICKED, text)]


_MYSQL_TEXTS = {"Duplicate entry '": 1062, "Column '.*' cannot be null": 1048, "Check constraint '": 3819}
_MYSQL_TEXTS |= {"Cannot add or update a child row": 1452, "Cannot delete or update a parent row": 1451}


def _mysql_code(driver: BaseException) -> tuple[int | None, str]:
    """MySQL's error code and message: from ``args``, their text ``(1062, "...")``, or the message's start."""
    args: Any = driver.args
    if not (args and isinstance(args[0], int)) and str(driver).startswith("("):
        with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
            args = ast.literal_eval(str(driver))
    if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    text = str(driver)
    return next((code for start, code in _MYSQL_TEXTS.items() if re.match(start, text)), None), text


def _mysql(code: int | None, message: str) -> Violation:
    v = _new(MYSQL_CODES.get(code or 0, UNKNOWN), "mysql", message)
    at = message.rfind("' for key '")
    if v.kind == UNIQUE and at > 0 and message.startswith("Duplicate entry '"):
        table, _dot, key = message[at + 11 :].removesuffix("'").rpartition(".")
        # Several columns' values are joined with "-": the entry is kept whole.
        v = replace(v, constraint=key, table=table or None, values=(message[17:at],))
        return replace(v, primary_key=key == "PRIMARY")
    if v.kind == FOREIGN_KEY and (fk := _MYSQL_FK.search(message)):
        *db, child = _ticked(fk["child"])
        parent = _ticked(fk["parent"])[-1]
        v = replace(v, constraint=_ticked(fk["name"])[0], schema=db[0] if db else None)
        if code in MYSQL_PARENT_CODES:  # a delete: the key is the parent's
            return replace(v, table=parent, columns=tuple(_ticked(fk["refcols"])), referenced_table=child)
        return replace(v, table=child, columns=tuple(_ticked(fk["cols"])), referenced_table=parent)
    if v.kind == NOT_NULL and (column := _search(r"^Column '(.+)' cannot be null", message)):
        return replace(v, columns=(column,), values=(None,))
    # MySQL: "Check constraint 'c' is violated."; MariaDB: "CONSTRAINT `c` failed for `db`.`t`".
    if v.kind == CHECK:
        names = _ticked(message)
        name = _search(r"^Check constraint '(.+)' is violated", message) or next(iter(names), None)
        v = replace(v, constraint=name)
        return replace(v, schema=names[1], table=names[2]) if len(names) == 3 else v
    return v


# Models, fields and rules, from _meta ----------------------------------------------------------


def _mapped(v: Violation, alias: str) -> Violation:
    model = _model_for(v, alias)
    if model is None:
        return v
    pk = tuple(f.column for f in getattr(model._meta, "pk_fields", [model._meta.pk]))
    primary_key = v.primary_key or (v.kind == UNIQUE and bool(v.columns) and sorted(v.columns) == sorted(pk))
    rule = None if primary_key or v.kind != UNIQUE else _rule(v, alias, model)
    # MySQL and SQLite's expression indexes name no column: the key's, once known, are said.
    columns = v.columns or (pk if primary_key else rule.columns if rule else ())
    by_column = {f.column: f for f in model._meta.concrete_fields}
    found = [by_column.get(c) for c in columns]
    values = v.values
    if v.kind != NOT_NULL and len(found) == len(values):
        # PostgreSQL prints SQL NULL and the text 'null' alike: a NOT NULL column holds the text.
        texts = [x is None and f is not None and not f.null for x, f in zip(values, found, strict=True)]
        values = tuple("null" if text else x for x, text in zip(values, texts, strict=True))
    if v.sequence and not columns:  # PostgreSQL names a column's own sequence <table>_<column>_seq
        found = [f for f in model._meta.concrete_fields if v.sequence == f"{v.table}_{f.column}_seq"]
        columns = tuple(f.column for f in found if f is not None)
    fields = tuple(f.name for f in found if f) if all(found) else ()
    label, key = model._meta.label, rule.key if rule else None
    return replace(
        v, model=label, columns=columns, fields=fields, values=values, primary_key=primary_key, rule=key
    )


def _split_table(db_table: str) -> tuple[str | None, str]:
    """``(schema, table)`` of a ``db_table``: ``'"archive"."entry"'`` is qualified, ``"entry"`` is not."""
    found = re.fullmatch(r'"([^"]+)"\."([^"]+)"', db_table)
    return (found[1], found[2]) if found else (None, db_table)


def _search_path(alias: str) -> list[str]:
    options = connections[alias].settings_dict.get("OPTIONS", {}).get("options", "")
    path = _search(r"search_path\s*=\s*(\S+)", str(options))
    return [s.strip('"') for s in path.split(",")] if path else ["public"]


def _model_for(v: Violation, alias: str) -> type[Model] | None:
    """The model of ``v.table``: a schema-qualified ``db_table`` first, then an unqualified one on the search path."""
    found = [
        (s, m) for m in models_for_alias(alias) for s, t in [_split_table(m._meta.db_table)] if t == v.table
    ]
    qualified = [m for s, m in found if s is not None and s == v.schema]
    plain = [m for s, m in found if s is None]
    if qualified or (v.schema is None and not plain and len(found) == 1):
        return (qualified or [found[0][1]])[0]
    # MySQL's "schema" is the database itself, where every unqualified table of the alias lives.
    visible = v.schema is None or v.vendor != "postgresql" or v.schema in _search_path(alias)
    return plain[0] if plain and visible else None


def _rules(alias: str, model: type[Model]) -> list[Rule]:
    # A configured rule has no index: no database error comes from one.
    return [r for r in rules_for_alias(alias, [model]) if r.kind != CONFIGURED]


def _rule(v: Violation, alias: str, model: type[Model]) -> Rule | None:
    """The rule the violated constraint enforces: by the constraint's name, else by exactly its columns."""
    rules = _rules(alias, model)
    for r in rules:
        # MySQL names the index of a unique=True column after the column.
        if r.name == v.constraint or (
            v.vendor == "mysql" and r.kind == FIELD and r.columns == (v.constraint,)
        ):
            return r
    matches = [r for r in rules if not r.expressions and v.columns and sorted(r.columns) == sorted(v.columns)]
    for candidates in (matches, [r for r in matches if r.condition is None]):
        if len(candidates) == 1:
            return candidates[0]
    return None


def _usable(connection: Any) -> bool:
    """May a query run on ``connection`` now? Not inside a failed (or unknown) transaction."""
    if connection.needs_rollback:
        return False
    raw = connection.connection
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    if status is None:
        return raw is None and not connection.in_atomic_block
    return int(status) in (0, 2)  # IDLE, INTRANS: psycopg and psycopg2 number them alike
