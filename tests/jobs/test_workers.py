"""Jobs through real worker processes: django-tasks-db's ``db_worker`` and RQ's worker on a redis-server.

The test enqueues (as a page would) and the worker, another process on the
same test database, runs the job; the test reads only what the database holds.
A worker killed with SIGKILL mid-merge leaves every group merged or untouched.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from django.db.models import Count
from django.test import override_settings

from integrity import jobs
from integrity.duplicates.rules import Rule
from integrity.models import EnforceRun, Job, MergeRecord
from tests.jobs.workers import db_worker, job_status, redis_server, rq_worker, wait_for
from tests.merging.models import Person

# Sequences are not rolled back: the rows these tests insert would move merging_person's for the tests after.
pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "other"]),
    pytest.mark.usefixtures("restore_sequences"),
]


def make_groups(n: int, size: int = 2) -> None:
    Person.objects.bulk_create(
        Person(email=f"g{i}@example.com", name=f"{i}-{j}") for i in range(n) for j in range(size)
    )


def assert_each_group_merged_or_untouched(groups: int, size: int = 2) -> int:
    """Every group is one row (and has its record) or all of its rows; returns how many were merged."""
    left = Counter(
        dict(Person.objects.values_list("email").annotate(n=Count("id")).values_list("email", "n"))
    )
    assert len(left) == groups  # no group lost all its rows
    merged = sum(1 for n in left.values() if n == 1)
    assert all(n in (1, size) for n in left.values()), left.most_common(3)
    assert MergeRecord.objects.count() == merged
    return merged


def start(rule: Rule, kind: str = Job.MERGE_ALL) -> Job:
    params = {"rule": rule.key, "policy": "oldest"} if kind == Job.MERGE_ALL else {"rule": rule.key}
    return jobs.start(kind, rule.description, params)


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_db_worker_runs_a_scan_job_and_a_merge_all_job(rule: Rule) -> None:
    make_groups(30)
    assert jobs.worker_backed()
    scan = start(rule, Job.SCAN)
    every = jobs.start(Job.SCAN_ALL, "every rule", {})
    merge = start(rule)
    assert scan.status == every.status == merge.status == Job.QUEUED
    with db_worker(INTEGRITY_SCAN_CHUNK_ROWS=8):  # the scans in chunks of 8 rows, groups across them
        wait_for(lambda: not job_status(merge.pk).active, what="the merge-all job to end")
        wait_for(lambda: not job_status(scan.pk).active, what="the scan job to end")
        wait_for(lambda: not job_status(every.pk).active, what="the scan-every-rule job to end")
    scan, every, merge = job_status(scan.pk), job_status(every.pk), job_status(merge.pk)
    assert (scan.status, scan.result["total_groups"], len(scan.result["groups"])) == (Job.FINISHED, 30, 30)
    assert scan.total is not None and scan.done == scan.total > 1  # its progress counted in chunks
    assert every.status == Job.FINISHED, every.error
    assert rule.key in {r["rule"] for r in every.result["rules"]}
    assert (merge.status, merge.done, merge.total, merge.result["merged"]) == (Job.FINISHED, 30, 30, 30)
    assert assert_each_group_merged_or_untouched(30) == 30


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_cancel_stops_a_db_worker_job_between_two_groups(rule: Rule) -> None:
    make_groups(300)
    job = start(rule)
    with db_worker(INTEGRITY_MERGE_BATCH=5):
        wait_for(lambda: job_status(job.pk).done >= 10, what="two batches merged")
        jobs.cancel(job_status(job.pk))
        wait_for(lambda: not job_status(job.pk).active, what="the job to stop")
    job = job_status(job.pk)
    assert job.status == Job.CANCELLED
    merged = assert_each_group_merged_or_untouched(300)
    assert merged == job.result["merged"] == job.done
    assert 10 <= merged < 300  # it stopped between two groups: each one merged whole or untouched
    assert job.total == 300  # the one scan listed them all


@override_settings(INTEGRITY_TASK_BACKEND="db", INTEGRITY_JOB_STALE_SECONDS=2)
def test_a_worker_killed_mid_merge_leaves_the_job_failed_and_no_group_half_merged(rule: Rule) -> None:
    make_groups(400)
    job = start(rule)
    with db_worker(INTEGRITY_JOB_STALE_SECONDS=2) as proc:
        wait_for(lambda: job_status(job.pk).done >= 20, what="the merge to be under way")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert job_status(job.pk).status == Job.RUNNING  # nobody said otherwise yet
    time.sleep(2.5)  # past INTEGRITY_JOB_STALE_SECONDS without a heartbeat
    read = jobs.read(job.pk)
    assert read is not None and read.status == Job.FAILED
    assert "worker stopped" in read.error
    merged = assert_each_group_merged_or_untouched(400)
    assert 20 <= merged < 400


@override_settings(INTEGRITY_TASK_BACKEND="rq")
def test_rq_worker_runs_a_scan_job_and_a_merge_all_job(rule: Rule) -> None:
    make_groups(30)
    with redis_server():
        assert jobs.worker_backed()
        scan = start(rule, Job.SCAN)
        merge = start(rule)
        with rq_worker():
            wait_for(lambda: not job_status(merge.pk).active, what="the merge-all job to end")
            wait_for(lambda: not job_status(scan.pk).active, what="the scan job to end")
    scan, merge = job_status(scan.pk), job_status(merge.pk)
    assert (scan.status, scan.result["total_groups"]) == (Job.FINISHED, 30), scan.error
    assert (merge.status, merge.result["merged"]) == (Job.FINISHED, 30), merge.error
    assert assert_each_group_merged_or_untouched(30) == 30


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_db_worker_runs_an_enforce_build_started_from_its_page() -> None:
    from tests.helpers import ENFORCE, client_for, undo_enforce, unique_indexes

    vat = "default:crm.Company:unique:vat_number"
    client = client_for("superuser")
    page = client.get(ENFORCE, {"rule": vat}).content.decode()
    token = page.split('name="token" value="', 1)[1].split('"', 1)[0]
    try:
        started = client.post(ENFORCE, {"rule": vat, "token": token})
        assert started.status_code == 303
        job = Job.objects.get(kind=Job.ENFORCE)
        assert job.status == Job.QUEUED and job.params["rule"] == vat
        with db_worker():
            wait_for(lambda: not job_status(job.pk).active, what="the Enforce job to end")
        job = job_status(job.pk)
        assert job.status == Job.FINISHED, job.error
        run = EnforceRun.objects.get(pk=job.params["run"])
        assert run.status == EnforceRun.DONE
        assert any(
            name.endswith("vat_number_key") or "vat" in name for name, _valid in unique_indexes("crm_company")
        )
        assert "enforced" in client.get(started["Location"]).content.decode()
    finally:
        undo_enforce()
