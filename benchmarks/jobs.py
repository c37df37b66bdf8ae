"""Benchmark: merge every group of a rule through a task worker, against the in-request merge-all.

``python benchmarks/jobs.py [--groups 100000] [--size 2] [--baseline-groups N]``

Creates throwaway test databases (the test settings, ``_benchjobs`` suffix) on
the configured PostgreSQL server, then, on freshly loaded data each time
(``--groups`` groups of ``--size`` rows of ``merging.Person`` sharing an
email, loaded set-based), times

(a) the in-request merge-all: the admin's "merge every group" view, batch
    after batch (``INTEGRITY_MERGE_BATCH`` groups per POST) through Django's
    test client, as the page's htmx loop asks for them, no browser, on the
    first ``--baseline-groups`` groups (default ``min(groups, 1000)``) of the
    same table: each batch scans the whole table for its groups, so all of
    a big table's would take hours;
(b) the job: the same merge-all of every group started as a job on
    django-tasks-db and run by a real ``db_worker`` process, no browser (one
    chunked scan, then group after group); timed from the job's start
    to its end as the job records them (the worker's start-up is not counted).

Each ends with the groups it was given merged (checked). Prints the per-group cost of each
and the ratio (b)/(a); target <= 1.2. Exit code 0 when met, 1 otherwise. The
databases are dropped at the end, also on error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["INTEGRITY_TEST_DB_SUFFIX"] = "_benchjobs"

import django  # noqa: E402

django.setup()

from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()  # the test client's response.context

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from integrity import jobs  # noqa: E402
from integrity.models import Job, MergeRecord  # noqa: E402
from tests.conftest import RULES  # noqa: E402

RULE = "default:merging.Person:configured:email"
TARGET = 1.2


def load(groups: int, size: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE merging_person, integrity_mergerecord, integrity_job CASCADE")
        cursor.execute(
            "INSERT INTO merging_person (email, name, created) "
            "SELECT 'g' || (i %% %s) || '@example.com', '', now() FROM generate_series(0, %s - 1) i",
            [groups, groups * size],
        )
        cursor.execute("ANALYZE merging_person")


def in_request(client: Client, upto: int) -> float:
    started = time.perf_counter()
    done = 0
    while done < upto:
        data = {"rule": RULE, "policy": "oldest", "step": "run", "done": str(done)}
        response = client.post("/admin/integrity/duplicaterule/merge-all/", data)
        assert response.status_code == 200, response.status_code
        done = response.context["done"]
        if response.context["finished"]:
            break
    return time.perf_counter() - started


def through_worker(groups: int) -> float:
    from tests.jobs.workers import db_worker

    with override_settings(INTEGRITY_TASK_BACKEND="db"):
        job = jobs.start(Job.MERGE_ALL, "benchmark", {"rule": RULE, "policy": "oldest"})
    with db_worker():
        while Job.objects.get(pk=job.pk).active:
            time.sleep(0.2)
    job = Job.objects.get(pk=job.pk)
    assert job.status == Job.FINISHED, job.error
    assert job.started_at and job.finished_at
    return (job.finished_at - job.started_at).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=2)
    parser.add_argument("--baseline-groups", type=int, default=None, help="default min(groups, 1000)")
    args = parser.parse_args()
    baseline = min(args.groups, 1000) if args.baseline_groups is None else args.baseline_groups
    if not 0 < baseline <= args.groups:
        parser.error("--baseline-groups must be between 1 and --groups")
    created = []
    try:
        for alias in ("default", "other"):
            connections[alias].creation.create_test_db(verbosity=0, autoclobber=True)
            created.append(alias)
        with override_settings(INTEGRITY_DUPLICATE_RULES=RULES):
            user = User.objects.create_superuser("bench", "bench@example.com", "pw")
            client = Client()
            client.force_login(user)
            load(args.groups, args.size)
            a = in_request(client, baseline)
            merged = MergeRecord.objects.count()  # whole batches: at least the groups asked for
            assert merged >= baseline, merged
            baseline = merged
            load(args.groups, args.size)
            b = through_worker(args.groups)
            assert MergeRecord.objects.count() == args.groups
    finally:
        for alias in reversed(created):
            connections[alias].creation.destroy_test_db(connections[alias].settings_dict["NAME"], verbosity=0)
    per_a, per_b = a / baseline * 1000, b / args.groups * 1000
    ratio = per_b / per_a
    print(f"groups: {args.groups:,} of {args.size} rows")
    print(f"(a) in-request merge-all of the first {baseline:,}: {a:.2f} s, {per_a:.3f} ms per group")
    print(f"(b) job on a db_worker, all {args.groups:,}: {b:.2f} s, {per_b:.3f} ms per group")
    print(f"ratio (b)/(a): {ratio:.2f}x (target <= {TARGET}x): {'met' if ratio <= TARGET else 'NOT met'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
