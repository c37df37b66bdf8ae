"""Benchmark: sequence status through the app against the fastest hand-written SQL.

``python benchmarks/sequences.py [--tables 1000] [--repeat 7] [--profile] [--scale-base 1000]``

Creates a throwaway database on the configured PostgreSQL server (the
embedded one without ``DATABASE_URL``), migrates it, defines ``--tables`` real
models (registered in the installed ``demo`` app, so ``apps.get_models()``
returns them), creates their tables and fills them with a realistic mix:
sequences behind (rows with explicit ids), ok, ok after a resync
(``is_called = false``), ahead (gaps), empty, near overflow; every tenth
model also has a non-key ``number`` column fed by a serial or a bare
``DEFAULT nextval()`` sequence.

Then, interleaved, on one warm connection, it times

(a) ``integrity.sequences.collect(["default"])``, the app, against
(b) hand-written SQL giving the same answer for the same tables (several
    variants; the fastest one whose statuses equal the app's for every
    sequence is the baseline),

and renders the admin page ``/admin/integrity/sequence/`` (default first
page) as a superuser with Django's test client. Targets: (a) <= 1.5 x (b),
page <= 1.5 x (a); with more ``--tables`` than ``--scale-base`` (1,000), also
collect()'s time per sequence over all the tables <= 1.3 x that over the
first 1,000 (same database, interleaved). At 10,000 tables no one-statement
hand-written variant runs ("stack depth limit exceeded"): they are shown as
raised and (a)/(b) is not applicable. Exit code 0 when every target passes, 1 otherwise; a failing target
prints a cProfile of what failed. The database is dropped at the end, also on
error.

The hand-written variants (all given the same quoted table names the app
passes, computed once outside the timings):

- catalog + UNION ALL: one catalog query (pg_depend: OWNED BY / identity,
  plus column defaults calling nextval), then one UNION ALL reading each
  sequence and its column's MAX, the MAX as a FROM-clause subquery.
- the same with the MAX as a scalar subquery in the select list, which is
  the app's shape: shown only to explain (a) (every scalar subquery becomes
  an InitPlan of the flattened UNION ALL; planning them grows superlinearly).
- PostgreSQL 18+: pg_get_sequence_data() in the catalog query (no sequence
  relation in the second statement, which only computes MAXes).
- PostgreSQL 18+: one statement, MAX through a session-local PL/pgSQL helper.
- pg_sequence_last_value() (what the pg_sequences view uses): NULL whenever
  is_called is false, so a sequence moved by setval(..., false), which is
  what a resync does, looks new: not the same answer, never the baseline.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_STATUS = 1.5  # collect() / hand-written SQL
TARGET_PAGE = 1.5  # admin page / collect()
TARGET_SCALE = 1.3  # collect() per sequence at --tables / per sequence at --scale-base tables
BATCH = 100  # tables per DDL / insert transaction (keeps the lock table small)

Key = tuple[str, str]  # (table name without schema, column)
Answer = dict[Key, tuple[str, int | None, int | None]]  # status, next value, MAX


# --------------------------------------------------------------------------
# Throwaway database and Django set-up
# --------------------------------------------------------------------------


def _server_params(db: dict[str, Any], name: str) -> dict[str, Any]:
    params = {
        "dbname": name,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        **db.get("OPTIONS", {}),
    }
    return {k: v for k, v in params.items() if v is not None}


def _admin_execute(db: dict[str, Any], statement: Any) -> None:
    """Run CREATE/DROP DATABASE from the maintenance database (or the configured one)."""
    import psycopg

    last: Exception | None = None
    for maintenance in ("postgres", db["NAME"]):
        try:
            with psycopg.connect(**_server_params(db, maintenance), autocommit=True, connect_timeout=10) as c:
                c.execute(statement)
            return
        except psycopg.OperationalError as exc:  # maintenance db not reachable: try the next one
            last = exc
    assert last is not None
    raise last


def create_database(db: dict[str, Any], name: str) -> None:
    from psycopg import sql

    _admin_execute(db, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(db: dict[str, Any], name: str) -> None:
    from psycopg import sql

    _admin_execute(db, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def base_database() -> dict[str, Any]:
    """The demo settings' default database (starts the embedded server if needed)."""
    from demo import settings as demo_settings

    return dict(demo_settings.DATABASES["default"])


