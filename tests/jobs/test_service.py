"""Jobs run in this process (Django's immediate backend): each kind ends finished, failed or cancelled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrity import jobs
from integrity.duplicates import chunked
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import Rule
from integrity.jobs import runner, service
from integrity.jobs.compat import BASE
from integrity.jobs.tasks import Work
from integrity.models import Job, MergeRecord
from tests.helpers import person
from tests.merging.models import Person

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("constraints_checked", "restore_sequences")]

DUMMY = {"default": {"BACKEND": f"{BASE}.backends.dummy.DummyBackend"}}  # enqueues, never runs


def groups_of(n: int, size: int = 2) -> list[list[Person]]:
    return [[person(f"g{i}@example.com") for _ in range(size)] for i in range(n)]


def run_cancelling(job: Job, *, when: Callable[[int], bool]) -> str:
    """Run ``job`` here, a user pressing Cancel as soon as a unit reports ``done`` such that ``when(done)``."""
    real = runner.Unit.progress

    def progress(unit: runner.Unit, done: int, total: int | None = None, **kw: object) -> None:
        if when(done):
            Job.objects.filter(pk=unit.job.pk).update(cancel_requested=True)
        real(unit, done, total, **kw)  # type: ignore[arg-type]

    runner.Unit.progress = progress  # type: ignore[method-assign,assignment]
    try:
        return runner.execute(job.pk, Work())
    finally:
        runner.Unit.progress = real  # type: ignore[method-assign]


def test_the_default_immediate_backend_is_not_worker_backed() -> None:
    assert not jobs.worker_backed()


def test_an_unknown_backend_is_not_worker_backed_and_says_why() -> None:
    with override_settings(INTEGRITY_TASK_BACKEND="nowhere"):
        assert not jobs.worker_backed()
        assert "nowhere" in (service.backend_error() or "")


def test_a_merge_all_job_merges_every_group_and_says_how_many(rule: Rule) -> None:
    groups_of(25, size=3)
    user = User.objects.create_superuser("boss", "b@example.com", "pw")
    job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"}, user)
    assert (job.status, job.done, job.total, job.error) == (Job.FINISHED, 25, 25, "")
    assert job.result["merged"] == 25
    assert Person.objects.count() == 25
    assert MergeRecord.objects.filter(user=user).count() == 25
    made = list(MergeRecord.objects.order_by("pk").values_list("pk", flat=True))
    assert job.result["records"] == [made[0], made[-1]]
    assert job.started_at and job.finished_at and job.task_id


def table_scans(queries: CaptureQueriesContext) -> int:
    """Statements that read the people table for a duplicate scan (a grouping, or a chunk staged)."""
    return sum(
        1
        for q in queries.captured_queries
        if 'FROM "merging_person"' in q["sql"] and ("HAVING" in q["sql"] or "integrity_scan_" in q["sql"])
    )


@pytest.mark.parametrize("chunk_rows", [1_000_000, 8], ids=["one statement", "chunks"])
@pytest.mark.parametrize("n", [15, 60])
def test_a_merge_all_job_scans_the_table_once_then_counts_what_is_left(
    rule: Rule, chunk_rows: int, n: int
) -> None:
    """Not a scan per batch of groups: one scan lists them all, one more counts what is left."""
    groups_of(n)
    with override_settings(INTEGRITY_SCAN_CHUNK_ROWS=chunk_rows, INTEGRITY_MERGE_BATCH=5):
        with CaptureQueriesContext(connection) as one:
            chunked.scan_chunked(rule, limit=0)
        with CaptureQueriesContext(connection) as queries:
            job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"})
    assert (job.status, job.done, job.total, job.result["merged"]) == (Job.FINISHED, n, n, n), job.error
    assert job.result["remaining"] == 0 and job.result["phase"] == "done"
    assert Person.objects.count() == n and MergeRecord.objects.count() == n
    assert 1 <= table_scans(one) and table_scans(queries) <= 2 * table_scans(one)
    if chunk_rows > n * 2:
        assert table_scans(queries) == 2


def run_with(job: Job, *, at: Callable[[dict[str, object], int], None]) -> str:
    """Run ``job`` here, calling ``at(result, done)`` as each unit reports (a user, or another writer)."""
    real = runner.Unit.progress

    def progress(unit: runner.Unit, done: int, total: int | None = None, **kw: object) -> None:
        real(unit, done, total, **kw)  # type: ignore[arg-type]
        at(unit.job.result, done)

    runner.Unit.progress = progress  # type: ignore[method-assign,assignment]
    try:
        return runner.execute(job.pk, Work())
    finally:
        runner.Unit.progress = real  # type: ignore[method-assign]


@override_settings(TASKS=DUMMY)
def test_a_merge_all_job_skips_a_group_changed_after_its_scan_and_merges_a_grown_one_as_scanned(
    rule: Rule,
) -> None:
    changed, grown, *rest = groups_of(6)
    job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"})
    late: list[Person] = []

    def meanwhile(result: dict[str, object], done: int) -> None:
        if result.get("phase") == "merging" and done == 0:  # scanned, nothing merged yet
            Person.objects.filter(pk=changed[1].pk).update(email="moved@example.com")
            late.append(person(grown[0].email))

    assert run_with(job, at=meanwhile) == Job.FINISHED
    job.refresh_from_db()
    assert (job.result["merged"], job.result["skipped_count"], job.done, job.total) == (5, 1, 6, 6)
    [(pk, why)] = job.result["skipped"]
    assert pk == str(changed[0].pk) and why
    assert {p.pk for p in Person.objects.filter(pk__in=[m.pk for m in changed])} == {m.pk for m in changed}
    # The grown group was merged as scanned: its late member is left with the survivor, a group still.
    assert Person.objects.filter(email=grown[0].email).count() == 2
    assert Person.objects.filter(pk=late[0].pk).exists()
    assert job.result["remaining"] == 1
    assert all(Person.objects.filter(email=g[0].email).count() == 1 for g in rest)


@override_settings(TASKS=DUMMY, INTEGRITY_MERGE_BATCH=100)
def test_a_cancel_mid_list_stops_between_two_groups(rule: Rule) -> None:
    groups_of(9)
    job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"})

    def press_cancel_after_three() -> None:
        if MergeRecord.objects.count() == 3:
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)

    real = runner.Unit.should_stop

    def should_stop(unit: runner.Unit) -> bool:
        press_cancel_after_three()
        return real(unit)

    runner.Unit.should_stop = should_stop  # type: ignore[method-assign,assignment]
    try:
        assert runner.execute(job.pk, Work()) == Job.CANCELLED
    finally:
        runner.Unit.should_stop = real  # type: ignore[method-assign]
    job.refresh_from_db()
    assert (job.done, job.total, job.result["merged"]) == (3, 9, 3)
    assert MergeRecord.objects.count() == 3
    counts = sorted(Person.objects.values_list("email").annotate(n=Count("id")).values_list("n", flat=True))
    assert counts == [1, 1, 1, 2, 2, 2, 2, 2, 2]  # 3 merged whole, 6 untouched


def test_a_scan_job_stores_the_groups_largest_first(rule: Rule) -> None:
    groups_of(3, size=2)
    person("big@example.com"), person("big@example.com"), person("big@example.com")
    job = jobs.start(Job.SCAN, rule.description, {"rule": rule.key})
    assert job.status == Job.FINISHED
    assert (job.result["total_groups"], job.result["total_rows"]) == (4, 9)
    assert [g["size"] for g in job.result["groups"]] == [3, 2, 2, 2]
    assert job.result["groups"][0]["key"] == ["big@example.com"]
    assert job.result["complete"] and job.result["taken_at"]


def test_a_scan_job_keeps_the_first_groups_only(rule: Rule) -> None:
    groups_of(5)
    with override_settings(INTEGRITY_JOB_RESULT_GROUPS=2):
        job = jobs.start(Job.SCAN, rule.description, {"rule": rule.key})
    assert job.result["total_groups"] == 5
    assert len(job.result["groups"]) == 2


@override_settings(INTEGRITY_SCAN_CHUNK_ROWS=4)
def test_a_scan_job_runs_in_chunks_with_the_one_statement_answer(rule: Rule) -> None:
    """Groups straddle chunks of 4 rows: the job reports each chunk and still finds the scan's groups."""
    for i in range(6):
        for _ in range(1 + i % 3):
            person(f"c{i}@example.com")
    person("solo@example.com")
    whole = duplicates.scan(rule, limit=1000)
    job = jobs.start(Job.SCAN, rule.description, {"rule": rule.key})
    assert job.status == Job.FINISHED, job.error
    assert job.total is not None and job.total > 1 and job.done == job.total
    assert (job.result["total_groups"], job.result["total_rows"]) == (whole.total_groups, whole.total_rows)
    assert [(g["key"], g["size"], g["pks"]) for g in job.result["groups"]] == [
        (list(g.key), g.size, g.pks) for g in whole.groups
    ]


