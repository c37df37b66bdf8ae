"""Benchmark: a duplicate scan through the app against the fastest hand-written SQL.

``python benchmarks/duplicates.py [--rows 1000000] [--groups 100000] [--repeat 5] [--profile]``

Creates a throwaway database on the configured PostgreSQL server (the
embedded one without ``DATABASE_URL``), migrates it and defines one real
model, ``demo.BenchContact`` (registered in the installed ``demo`` app), with
``--rows`` rows loaded set-based (one ``INSERT … SELECT generate_series``, in
random physical order), then ``VACUUM ANALYZE``. The data:

- ``--groups`` emails that are duplicated, group sizes 2, 3, 4, 5 in turn
  (3.5 rows per group on average: 350,000 rows for 100,000 groups);
- 1 % of the rows with a NULL email (never duplicates of each other: the
  rule is nulls-distinct, so a scan that grouped them would be wrong);
- 2 % of the rows in pairs that differ only in case (unique as they are,
  duplicates case-insensitively); every other email unique.

Two rules the database does not enforce are configured
(``INTEGRITY_DUPLICATE_RULES``): ``email``, and ``email`` case-insensitive
(the app groups by ``LOWER(email)``). There is no index on ``email``, as for
a rule that nothing enforces yet. Two rules are enforced: ``code`` is
``unique=True`` and ``UniqueConstraint(Lower("code"))`` (an expression rule,
matched by the app's probe).

Then, interleaved, on one warm connection, for each configured rule it times

(a) the app: ``integrity.duplicates.scan(rule)`` with the default page (what
    a rule's page shows: the count of groups, the rows involved and the
    first page of groups, each with its key, size and first member pks), and
    ``integrity.duplicates.totals(rule)`` (the rules page's lazy count cell);
(b) hand-written SQL giving the same answer (several variants for the scan;
    the fastest one whose answer equals the app's, group for group, is the
    baseline; the script asserts that every variant agrees),

and what the rules page does before any count, ``rules_for`` + ``classify``
for the model, plus the page itself (``/admin/integrity/duplicaterule/?app=demo``
as a superuser, through Django's test client, when this checkout has it):
neither may issue a ``GROUP BY`` or read the table, and the page must give a
lazy count link to the configured rules only. Enforced rules cost no scan.

Target: (a) <= 1.3 x (b) for the scan and for the count of each rule. Exit
code 0 when all are met, 1 otherwise; a failing target prints the EXPLAIN
ANALYZE of (a) and (b) (``--profile``: always, plus a cProfile of (a)). The
database is dropped at the end, also on error.

The hand-written variants (``K`` is the key, ``email`` or ``lower(email)``;
rows are kept by ``email IS NOT NULL``, which is ``K IS NOT NULL`` since
``lower()`` is strict, without computing ``lower()`` twice per row):

- one statement, the app's shape: ``GROUP BY K HAVING COUNT(*) > 1`` with
  ``(array_agg(id ORDER BY id))[1:10]`` (which needs the table sorted by
  ``K, id``), totals as ``COUNT(*) OVER ()`` and ``SUM(n) OVER ()``,
  ``ORDER BY n DESC, K LIMIT 50``.
- one statement, count first: hash-aggregate only the counts, take the page
  (totals as window functions), then join the page's 50 keys back to the
  table for their pks (two scans, no sort of the table).
- the same with the groups in a ``MATERIALIZED`` CTE read twice, totals by
  aggregate rather than window.
- two statements: the totals, then the page (three scans).
- for the count: ``COUNT(*), SUM(n)`` over the hash-aggregated groups.

Runs in about 3 minutes on 2 cores (load 10 s); ``--rows 100000 --groups
10000`` for a quick run.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.sequences import (  # noqa: E402  (after the sys.path set-up)
    captured,
    in_throwaway_database,
    median,
    profile,
    timed,
)

TARGET = 1.3  # (a) / (b), for the scan and the count of each rule
TABLE = "bench_contact"

# (total groups, rows involved, first page: (key, size, first pks) per group)
Answer = tuple[int, int, list[tuple[tuple[Any, ...], int, list[int]]]]


# --------------------------------------------------------------------------
# The model and its data
# --------------------------------------------------------------------------


def make_model() -> type[Any]:
    from django.db import models
    from django.db.models.functions import Lower

    meta = type(
        "Meta",
        (),
        {
            "app_label": "demo",
            "db_table": TABLE,
            "constraints": [models.UniqueConstraint(Lower("code"), name="bench_contact_code_ci")],
        },
    )
    attrs: dict[str, Any] = {
        "__module__": __name__,
        "Meta": meta,
        "id": models.BigAutoField(primary_key=True),
        "email": models.CharField(max_length=254, null=True),
        "name": models.CharField(max_length=100),
        "code": models.CharField(max_length=32, unique=True),
        "created": models.DateTimeField(),
    }
    return type("BenchContact", (models.Model,), attrs)


@dataclass(frozen=True)
class Shape:
    """How many rows of each kind LOAD_SQL writes, and the answers that follow from it."""

    rows: int
    groups: int

    @property
    def dup_rows(self) -> int:  # group g has 2 + g % 4 rows
        full, rest = divmod(self.groups, 4)
        return full * 14 + sum(2 + g for g in range(rest))

    @property
    def nulls(self) -> int:
        return self.rows // 100

    @property
    def case_pairs(self) -> int:
        return min(self.rows // 100, max(0, self.rows - self.dup_rows - self.nulls) // 2)

    @property
    def unique_rows(self) -> int:
        return self.rows - self.dup_rows - self.nulls

    def expected(self, case_insensitive: bool) -> tuple[int, int]:
        if case_insensitive:
            return self.groups + self.case_pairs, self.dup_rows + 2 * self.case_pairs
        return self.groups, self.dup_rows


# Every email is an md5 (lower-case hex) at example.com: distinct inputs give
# distinct emails, so the groups are exactly the ones written here. A case
# pair is (u, u + 1) with u even: the second one is the first upper-cased.
LOAD_SQL = f"""
INSERT INTO {TABLE} (email, name, code, created)
SELECT email, 'Contact ' || n, 'C' || lpad(n::text, 8, '0'), timestamptz '2024-01-01' + n * interval '1 minute'
FROM (
    SELECT email, row_number() OVER (ORDER BY random()) AS n
    FROM (
        SELECT md5('g' || g) || '@example.com' AS email
        FROM generate_series(0, %(groups)s - 1) AS g, generate_series(1, 2 + g %% 4) AS m
        UNION ALL
        SELECT CASE WHEN u < 2 * %(pairs)s AND u %% 2 = 1
                    THEN upper(md5('u' || (u - 1)) || '@example.com')
                    ELSE md5('u' || u) || '@example.com' END
        FROM generate_series(0, %(unique)s - 1) AS u
        UNION ALL
        SELECT NULL FROM generate_series(1, %(nulls)s)
    ) AS s
) AS shuffled
ORDER BY n
"""  # noqa: S608 - the table name is our constant


def build(shape: Shape) -> tuple[type[Any], dict[str, float]]:
    from django.apps import apps
    from django.db import connection, transaction

    model = make_model()
    apps.clear_cache()
    steps: dict[str, float] = {}
    start = time.perf_counter()
    with connection.schema_editor() as editor:
        editor.create_model(model)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            LOAD_SQL,
            {
                "groups": shape.groups,
                "pairs": shape.case_pairs,
                "unique": shape.unique_rows,
                "nulls": shape.nulls,
            },
        )
        assert cursor.rowcount == shape.rows, cursor.rowcount
    steps["create + load (4 indexes maintained)"] = time.perf_counter() - start
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
    steps["VACUUM ANALYZE"] = time.perf_counter() - start
    return model, steps


def table_size() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_table_size(%s::regclass)), pg_size_pretty(pg_indexes_size(%s::regclass))",
            [TABLE, TABLE],
        )
        heap, indexes = cursor.fetchone()
    return f"table {heap}, indexes {indexes}"


# --------------------------------------------------------------------------
# (b) Hand-written SQL
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    key: str  # SQL expression of the key over the table, "email" or "lower(email)"
    column: str  # the column under the key: lower() is strict, so "key IS NOT NULL" is "column IS NOT NULL"
    limit: int
    sample: int


# One statement, the app's shape: sort-based GroupAggregate (the ordered
# array_agg needs its input sorted by key, id), totals as window functions.
WINDOW_SQL = """
SELECT k, n, pks, COUNT(*) OVER (), SUM(n) OVER ()
FROM (
    SELECT {key} AS k, COUNT(*) AS n, (array_agg(id ORDER BY id))[1:{sample}] AS pks
    FROM {table} WHERE {column} IS NOT NULL
    GROUP BY {key} HAVING COUNT(*) > 1
) AS g
ORDER BY n DESC, k LIMIT {limit}
"""

# Count first: a (parallel) hash aggregate of the counts only; the page's keys
# are joined back to the table for their pks, so only 50 groups' rows are sorted.
COUNT_FIRST_SQL = """
WITH g AS (
    SELECT {key} AS k, COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL
    GROUP BY {key} HAVING COUNT(*) > 1
), p AS (
    SELECT k, n, COUNT(*) OVER () AS groups, SUM(n) OVER () AS rows FROM g ORDER BY n DESC, k LIMIT {limit}
)
SELECT p.k, p.n, (array_agg(t.id ORDER BY t.id))[1:{sample}], p.groups, p.rows
FROM p JOIN {table} AS t ON {tkey} = p.k
GROUP BY p.k, p.n, p.groups, p.rows
ORDER BY p.n DESC, p.k
"""

MATERIALIZED_SQL = """
WITH g AS MATERIALIZED (
    SELECT {key} AS k, COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL
    GROUP BY {key} HAVING COUNT(*) > 1
), tot AS (
    SELECT COUNT(*) AS groups, SUM(n) AS rows FROM g
), p AS (
    SELECT k, n FROM g ORDER BY n DESC, k LIMIT {limit}
)
SELECT p.k, p.n, (array_agg(t.id ORDER BY t.id))[1:{sample}], tot.groups, tot.rows
FROM p CROSS JOIN tot JOIN {table} AS t ON {tkey} = p.k
GROUP BY p.k, p.n, tot.groups, tot.rows
ORDER BY p.n DESC, p.k
"""

TOTALS_SQL = """
SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (
    SELECT COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY {key} HAVING COUNT(*) > 1
) AS g
"""

PAGE_SQL = """
WITH p AS (
    SELECT {key} AS k, COUNT(*) AS n FROM {table} WHERE {column} IS NOT NULL
    GROUP BY {key} HAVING COUNT(*) > 1 ORDER BY n DESC, k LIMIT {limit}
)
SELECT p.k, p.n, (array_agg(t.id ORDER BY t.id))[1:{sample}]
FROM p JOIN {table} AS t ON {tkey} = p.k
GROUP BY p.k, p.n ORDER BY p.n DESC, p.k
"""


def render(template: str, p: Params) -> str:
    return template.format(
        key=p.key,
        tkey=p.key.replace("email", "t.email"),
        column=p.column,
        table=TABLE,
        limit=p.limit,
        sample=p.sample,
    )


def _answer(rows: list[tuple[Any, ...]]) -> Answer:
    if not rows:
        return 0, 0, []
    return int(rows[0][3]), int(rows[0][4]), [((r[0],), int(r[1]), list(r[2])) for r in rows]


def _fetch(sql: str) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def one_statement(template: str, p: Params) -> Answer:
    return _answer(_fetch(render(template, p)))


def two_statements(p: Params) -> Answer:
    ((groups, rows),) = _fetch(render(TOTALS_SQL, p))
    page = _fetch(render(PAGE_SQL, p))
    return int(groups), int(rows), [((r[0],), int(r[1]), list(r[2])) for r in page]


def count_only(p: Params) -> Answer:
    ((groups, rows),) = _fetch(render(TOTALS_SQL, p))
    return int(groups), int(rows), []


@dataclass
class Variant:
    name: str
    run: Callable[[Params], Answer]
    sql: str = ""  # for EXPLAIN (one-statement variants)
    valid: bool = True
    note: str = ""
    times: list[float] = field(default_factory=list)


def scan_variants() -> list[Variant]:
    return [
        Variant(
            "one statement, sorted GROUP BY + window totals", partial(one_statement, WINDOW_SQL), WINDOW_SQL
        ),
        Variant(
            "one statement, hash count, page joined back",
            partial(one_statement, COUNT_FIRST_SQL),
            COUNT_FIRST_SQL,
        ),
        Variant(
            "one statement, MATERIALIZED CTE, page joined back",
            partial(one_statement, MATERIALIZED_SQL),
            MATERIALIZED_SQL,
        ),
        Variant("two statements: totals, then page", two_statements),
    ]


def count_variants() -> list[Variant]:
    return [Variant("COUNT(*), SUM(n) over GROUP BY … HAVING", count_only, TOTALS_SQL)]


# --------------------------------------------------------------------------
# (a) The app: the rule page's scan, the rules page's lazy count, the rules page
# --------------------------------------------------------------------------


def app_scan(rule: Any) -> Answer:
    from integrity.duplicates import scan

    result = scan(rule)
    return result.total_groups, result.total_rows, [(g.key, g.size, list(g.pks)) for g in result.groups]


def app_totals(rule: Any) -> Answer:
    from integrity.duplicates import totals

    groups, rows = totals(rule)
    return groups, rows, []


def app_sql(fn: Callable[[], Any]) -> str:
    """The one grouping statement ``fn`` runs, as captured (its set_config left out)."""
    with captured() as ctx:
        fn()
    statements = [q["sql"] for q in ctx.captured_queries if "GROUP BY" in q["sql"]]
    assert len(statements) == 1, statements
    return statements[0]


def rules_page_work(model: type[Any]) -> dict[str, Any]:
    """What the rules page computes before any count: the rules and their enforcement (here, of the model)."""
    from integrity.duplicates.enforcement import classify
    from integrity.duplicates.rules import rules_for

    rules = rules_for(["default"], [model])
    enforcement = classify(rules)
    return {rule.key: enforcement[rule.key].state for rule in rules}


@dataclass
class Page:
    client: Any
    url: str
    count_url: str

    def get(self) -> str:
        response = self.client.get(self.url)
        assert response.status_code == 200, response.status_code
        return str(response.content.decode())


def rules_page() -> Page | None:
    """The duplicates rules page (``?app=demo``) for a superuser; None when this checkout has none."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    try:
        url = reverse("admin:integrity_duplicaterule_changelist")
        count_url = reverse("admin:integrity_duplicaterule_count")
    except NoReverseMatch:
        return None
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    client = Client()
    client.force_login(user)
    return Page(client, f"{url}?app=demo", count_url)


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