def configure_django(db: dict[str, Any], name: str) -> None:
    """The demo project's settings, with DEBUG off and ``default`` on the throwaway database."""
    import django
    from django.conf import settings

    from demo import settings as demo_settings

    values = {k: getattr(demo_settings, k) for k in dir(demo_settings) if k.isupper()}
    values.update(DEBUG=False, DATABASES={"default": {**db, "NAME": name}})
    settings.configure(**values)
    django.setup()


# --------------------------------------------------------------------------
# 1,000 real models with a realistic mix of sequence states
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one benchmark table holds."""

    index: int
    pk: str  # "big", "int" or "small"
    scenario: str  # behind, empty, ahead, resynced, gap, ok, near_full, warning
    number: str | None  # None, "serial" (OWNED BY + DEFAULT) or "default" (DEFAULT nextval only)
    rows: int

    @property
    def table(self) -> str:
        return f"bench_{self.index:04d}"


def plan_for(i: int) -> Plan:
    slot = i % 20
    if i % 100 == 99:
        scenario, pk = "near_full", "small"
    elif i % 100 == 49:
        scenario, pk = "warning", "small"
    else:
        scenario = {0: "behind", 1: "behind", 2: "behind", 3: "behind", 4: "empty", 5: "empty"}.get(
            slot, "ok"
        )
        scenario = {6: "ahead", 7: "resynced", 8: "gap"}.get(slot, scenario)
        pk = "int" if i % 3 == 1 else "big"
    number = None
    if i % 10 == 3:
        number = "default" if i % 50 == 13 else "serial"
    return Plan(index=i, pk=pk, scenario=scenario, number=number, rows=3 + i % 4)


def make_model(plan: Plan) -> type[Any]:
    from django.db import models

    pk_field = {"big": models.BigAutoField, "int": models.AutoField, "small": models.SmallAutoField}[plan.pk]
    meta = type("Meta", (), {"app_label": "demo", "db_table": plan.table})
    attrs: dict[str, Any] = {
        "__module__": __name__,
        "Meta": meta,
        "id": pk_field(primary_key=True),
        "name": models.CharField(max_length=50),
    }
    if plan.number:
        attrs["number"] = models.IntegerField(null=True, unique=True)
    return type(f"Bench{plan.index:04d}", (models.Model,), attrs)


def _values(plan: Plan, ids: bool, numbers: bool) -> str:
    rows = []
    for n in range(1, plan.rows + 1):
        cells = ([str(n)] if ids else []) + [f"'row {n}'"] + ([str(n)] if numbers else [])
        rows.append(f"({', '.join(cells)})")
    return ", ".join(rows)


def fill_sql(plan: Plan) -> list[str]:
    """Statements that put ``plan``'s table into its scenario (names are our own, values literals)."""
    t = f'"{plan.table}"'
    seq = f"pg_get_serial_sequence('{t}', 'id')"
    number_seq = f'"{plan.table}_number_seq"'
    out: list[str] = []
    if plan.number:
        owned = f" OWNED BY {t}.number" if plan.number == "serial" else ""
        out += [
            f"CREATE SEQUENCE {number_seq} AS integer{owned}",
            f"ALTER TABLE {t} ALTER COLUMN number SET DEFAULT nextval('{number_seq}')",
        ]
    cols_ids = "(id, name, number)" if plan.number else "(id, name)"
    explicit = f"INSERT INTO {t} {cols_ids} VALUES {_values(plan, True, bool(plan.number))}"  # noqa: S608
    default = f"INSERT INTO {t} (name) VALUES {_values(plan, False, False)}"  # noqa: S608
    if plan.scenario == "behind":  # seed 001: explicit ids, sequence untouched
        out.append(explicit)
    elif plan.scenario == "ahead":
        out += [default, f"SELECT setval({seq}, {plan.rows + 100})"]
    elif plan.scenario == "resynced":  # what the app's resync leaves: is_called = false
        out += [
            f"INSERT INTO {t} (id, name) VALUES {_values(plan, True, False)}",  # noqa: S608
            f"SELECT setval({seq}, {plan.rows + 1}, false)",
        ]
    elif plan.scenario == "gap":
        out += [default, f"DELETE FROM {t} WHERE id > 2"]  # noqa: S608
    elif plan.scenario in ("near_full", "warning"):
        top = 30000 if plan.scenario == "near_full" else 25000
        out += [
            f"INSERT INTO {t} (id, name) VALUES ({top}, 'top')",  # noqa: S608
            f"SELECT setval({seq}, {top + 1}, false)",
        ]
    elif plan.scenario == "ok":
        out.append(default)
    return out


