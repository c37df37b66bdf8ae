"""Benchmark: what the sequence check after ``migrate`` adds to a ``migrate`` of the demo from zero.

``python benchmarks/after_migrate.py [--rounds 9]``

Creates a throwaway database on the configured PostgreSQL server (the
embedded one without ``DATABASE_URL``) and, in interleaved rounds (which goes
first alternates), empties it (``DROP SCHEMA … CASCADE`` of every schema, not timed) and
times ``call_command("migrate")`` of the demo project from zero with
``INTEGRITY_AFTER_MIGRATE = "off"`` and with ``"warn"`` (the default, which
finds shop.Product's sequence behind after the demo's data migration and
prints the warning, to a discarded stderr here). It reports the medians and
the median of the per-round ratios. It also times the check itself inside
each ``"warn"`` run (where the ``post_migrate`` receiver calls it), as a
share of that run, and the check alone on the migrated database with the
whole run's plan, with its statement count. Target: the check under 5 % of
the migrate's own time. The end-to-end ratio is printed too, but on a shared
machine its noise (±20 % between rounds) exceeds the 5 % it would measure.
Exit code 0 when the target is met.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.sequences import in_throwaway_database  # noqa: E402  (after the sys.path set-up)

TARGET_SHARE = 0.05  # of the migrate's own time
MODES = ("off", "warn")


def empty_database() -> None:
    from django.db import connection

    from integrity.db import quote

    with connection.cursor() as cursor:
        # The demo's migrations create schemas of their own too (a table of the same name in two schemas).
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%' AND nspname <> 'information_schema'"
        )
        for (schema,) in cursor.fetchall():
            cursor.execute(f"DROP SCHEMA {quote(schema)} CASCADE")
        cursor.execute("CREATE SCHEMA public")


CHECK_SECONDS: list[float] = []  # the check's own time inside each timed migrate


def instrument_check() -> None:
    """Time ``after_migrate.check`` where the ``post_migrate`` receiver calls it, inside ``migrate``."""
    from integrity.sequences import after_migrate

    check = after_migrate.check

    def timed(*args: Any, **kwargs: Any) -> list[str]:
        start = time.perf_counter()
        try:
            return check(*args, **kwargs)
        finally:
            CHECK_SECONDS.append(time.perf_counter() - start)

    after_migrate.check = timed


def timed_migrate(mode: str) -> tuple[float, str]:
    """Seconds one ``migrate`` from zero takes with ``INTEGRITY_AFTER_MIGRATE = mode``, and its stderr."""
    from django.core.management import call_command
    from django.test import override_settings

    empty_database()
    err = io.StringIO()
    with override_settings(INTEGRITY_AFTER_MIGRATE=mode), redirect_stderr(err):
        start = time.perf_counter()
        call_command("migrate", interactive=False, verbosity=0)
        elapsed = time.perf_counter() - start
    return elapsed, err.getvalue()


def check_alone(rounds: int) -> tuple[float, int, int]:
    """The check by itself on the migrated database: median seconds, statements, models checked."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.test.utils import CaptureQueriesContext

    from integrity.sequences import after_migrate

    loader = MigrationLoader(connection)
    plan = [(m, False) for _key, m in sorted(loader.disk_migrations.items())]
    times = []
    for _ in range(rounds):
        with redirect_stderr(io.StringIO()), CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            after_migrate.check("default", plan, "warn")
            times.append(time.perf_counter() - start)
    return (
        statistics.median(times),
        len(ctx.captured_queries),
        len(after_migrate.migrated_models("default", plan)),
    )


def benchmark(rounds: int) -> bool:
    from django.db import connection

    instrument_check()
    timed_migrate("off")  # warm-up: imports, the migration loader's caches
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    ratios, shares = [], []
    warned = ""
    for i in range(rounds):
        order = MODES if i % 2 == 0 else MODES[::-1]
        for mode in order:
            elapsed, err = timed_migrate(mode)
            times[mode].append(elapsed)
            if mode == "warn":
                warned = err
                shares.append(CHECK_SECONDS[-1] / elapsed)
        ratios.append(times["warn"][-1] / times["off"][-1])
    assert len(CHECK_SECONDS) == rounds, "the check must run once per migrate run (and never with 'off')"
    assert "public.shop_product_id_seq" in warned, (
        f"warn did not report the demo's product migration: {warned!r}"
    )
    assert "shop.0002_initial_products" in warned
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        (version,) = cursor.fetchone()
    off, warn = statistics.median(times["off"]), statistics.median(times["warn"])
    share = statistics.median(shares)
    alone, statements, models = check_alone(rounds)
    print(f"PostgreSQL {version}; migrate of the demo from zero, {rounds} interleaved rounds, medians:")
    print(f"  INTEGRITY_AFTER_MIGRATE='off'   {off * 1000:8.0f} ms")
    print(f"  INTEGRITY_AFTER_MIGRATE='warn'  {warn * 1000:8.0f} ms")
    print(
        f"  warn / off, median of the rounds' ratios: {statistics.median(ratios):.3f} x (end to end, noisy)"
    )
    print(
        f"  the check inside each warn migrate: {statistics.median(CHECK_SECONDS) * 1000:.1f} ms, "
        f"{share:.1%} of that migrate (target < {TARGET_SHARE:.0%})"
    )
    print(f"  the check alone, warm: {alone * 1000:.1f} ms, {statements} statements for {models} models")
    met = share < TARGET_SHARE
    print("target met" if met else "TARGET MISSED")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (9)")
    args = parser.parse_args(argv)
    return in_throwaway_database("after_migrate_", lambda: benchmark(args.rounds))


if __name__ == "__main__":
    sys.exit(main())