def explain(sql: str, label: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, SETTINGS) " + sql)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    print(f"\n--- EXPLAIN ANALYZE of {label} ---\n{plan}")


def differences(app: Answer, other: Answer) -> str:
    if app[:2] != other[:2]:
        return f"totals: app {app[:2]} vs sql {other[:2]}"
    if len(app[2]) != len(other[2]):
        return f"page: app {len(app[2])} groups vs sql {len(other[2])}"
    for i, (x, y) in enumerate(zip(app[2], other[2], strict=True)):
        if x != y:
            return f"group {i}: app {x} vs sql {y}"
    return ""


def server_version() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        return int(cursor.connection.info.server_version)


@dataclass
class Case:
    """One measured call of the app on one rule, and the hand-written variants giving its answer."""

    rule_label: str  # "email", "lower(email)"
    what: str  # "scan" or "count"
    app_name: str
    app: Callable[[], Answer]
    params: Params
    candidates: list[Variant]
    app_times: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.what} {self.rule_label}"

    def best(self) -> Variant:
        return min((v for v in self.candidates if v.valid), key=lambda v: median(v.times))


def check_case(case: Case, expected: tuple[int, int]) -> None:
    app = case.app()
    assert app[:2] == expected, f"{case.label}: app totals {app[:2]}, the data has {expected}"
    if case.what == "scan":
        page = min(case.params.limit, expected[0])
        assert len(app[2]) == page, f"{case.label}: {len(app[2])} groups on the page"
        assert all(len(pks) == min(size, case.params.sample) for _, size, pks in app[2])
    for v in case.candidates:
        diff = differences(app, v.run(case.params))
        v.valid, v.note = not diff, diff
        # Every hand-written variant is meant to be exact: a difference is a bug here or in the app.
        assert v.valid, f"{case.label}: {v.name}: {diff}"