def build_tables(count: int) -> list[type[Any]]:
    from django.apps import apps
    from django.db import connection, transaction

    plans = [plan_for(i) for i in range(count)]
    models = [make_model(p) for p in plans]
    apps.clear_cache()
    for start in range(0, count, BATCH):
        chunk = slice(start, start + BATCH)
        with transaction.atomic(), connection.schema_editor(atomic=False) as editor:
            for model in models[chunk]:
                editor.create_model(model)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(";\n".join(s for p in plans[chunk] for s in fill_sql(p)))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return models


# --------------------------------------------------------------------------
# (b) Hand-written SQL
# --------------------------------------------------------------------------

# Same sequences as the app finds: OWNED BY / identity (deptype a, i) or named
# by a column default (nextval). regclass output is already quoted (and
# schema-qualified when not on the search_path), so it goes straight into SQL.
CATALOG_CTE = """
WITH t AS (SELECT to_regclass(name) AS relid FROM unnest(%s::text[]) AS name),
l AS (
    SELECT d.refobjid AS relid, d.refobjsubid AS attnum, d.objid AS seqid
    FROM t JOIN pg_depend d ON d.refobjid = t.relid
    WHERE d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION
    SELECT ad.adrelid, ad.adnum, d.refobjid
    FROM t JOIN pg_attrdef ad ON ad.adrelid = t.relid
    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                    AND d.refclassid = 'pg_class'::regclass
)
"""

CATALOG_SQL = (
    CATALOG_CTE
    + """
SELECT c.relname, a.attname, l.relid::regclass::text, quote_ident(a.attname),
       l.seqid::regclass::text, s.seqincrement
FROM l
JOIN pg_sequence s ON s.seqrelid = l.seqid
JOIN pg_class c ON c.oid = l.relid
JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = l.attnum
"""
)

# PostgreSQL 18+: pg_get_sequence_data() reads last_value and is_called in
# the catalog query, so the second statement only computes the MAXes.
CATALOG_DATA_SQL = (
    CATALOG_CTE
    + """
SELECT c.relname, a.attname, l.relid::regclass::text, quote_ident(a.attname),
       s.seqincrement, v.last_value, v.is_called
FROM l
JOIN pg_sequence s ON s.seqrelid = l.seqid
JOIN pg_class c ON c.oid = l.relid
JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = l.attnum
CROSS JOIN LATERAL pg_get_sequence_data(l.seqid) v
"""
)

# Lossy: pg_sequence_last_value() is NULL whenever is_called is false, so a
# resynced sequence (setval(..., false)) is indistinguishable from a new one.
# The best reading of it: NULL means "not called yet", next value = START.
CATALOG_LASTVALUE_SQL = CATALOG_DATA_SQL.replace(
    "v.last_value, v.is_called",
    "coalesce(pg_sequence_last_value(l.seqid), s.seqstart), pg_sequence_last_value(l.seqid) IS NOT NULL",
).replace("CROSS JOIN LATERAL pg_get_sequence_data(l.seqid) v", "")

# One statement: the per-table MAX is dynamic SQL, run by a session-local
# PL/pgSQL helper (query_to_xml() would do it too, but needs a server built
# with libxml, which the embedded one is not).
EXTREME_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.bench_extreme(rel regclass, col name, inc bigint) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE result bigint;
BEGIN
    EXECUTE format('SELECT %s(%I)::bigint FROM %s', CASE WHEN inc > 0 THEN 'max' ELSE 'min' END, col, rel)
    INTO result;
    RETURN result;
END $$
"""

SINGLE_SQL = (
    CATALOG_CTE
    + """
