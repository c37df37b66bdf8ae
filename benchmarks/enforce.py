"""Benchmark: the app's Enforce of a rule on 1,000,000 rows against the hand-written CREATE UNIQUE INDEX CONCURRENTLY.

``python benchmarks/enforce.py [--rows 1000000] [--rounds 3]``

Creates a throwaway database on the configured PostgreSQL server (the
embedded one without ``DATABASE_URL``), migrates the demo into it and fills
crm.Company with ``--rows`` rows whose VAT numbers are distinct (the demo's
drift: the model declares ``unique=True``, the database has no index). In
interleaved rounds (which goes first alternates) it times:

- **(a)** the app: ``plan_for`` (the catalog reads, Django's statement), then
  ``build.execute``: the advisory lock, ``CREATE UNIQUE INDEX CONCURRENTLY``,
  ``ALTER TABLE … ADD CONSTRAINT … USING INDEX``, the ``indisvalid`` check and
  the ``EnforceRun`` writes;
- **(b)** the hand-written ``CREATE UNIQUE INDEX CONCURRENTLY`` of the same
  column, alone, on a fresh connection;

dropping what each built afterwards (not timed). It reports the medians and
the median of the per-round ratios. Target: (a) ≤ 1.1 × (b). Exit code 0 when
the target is met.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.sequences import in_throwaway_database  # noqa: E402  (after the sys.path set-up)

TARGET = 1.1
VAT = "default:crm.Company:unique:vat_number"


def prepare(rows: int) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    with override_settings(INTEGRITY_AFTER_MIGRATE="off"):
        call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO crm_company (name, vat_number) SELECT 'c-' || n, 'V' || n FROM generate_series(1, %s) n",
            [rows],
        )
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE crm_company")


def app_enforce() -> tuple[float, str]:
    from integrity.duplicates import build, enforce
    from integrity.duplicates.rules import get_rule

    start = time.perf_counter()
    plan = enforce.plan_for(get_rule(VAT))
    run = build.execute(plan, build.new_run(plan))
    elapsed = time.perf_counter() - start
    assert run.status == "done", run.message
    return elapsed, plan.index


def hand_written(name: str) -> float:
    from django.db import connections

    from integrity.db import quote

    connection = connections.create_connection("default")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            start = time.perf_counter()
            cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {quote(name)} ON crm_company (vat_number)")
            return time.perf_counter() - start
    finally:
        connection.close()


def drop(name: str) -> None:
    from django.db import connection

    from integrity.db import quote

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE crm_company DROP CONSTRAINT IF EXISTS {quote(name)}")
        cursor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def benchmark(rows: int, rounds: int) -> bool:
    from django.db import connection

    prepare(rows)
    _warm, name = app_enforce()  # warm-up: imports, the migration loader, the table in the buffer cache
    drop(name)
    app, hand, ratios = [], [], []
    for number in range(rounds):
        times = {}
        for which in ("app", "hand") if number % 2 == 0 else ("hand", "app"):
            if which == "app":
                times[which] = app_enforce()[0]
            else:
                times[which] = hand_written(name)
            drop(name)
        app.append(times["app"])
        hand.append(times["hand"])
        ratios.append(times["app"] / times["hand"])
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(f"PostgreSQL {version}; crm.Company with {rows:,} rows, {rounds} interleaved rounds, medians:")
    print(f"  (a) the app's Enforce:                              {statistics.median(app):.3f} s")
    print(f"  (b) hand-written CREATE UNIQUE INDEX CONCURRENTLY: {statistics.median(hand):.3f} s")
    ratio = statistics.median(ratios)
    print(f"  (a) / (b): {ratio:.3f} (target ≤ {TARGET})")
    met = ratio <= TARGET
    print("target met" if met else "TARGET MISSED")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of crm.Company (1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    args = parser.parse_args(argv)
    return in_throwaway_database("enforce_", lambda: benchmark(args.rows, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