def assert_no_scan(queries: list[dict[str, Any]], what: str) -> None:
    reads = re.compile(rf'\b(FROM|JOIN)\s+"?{TABLE}"?(\s|$)', re.IGNORECASE)
    for q in queries:
        assert "GROUP BY" not in q["sql"].upper(), f"{what} groups: {q['sql'][:300]}"
        assert not reads.search(q["sql"]), f"{what} reads {TABLE}: {q['sql'][:300]}"


def check_rules_page(model: type[Any], page: Page | None) -> tuple[dict[str, str], int, int | None]:
    """Enforced rules are classified from the catalogs, and neither the service nor the page scans."""
    from urllib.parse import urlencode

    label = "default:demo.BenchContact:"
    expected = {
        f"{label}unique:code": "enforced",
        f"{label}bench_contact_code_ci": "enforced",
        f"{label}configured:email": "configured",
        f"{label}configured:email_ci": "configured",
    }
    with captured() as ctx:
        states = rules_page_work(model)
    assert states == expected, states
    assert_no_scan(ctx.captured_queries, "rules_for + classify")
    if page is None:
        return states, len(ctx.captured_queries), None
    with captured() as page_ctx:
        html = page.get()
    assert_no_scan(page_ctx.captured_queries, "the rules page")
    for key, state in states.items():
        lazy = f"{page.count_url}?{urlencode({'rule': key})}" in html
        assert lazy == (state != "enforced"), f"{key} ({state}): lazy count link {lazy}"
    return states, len(ctx.captured_queries), len(page_ctx.captured_queries)