SELECT c.relname, a.attname, s.seqincrement, v.last_value, v.is_called,
       pg_temp.bench_extreme(l.relid::regclass, a.attname, s.seqincrement)
FROM l
JOIN pg_sequence s ON s.seqrelid = l.seqid
JOIN pg_class c ON c.oid = l.relid
JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = l.attnum
CROSS JOIN LATERAL pg_get_sequence_data(l.seqid) v
"""
)


def _db() -> Any:
    from django.db import connection

    return connection


def status_of(increment: int, next_value: int | None, extreme: int | None) -> str:
    if next_value is None:
        return "unreadable"
    if extreme is None:
        return "empty"
    if (increment > 0 and next_value <= extreme) or (increment < 0 and next_value >= extreme):
        return "behind"
    return "ok" if next_value == extreme + increment else "ahead"


def _answer(rows: list[tuple[str, str, int, int | None, bool | None, int | None]]) -> Answer:
    """rows: (table, column, increment, last_value, is_called, extreme) -> statuses."""
    out: Answer = {}
    for table, column, inc, last, called, extreme in rows:
        nxt = None if last is None else (last + inc if called else last)
        out[(table, column)] = (status_of(inc, nxt, extreme), nxt, extreme)
    return out


def _agg(increment: int) -> str:
    return "max" if increment > 0 else "min"


def baseline_union(tables: list[str]) -> Answer:
    """Catalog query, then one UNION ALL reading every sequence and its column's MAX.

    The MAX is a FROM-clause subquery, not a scalar subquery in the select
    list: scalar subqueries become one InitPlan each at the level of the
    flattened UNION ALL, and planning 1,000 of them there is ~3x slower.
    """
    with _db().cursor() as cursor:
        cursor.execute(CATALOG_SQL, [tables])
        links = cursor.fetchall()
        arms = [
            f"SELECT {i}, last_value, is_called, m FROM {seq}, (SELECT {_agg(inc)}({col}) AS m FROM {rel}) x"  # noqa: S608
            for i, (_, _, rel, col, seq, inc) in enumerate(links)
        ]
        cursor.execute(" UNION ALL ".join(arms))
        state = {r[0]: r[1:] for r in cursor.fetchall()}
    return _answer([(t, c, inc, *state[i]) for i, (t, c, _, _, _, inc) in enumerate(links)])


def baseline_app_shape(tables: list[str]) -> Answer:
    """Diagnostic, not a contender: the app's states SQL shape (scalar ``(SELECT MAX()::bigint)`` per arm)."""
    with _db().cursor() as cursor:
        cursor.execute(CATALOG_SQL, [tables])
        links = cursor.fetchall()
        arms = [
            f"SELECT {i}, last_value, is_called, (SELECT {_agg(inc)}({col})::bigint FROM {rel}) FROM {seq}"  # noqa: S608
            for i, (_, _, rel, col, seq, inc) in enumerate(links)
        ]
        cursor.execute(" UNION ALL ".join(arms))
        state = {r[0]: r[1:] for r in cursor.fetchall()}
    return _answer([(t, c, inc, *state[i]) for i, (t, c, _, _, _, inc) in enumerate(links)])


def _baseline_maxes(tables: list[str], catalog: str) -> Answer:
    with _db().cursor() as cursor:
        cursor.execute(catalog, [tables])
        links = cursor.fetchall()
        arms = [
            f"SELECT {i}, {_agg(inc)}({col}) FROM {rel}"  # noqa: S608 - names from regclass/quote_ident
            for i, (_, _, rel, col, inc, _, _) in enumerate(links)
        ]
        cursor.execute(" UNION ALL ".join(arms))
        extreme = dict(cursor.fetchall())
    return _answer(
        [(t, c, inc, last, called, extreme[i]) for i, (t, c, _, _, inc, last, called) in enumerate(links)]
    )


def baseline_seqdata(tables: list[str]) -> Answer:
    """Catalog + pg_get_sequence_data() in one query, then one UNION ALL of MAXes (PostgreSQL 18+)."""
    return _baseline_maxes(tables, CATALOG_DATA_SQL)


def baseline_lastvalue(tables: list[str]) -> Answer:
    """Like seqdata, with pg_sequence_last_value() (pg_sequences view): loses is_called = false."""
    return _baseline_maxes(tables, CATALOG_LASTVALUE_SQL)