@override_settings(TASKS=DUMMY, INTEGRITY_SCAN_CHUNK_ROWS=4)
def test_a_cancelled_scan_job_stops_between_two_chunks_and_says_it_is_incomplete(rule: Rule) -> None:
    groups_of(10)
    job = jobs.start(Job.SCAN, rule.description, {"rule": rule.key})
    # Cancel during the first chunk.
    assert run_cancelling(job, when=lambda done: True) == Job.CANCELLED
    job.refresh_from_db()
    assert job.done == 1 and job.total is not None and job.total > 1
    assert job.result["complete"] is False
    assert job.result["total_groups"] < 10


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("chunk_rows", [1_000_000, 4], ids=["one statement", "chunks"])
def test_a_scan_every_rule_job_counts_each_unenforced_rule(rule: Rule, chunk_rows: int) -> None:
    groups_of(4, size=3)
    with override_settings(INTEGRITY_SCAN_CHUNK_ROWS=chunk_rows):
        job = jobs.start(Job.SCAN_ALL, "every rule", {})
    assert job.status == Job.FINISHED, job.error
    [row] = [r for r in job.result["rules"] if r["rule"] == rule.key]
    assert (row["groups"], row["rows"]) == (4, 12)
    assert job.done == job.total == len(job.result["rules"])


