"""Writes go on while Enforce builds: rows inserted from other threads during the build each wait less than the
lock timeout (plus a generous margin), even with an old transaction that makes the build retry.

The table gets 200,000 rows so the build lasts; four writer threads insert
rows throughout (each insert timed); a reader holds a snapshot from before the
build until the build tries again, so its first try times out, is dropped and
tried again. Nothing here asserts an absolute time but the bound.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection
from django.test import override_settings

from integrity.duplicates import build, enforce
from integrity.duplicates.enforcement import classify
from integrity.duplicates.rules import get_rule
from integrity.models import EnforceRun
from tests.helpers import MARGIN, run, sql_rows, undo_enforce, unique_indexes, vat_index_name

VAT = "default:crm.Company:unique:vat_number"
LOCK_TIMEOUT_MS = 300
WRITERS = 4

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    undo_enforce()


def writer(stop: threading.Event, latencies: list[float], errors: list[BaseException]) -> None:
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as conn:
        while not stop.is_set():
            started = time.monotonic()
            try:
                conn.execute(
                    "INSERT INTO crm_company (name, vat_number) VALUES (%s, %s)",
                    [f"w-{uuid.uuid4()}", str(uuid.uuid4())[:20]],
                )
            except psycopg.Error as exc:
                errors.append(exc)
                return
            latencies.append(time.monotonic() - started)


def old_snapshot(ready: threading.Event) -> None:
    """A transaction with a snapshot older than the build, kept open until the build's first try has timed out.

    Held for a fixed time instead, a loaded machine could reach the build after the snapshot was gone (or
    keep it past the clean-up). It is released once PostgreSQL has reported the build waiting for old
    snapshots and then the build's statement has ended (the lock timeout), so the clean-up and the next try
    find it gone; at most 30 s.
    """
    params = connection.get_connection_params()
    progress = "SELECT pid, phase FROM pg_stat_progress_create_index"
    with psycopg.connect(**params) as conn, psycopg.connect(**params, autocommit=True) as watcher:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT count(*) FROM crm_company")
        ready.set()
        deadline, waiting = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            phases = dict(watcher.execute(progress).fetchall())
            if waiting is None:
                waiting = next(
                    (pid for pid, phase in phases.items() if phase == "waiting for old snapshots"), None
                )
            elif phases.get(waiting) != "waiting for old snapshots":
                break
            time.sleep(0.02)
        conn.rollback()


@override_settings(INTEGRITY_LOCK_TIMEOUT_MS=LOCK_TIMEOUT_MS, INTEGRITY_ENFORCE_RETRIES=8)
def test_no_insert_waits_longer_than_the_lock_timeout_during_the_build(restore: None):
    run(
        "INSERT INTO crm_company (name, vat_number) "
        "SELECT 'c-' || n, 'V' || n FROM generate_series(1, 200000) AS n"
    )
    plan = enforce.plan_for(get_rule(VAT))
    stop, latencies, errors = threading.Event(), list[float](), list[BaseException]()
    writers = [threading.Thread(target=writer, args=(stop, latencies, errors)) for _ in range(WRITERS)]
    ready = threading.Event()
    reader = threading.Thread(target=old_snapshot, args=(ready,))
    reader.start()
    assert ready.wait(10)
    for t in writers:
        t.start()
    time.sleep(0.2)  # the writers are writing before the build starts
    during = len(latencies)
    outcome = build.execute(plan, build.new_run(plan))
    written_during_build = len(latencies) - during
    stop.set()
    for t in [*writers, reader]:
        t.join(30)
    assert errors == []
    assert (outcome.status, outcome.message) == ("done", f"Enforced by {vat_index_name()}, verified valid.")
    assert EnforceRun.objects.get().attempts > 2  # the old snapshot made the first try time out
    assert written_during_build > 0
    assert max(latencies) < LOCK_TIMEOUT_MS / 1000 + MARGIN
    # Every row written is there, and the rule holds on all of them.
    assert sql_rows("SELECT count(*) FROM crm_company")[0][0] == 200000 + len(latencies)
    assert classify([get_rule(VAT)])[VAT].state == "enforced"
    assert unique_indexes("crm_company") == [("crm_company_name_key", True), (vat_index_name(), True)]