def baseline_single(tables: list[str]) -> Answer:
    """One statement: catalog, pg_get_sequence_data() and a PL/pgSQL MAX helper (PostgreSQL 18+)."""
    with _db().cursor() as cursor:
        cursor.execute(SINGLE_SQL, [tables])
        return _answer(cursor.fetchall())


@dataclass
class Variant:
    name: str
    run: Callable[[list[str]], Answer]
    valid: bool = True  # gives the app's answer
    note: str = ""
    times: list[float] | None = None
    setup: str = ""  # run once per connection, outside the timings
    lossy: bool = False  # known not to give the same answer: shown, never the baseline
    diagnostic: bool = False  # shown to explain (a), never the baseline
    broken: bool = False  # raised at this size (shown, not timed)


def variants(server_version: int) -> list[Variant]:
    out = [
        Variant("catalog + UNION ALL (seq, MAX)", baseline_union),
        Variant("  same, MAX as scalar subquery (app's shape)", baseline_app_shape, diagnostic=True),
    ]
    if server_version >= 180000:
        out += [
            Variant("catalog+pg_get_sequence_data + UNION ALL MAX", baseline_seqdata),
            Variant("single statement (PL/pgSQL MAX helper)", baseline_single, setup=EXTREME_FUNCTION),
            Variant("catalog+pg_sequence_last_value + UNION ALL MAX", baseline_lastvalue, lossy=True),
        ]
    return out


# --------------------------------------------------------------------------
# (a) The app, and the admin page
# --------------------------------------------------------------------------


def app_answer() -> tuple[Answer, int]:
    from integrity import sequences

    (report,) = sequences.collect(["default"])
    out: Answer = {}
    for info in report.sequences:
        out[(info.table.split(".", 1)[1], info.column)] = (info.status, info.next_value, info.max_value)
    return out, len(report.sequences)


def run_app() -> None:
    from integrity import sequences

    sequences.collect(["default"])


@dataclass
class Page:
    client: Any
    url: str

    def get(self) -> Any:
        response = self.client.get(self.url)
        assert response.status_code == 200, response.status_code
        return response


def admin_page() -> Page:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    client = Client()
    client.force_login(user)
    return Page(client, reverse("admin:integrity_sequence_changelist"))


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