def test_a_job_of_a_rule_that_does_not_exist_fails_saying_so() -> None:
    job = jobs.start(Job.SCAN, "nothing", {"rule": "default:merging.Person:configured:nope"})
    assert job.status == Job.FAILED
    assert "nope" in job.error


@override_settings(TASKS=DUMMY)
def test_cancel_of_a_queued_job_ends_it_at_once_and_no_worker_runs_it(rule: Rule) -> None:
    groups_of(2)
    job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"})
    assert job.status == Job.QUEUED
    assert jobs.cancel(job).status == Job.CANCELLED
    assert runner.execute(job.pk, Work()) == Job.CANCELLED
    assert MergeRecord.objects.count() == 0


@override_settings(TASKS=DUMMY, INTEGRITY_MERGE_BATCH=2)
def test_a_cancel_while_running_stops_after_the_batch_and_leaves_the_rest_untouched(rule: Rule) -> None:
    groups_of(7)
    job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"})
    # The first batch is done: a user presses Cancel.
    assert run_cancelling(job, when=lambda done: done == 2) == Job.CANCELLED
    job.refresh_from_db()
    assert (job.done, job.result["merged"]) == (2, 2)
    assert MergeRecord.objects.count() == 2
    assert Person.objects.count() == 12  # 2 of 7 groups merged, each fully


@override_settings(TASKS=DUMMY, INTEGRITY_JOB_STALE_SECONDS=30)
def test_a_running_job_without_heartbeat_is_marked_failed_when_read(rule: Rule) -> None:
    job = jobs.start(Job.SCAN, rule.description, {"rule": rule.key})
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING)
    assert jobs.read(job.pk).status == Job.RUNNING  # type: ignore[union-attr]
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=31))
    read = jobs.read(job.pk)
    assert read is not None and read.status == Job.FAILED
    assert "worker stopped" in read.error


@override_settings(TASKS=DUMMY, INTEGRITY_JOB_STALE_SECONDS=30)
def test_a_stale_job_run_again_is_resumed(rule: Rule) -> None:
    groups_of(3)
    job = jobs.start(Job.MERGE_ALL, rule.description, {"rule": rule.key, "policy": "oldest"})
    old = timezone.now() - timedelta(seconds=31)
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, updated_at=old)
    assert runner.execute(job.pk, Work()) == Job.FINISHED
    assert MergeRecord.objects.count() == 3