def benchmark(args: argparse.Namespace) -> bool:
    from django.core.management import call_command
    from django.test.utils import override_settings

    from integrity.conf import settings as integrity_settings
    from integrity.duplicates.rules import get_rule

    shape = Shape(args.rows, args.groups)
    assert shape.unique_rows >= 2 * shape.case_pairs >= 0, "--groups too large for --rows"
    t0 = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    migrate = time.perf_counter() - t0
    model, steps = build(shape)
    print(f"set-up: migrate {migrate:.1f}s, " + ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))
    print(f"{args.rows:,} rows, {table_size()}")

    rules_setting = [
        {"model": "demo.BenchContact", "fields": ["email"]},
        {"model": "demo.BenchContact", "fields": ["email"], "case_insensitive": True, "name": "email_ci"},
    ]
    with override_settings(INTEGRITY_DUPLICATE_RULES=rules_setting):
        limit, sample = integrity_settings.GROUPS_PER_PAGE, integrity_settings.GROUP_SAMPLE_SIZE
        cases: list[Case] = []
        for name, key, ci in (("email", "email", False), ("email_ci", "lower(email)", True)):
            rule = get_rule(f"default:demo.BenchContact:configured:{name}")
            params = Params(key, "email", limit, sample)
            scan = Case(
                key,
                "scan",
                "(a) app: duplicates.scan(rule)",
                partial(app_scan, rule),
                params,
                scan_variants(),
            )
            count = Case(
                key,
                "count",
                "(a) app: duplicates.totals(rule)",
                partial(app_totals, rule),
                params,
                count_variants(),
            )
            # Same answer, group for group (this also warms the connection and the cache).
            for case in (scan, count):
                check_case(case, shape.expected(ci))
                cases.append(case)
        page = rules_page()
        states, service_queries, page_queries = check_rules_page(model, page)

        service_times: list[float] = []
        page_times: list[float] = []
        for _ in range(args.repeat):
            for case in cases:
                case.app_times.append(timed(case.app))
                for v in case.candidates:
                    v.times.append(timed(partial(v.run, case.params)))
            service_times.append(timed(partial(rules_page_work, model)))
            if page is not None:
                page_times.append(timed(page.get))

        version = server_version()
        print(
            f"\nPostgreSQL {version // 10000}.{version % 10000}, page of {limit} groups, {sample} pks each, "
            f"median of {args.repeat} interleaved runs"
        )
        results = []
        for case in cases:
            best = case.best()
            a_ms, b_ms = median(case.app_times), median(best.times)
            results.append((case, best, a_ms / b_ms))
            if case.what == "scan":
                groups, rows = shape.expected(case.rule_label != "email")
                print(f"\nrule {case.rule_label}: {groups:,} groups, {rows:,} rows involved")
                print(f"{'':58}{'median ms':>10}  {'min ms':>8}")
            print(f"{case.app_name:58}{a_ms:10.1f}  {min(case.app_times):8.1f}")
            for v in case.candidates:
                tag = "(b) " if v is best else "    "
                print(f"{tag + v.name:58}{median(v.times):10.1f}  {min(v.times):8.1f}")
        enforced = sorted(k.rsplit(":", 1)[-1] for k, state in states.items() if state == "enforced")
        print(
            f"\nenforced rules ({', '.join(enforced)}): no GROUP BY, {TABLE} never read\n"
            f"  rules_for + classify (the model's {len(states)} rules): median {median(service_times):.1f} ms, "
            f"{service_queries} queries"
        )
        if page is None:
            print("  rules page: not in this checkout (no admin:integrity_duplicaterule_changelist)")
        else:
            print(
                f"  rules page {page.url}: median {median(page_times):.1f} ms, {page_queries} queries, "
                "lazy count links only for the configured rules"
            )
        print()
        verdict = {True: "PASS", False: "FAIL"}
        for case, _best, ratio in results:
            print(f"{case.label:20} a/b {ratio:5.2f}x  (target <= {TARGET}x)  {verdict[ratio <= TARGET]}")

        for case, best, ratio in results:
            if args.profile or ratio > TARGET:
                explain(app_sql(case.app), f"(a) {case.app_name[9:]}, rule {case.rule_label}")
                if best.sql:
                    explain(render(best.sql, case.params), f"(b) {best.name}, rule {case.rule_label}")
                if args.profile:
                    profile(f"(a) {case.label}", case.app)
    return all(ratio <= TARGET for _, _, ratio in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    parser.add_argument("--groups", type=int, default=100_000, help="duplicate groups (default 100,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds, interleaved (default 5)")
    parser.add_argument(
        "--profile", action="store_true", help="EXPLAIN ANALYZE and cProfile even when passing"
    )
    args = parser.parse_args(argv)

    return in_throwaway_database("dup_", lambda: benchmark(args))


if __name__ == "__main__":
    sys.exit(main())