@contextmanager
def captured() -> Iterator[Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        yield ctx


def query_summary(fn: Callable[[], Any]) -> str:
    """Query count, and how one run splits into SQL (per query) and the rest (Python)."""
    with captured() as ctx:
        total = timed(fn)
    each = [float(q["time"]) * 1000 for q in ctx.captured_queries]
    times = " + ".join(f"{t:.0f}" for t in each)
    return f"{len(each)} queries; one run {total:.0f} ms = SQL {times} ms + Python {total - sum(each):.0f} ms"


def profile(label: str, fn: Callable[[], Any], lines: int = 14) -> None:
    """cProfile one run; paths shortened (repo-relative, site-packages-relative)."""
    import site

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    prefixes = [f"{ROOT}/", *(f"{p}/" for p in site.getsitepackages())]
    # Cumulative: only the app, django-tables2 and inspect (skips the request wrappers).
    for order, only in (("tottime", ".*"), ("cumulative", r"integrity/|django_tables2/|inspect\.py")):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(order).print_stats(only, lines)
        body = buf.getvalue()
        body = body[body.find("   ncalls") :]
        for prefix in prefixes:
            body = body.replace(prefix, "")
        print(f"\n--- profile of {label}, by {order} ---\n{body.rstrip()}")


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def verify(app: Answer, other: Answer) -> list[str]:
    diffs = [
        f"{k}: app {app.get(k)} vs sql {other.get(k)}"
        for k in sorted(set(app) | set(other))
        if app.get(k) != other.get(k)
    ]
    return diffs


def server_version() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        return int(cursor.connection.info.server_version)


def setup(candidates: list[Variant]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for v in candidates:
            if v.setup:
                cursor.execute(v.setup)


def benchmark(args: argparse.Namespace) -> bool:
    from django.apps import apps
    from django.db import DatabaseError, connection

    from integrity.conf import settings as integrity_settings

    t0 = time.perf_counter()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    t1 = time.perf_counter()
    build_tables(args.tables)
    t2 = time.perf_counter()
    print(f"set-up: migrate {t1 - t0:.1f}s, {args.tables} tables created and filled {t2 - t1:.1f}s")

    models = [
        m for m in apps.get_models(include_auto_created=True) if not m._meta.proxy and not m._meta.swapped
    ]
    tables = [connection.ops.quote_name(m._meta.db_table) for m in models]
    bench = sum(1 for m in models if m._meta.db_table.startswith("bench_"))
    assert bench == args.tables, f"apps.get_models() returns {bench} of the {args.tables} benchmark models"

    # Same answer, sequence by sequence (this also warms the connection's caches).
    app, n_sequences = app_answer()
    counts: dict[str, int] = {}
    for status, _, _ in app.values():
        counts[status] = counts.get(status, 0) + 1
    version = server_version()
    candidates = variants(version)
    setup(candidates)
    for v in candidates:
        try:
            diffs = verify(app, v.run(tables))
        except (
            DatabaseError
        ) as exc:  # one UNION ALL arm per sequence: past ~5,000 the parser's stack runs out
            v.valid, v.note = False, f"fails at this size: {str(exc).splitlines()[0]}"
            v.broken = True
            continue
        if diffs:
            v.valid, v.note = False, f"{len(diffs)} statuses differ, e.g. {diffs[0]}"
        # Every exact variant must agree with the app on every sequence.
        assert v.valid or v.lossy, f"{v.name}: {v.note}"

    page = admin_page()
    html = page.get().content.decode()
    behind = counts.get("behind", 0)
    assert f"{behind} sequences are behind their data" in html, "page does not show the behind count"
    rows = html.count('data-status="')
    assert rows == min(n_sequences, integrity_settings.SEQUENCES_PER_PAGE), f"{rows} rows on the page"

    # Interleaved rounds on the same warm connection.
    app_times: list[float] = []
    page_times: list[float] = []
    for v in candidates:
        v.times = []
    for _ in range(args.repeat):
        app_times.append(timed(run_app))
        for v in candidates:
            assert v.times is not None
            if not v.broken:
                v.times.append(timed(partial(v.run, tables)))
        page_times.append(timed(page.get))
    # Cold: a new connection (CONN_MAX_AGE = 0 in production) pays for its catalog caches.
    cold_app: list[float] = []
    cold_base: list[float] = []
    # The UNION ALL baseline raises past about 5,000 tables: time it cold only where it runs.
    union_runs = not next(v for v in candidates if v.run is baseline_union).broken
    for _ in range(max(3, args.repeat // 2)):
        connection.close()
        cold_app.append(timed(run_app))
        if union_runs:
            connection.close()
            cold_base.append(timed(partial(baseline_union, tables)))
    setup(candidates)

    valid = [v for v in candidates if v.valid and not v.lossy and not v.diagnostic]
    # At 10,000 tables no one-statement baseline runs at all: the scale target is the one that applies.
    best = min(valid, key=lambda v: median(v.times or [])) if valid else None
    a_ms, p_ms = median(app_times), median(page_times)
    b_ms = median(best.times or []) if best else float("nan")
    ratio_status, ratio_page = a_ms / b_ms, p_ms / a_ms
    ok_status, ok_page = (best is None or ratio_status <= TARGET_STATUS), ratio_page <= TARGET_PAGE
    scale = measure_scale(models, args) if args.tables > args.scale_base else None

    print(
        f"\n{n_sequences} sequences on {len(models)} models ({args.tables} benchmark tables), "
        f"PostgreSQL {version // 10000}.{version % 10000}, median of {args.repeat} interleaved runs"
    )
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"\n{'':52}{'median ms':>10}  {'min ms':>8}")
    print(f"{'(a) app: sequences.collect([default])':52}{a_ms:10.1f}  {min(app_times):8.1f}")
    for v in candidates:
        tag = "(b) " if v is best else "    "
        mark = "" if v.valid else "  [not the same answer: not a baseline]"
        if v.broken:
            print(f"{tag + v.name:52}{'raised':>10}  [not a baseline at this size]")
            continue
        mark = "  [diagnostic: not a baseline]" if v.diagnostic else mark
        print(f"{tag + v.name:52}{median(v.times or []):10.1f}  {min(v.times or []):8.1f}{mark}")
    print(f"{'admin page /admin/integrity/sequence/ (first page)':52}{p_ms:10.1f}  {min(page_times):8.1f}")
    print(f"{'  of which not collect() (page - a): ' + str(rows) + ' rows':52}{p_ms - a_ms:10.1f}")
    print(f"{'cold connection: (a) app':52}{median(cold_app):10.1f}  {min(cold_app):8.1f}")
    if cold_base:
        print(f"{'cold connection: catalog + UNION ALL':52}{median(cold_base):10.1f}  {min(cold_base):8.1f}")
    else:
        print(f"{'cold connection: catalog + UNION ALL':52}{'raised':>10}  [not a baseline at this size]")
    for v in candidates:
        if v.note:
            print(f"  note: {v.name}: {v.note}")

    print(f"\n(a)   {query_summary(run_app)}")
    if best:
        print(f"(b)   {query_summary(partial(best.run, tables))}")
    print(f"page  {query_summary(page.get)}")

    verdict = {True: "PASS", False: "FAIL"}
    if best:
        print(f"\nstatus  a/b     {ratio_status:5.2f}x  (target <= {TARGET_STATUS}x)  {verdict[ok_status]}")
    else:
        print("\nstatus  a/b     n/a    (no one-statement baseline runs at this size)")
    print(f"page    page/a  {ratio_page:5.2f}x  (target <= {TARGET_PAGE}x)  {verdict[ok_page]}")
    ok_scale = True
    if scale is not None:
        small_us, large_us, small_n, large_n = scale
        ok_scale = large_us / small_us <= TARGET_SCALE
        print(
            f"scale   per sequence at {large_n:,} / at {small_n:,} sequences: {large_us:.0f} / {small_us:.0f} us"
            f" = {large_us / small_us:4.2f}x  (target <= {TARGET_SCALE}x)  {verdict[ok_scale]}"
        )

    if args.profile or not ok_status:
        profile("(a) sequences.collect", run_app)
    if args.profile or not ok_page:
        profile("the admin page", page.get)
    return ok_status and ok_page and ok_scale


def measure_scale(models: list[type[Any]], args: argparse.Namespace) -> tuple[float, float, int, int]:
    """collect()'s time per sequence over the first ``--scale-base`` benchmark models and over all of them.

    Same database, same connection, interleaved rounds: ``(us per sequence small, large, n small, n large)``.
    """
    from integrity import sequences

    bench = [m for m in models if m._meta.db_table.startswith("bench_")]
    small = bench[: args.scale_base]
    counts = {}
    for label, subset in (("small", small), ("large", bench)):
        (report,) = sequences.collect(["default"], models=subset)
        counts[label] = len(report.sequences)
    rounds: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(args.repeat):
        for label, subset in (("small", small), ("large", bench)):
            rounds[label].append(timed(partial(sequences.collect, ["default"], models=subset)))
    per = {k: median(v) * 1000 / counts[k] for k, v in rounds.items()}
    return per["small"], per["large"], counts["small"], counts["large"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=1000, help="benchmark models/tables (default 1000)")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds, interleaved (default 7)")
    parser.add_argument("--profile", action="store_true", help="print cProfile of (a) and the page")
    parser.add_argument(
        "--scale-base",
        type=int,
        default=1000,
        help="with more --tables than this, also compare collect()'s time per sequence with that over "
        "the first SCALE_BASE tables (default 1000; target <= 1.3x)",
    )
    args = parser.parse_args(argv)

    return in_throwaway_database("", lambda: benchmark(args))


def in_throwaway_database(
    label: str, run: Callable[[], bool], configure: Callable[[dict[str, Any], str], None] | None = None
) -> int:
    """Create ``integrity_bench_<label><pid>``, configure Django on it, ``run()``, drop it (also on error).

    The exit status: 0 when ``run()`` says every target was met, 1 otherwise.
    """
    db = base_database()
    name = f"integrity_bench_{label}{os.getpid()}"
    create_database(db, name)
    try:
        (configure or configure_django)(db, name)
        passed = run()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(db, name)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
