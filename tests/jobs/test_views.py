"""The Jobs pages and the pages that start jobs: permissions, progress, result, Cancel, query counts."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from integrity.duplicates.rules import Rule
from integrity.models import Job, MergeRecord
from tests.helpers import held, make_user, person
from tests.merging.models import Person

pytestmark = [
    pytest.mark.django_db(databases=["default", "other"]),
    # The rows inserted here move sequences (never rolled back): put them back for the tests after.
    pytest.mark.usefixtures("rules_configured", "restore_sequences"),
]

JOBS = "/admin/integrity/job/"
MERGERS = ["view_duplicaterule", "merge_duplicates"]


def client_for(role: str, codenames: list[str] | None = None, **kwargs: object) -> Client:
    """A client logged in as a new user (each its own name: a test may need several)."""
    client = Client(**kwargs)  # type: ignore[arg-type]
    if role != "anonymous":
        client.force_login(
            make_user(role, codenames, username=f"{role}{Client.__dict__.get('n', 0)}{id(client)}")
        )
    return client


def job(**fields: object) -> Job:
    defaults: dict[str, object] = {"kind": Job.MERGE_ALL, "what": "merging.Person: email", "params": {}}
    return Job.objects.create(**{**defaults, **fields})


def test_the_jobs_page_lists_only_the_jobs_the_user_may_see_newest_first(rule: Rule) -> None:
    job(status=Job.RUNNING, done=30, total=120, what="first merge")
    job(kind=Job.RESYNC_ALL, what="2 sequences", status=Job.FINISHED)
    job(status=Job.FAILED, what="second merge", error="boom")
    page = client_for("staff", MERGERS).get(JOBS)
    assert page.status_code == 200
    text = page.content.decode()
    assert text.index("second merge") < text.index("first merge")
    assert "2 sequences" not in text
    assert '<progress max="120" value="30"></progress>' in text
    assert 'class="integrity-badge job-failed"' in text


def test_the_jobs_page_needs_the_permission_of_some_kind_of_job() -> None:
    assert client_for("staff").get(JOBS).status_code == 403
    assert client_for("anonymous").get(JOBS).status_code == 302  # to the admin's login


def test_a_job_page_needs_the_permissions_of_its_operation() -> None:
    j = job(status=Job.RUNNING)
    assert client_for("staff", ["view_duplicaterule"]).get(f"{JOBS}{j.pk}/").status_code == 403
    assert client_for("staff", MERGERS).get(f"{JOBS}{j.pk}/").status_code == 200
    assert client_for("superuser").get(f"{JOBS}999999/").status_code == 404
    assert client_for("superuser").get(f"{JOBS}x1/").status_code == 404


def test_a_running_job_polls_while_visible_and_offers_cancel_a_finished_one_neither() -> None:
    client = client_for("superuser")
    running = client.get(f"{JOBS}{job(status=Job.RUNNING, done=5, total=10).pk}/").content.decode()
    assert "hx-trigger=\"every 1s [document.visibilityState === 'visible']" in running
    assert 'id="job-cancel"' in running and '<progress max="10" value="5">' in running
    done = client.get(f"{JOBS}{job(status=Job.FINISHED, done=10, total=10, result={'merged': 10}).pk}/")
    text = done.content.decode()
    assert "hx-trigger" not in text and 'id="job-cancel"' not in text
    assert "10 groups merged" in text


def test_a_finished_merge_all_job_links_its_first_and_last_records_and_the_merge_log(rule: Rule) -> None:
    result = {"merged": 3, "skipped_count": 0, "skipped": [], "records": [7, 9]}
    j = job(
        status=Job.FINISHED, done=3, total=3, params={"rule": rule.key, "policy": "oldest"}, result=result
    )
    text = client_for("superuser").get(f"{JOBS}{j.pk}/").content.decode()
    assert 'id="merge-all-done"' in text
    assert 'href="/admin/integrity/mergerecord/7/change/">#7</a>' in text
    assert 'href="/admin/integrity/mergerecord/9/change/">#9</a>' in text
    assert f'href="/admin/integrity/mergerecord/?model__exact={rule.label}"' in text


def test_polling_a_job_that_ended_reloads_the_page_for_its_result() -> None:
    j = job(status=Job.FINISHED)
    response = client_for("superuser").get(f"{JOBS}{j.pk}/", headers={"HX-Request": "true"})
    assert response.headers["HX-Refresh"] == "true"


def test_cancel_is_a_post_with_csrf() -> None:
    j = job(status=Job.RUNNING)
    strict = client_for("superuser", enforce_csrf_checks=True)
    assert strict.post(f"{JOBS}{j.pk}/cancel/").status_code == 403
    client = client_for("staff", MERGERS)
    assert client.get(f"{JOBS}{j.pk}/cancel/").status_code == 405
    assert not Job.objects.get(pk=j.pk).cancel_requested
    response = client.post(f"{JOBS}{j.pk}/cancel/")
    assert response.status_code == 303
    assert Job.objects.get(pk=j.pk).cancel_requested
    page = client.get(response["Location"]).content.decode()
    assert "Stopping after the current unit" in page


def test_a_job_page_costs_a_bounded_number_of_queries(rule: Rule, django_assert_max_num_queries) -> None:
    groups = [{"key": [f"k{i}"], "size": 2, "pks": [2 * i, 2 * i + 1]} for i in range(500)]
    j = job(
        kind=Job.SCAN,
        status=Job.FINISHED,
        params={"rule": rule.key},
        result={
            "rule": rule.key,
            "taken_at": "2026-01-02T03:04:05+00:00",
            "total_groups": 500,
            "total_rows": 1000,
            "complete": True,
            "groups": groups,
        },
    )
    client = client_for("superuser")
    with django_assert_max_num_queries(12):
        page = client.get(f"{JOBS}{j.pk}/")
    text = page.content.decode()
    assert "500 groups of duplicates, 1,000 rows involved, taken at 2026-01-02 03:04:05" in text
    assert text.count("<tr data-size=") == 50  # one page of the stored groups
    with django_assert_max_num_queries(12):
        client.get(JOBS)


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_with_workers_merge_every_group_starts_one_job_and_merges_nothing_in_the_request(rule: Rule) -> None:
    for i in range(3):
        person(f"m{i}@example.com"), person(f"m{i}@example.com")
    client = client_for("staff", MERGERS)
    data = {"rule": rule.key, "policy": "oldest", "step": "run"}
    response = client.post("/admin/integrity/duplicaterule/merge-all/", data)
    assert response.status_code == 303
    queued = Job.objects.get()
    assert response["Location"] == f"{JOBS}{queued.pk}/"
    assert (queued.kind, queued.status, queued.params) == (
        Job.MERGE_ALL,
        Job.QUEUED,
        {"rule": rule.key, "policy": "oldest"},
    )
    assert MergeRecord.objects.count() == 0 and Person.objects.count() == 6
    again = client.post("/admin/integrity/duplicaterule/merge-all/", data, headers={"HX-Request": "true"})
    assert again.headers["HX-Redirect"] == f"{JOBS}{queued.pk}/"  # the same job, not a second one
    assert Job.objects.count() == 1


def test_without_workers_merge_every_group_stays_in_the_request(rule: Rule) -> None:
    person("a@example.com"), person("a@example.com")
    client = client_for("staff", MERGERS)
    response = client.post(
        "/admin/integrity/duplicaterule/merge-all/", {"rule": rule.key, "policy": "oldest", "step": "run"}
    )
    assert response.status_code == 200
    assert MergeRecord.objects.count() == 1 and not Job.objects.exists()


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_scan_as_a_job_is_offered_when_a_scan_times_out_and_starts_one(rule: Rule) -> None:
    client = client_for("staff", ["view_duplicaterule"])
    with held(
        "merging_person"
    ):  # a migration rewriting the table: the in-request scan cannot read it in time
        page = client.get(f"/admin/integrity/duplicaterule/rule/?rule={rule.key}").content.decode()
    assert "Scan as a job" in page, page[-3000:]
    response = client.post("/admin/integrity/duplicaterule/scan-job/", {"rule": rule.key})
    assert response.status_code == 303
    assert Job.objects.get().kind == Job.SCAN
    assert client.post(
        "/admin/integrity/duplicaterule/scan-job/", {"rule": "default:nope.Nope:x"}
    ).status_code in (400, 404)
    assert Job.objects.count() == 1


RULES = "/admin/integrity/duplicaterule/"
SCAN_ALL = f"{RULES}scan-all-job/"
EVENTS = "/admin/integrity/eventgroup/"
PRUNERS = ["view_eventgroup", "delete_eventgroup"]


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_with_workers_the_rules_page_scans_every_unenforced_rule_as_one_job(rule: Rule) -> None:
    client = client_for("staff", ["view_duplicaterule"])
    page = client.get(RULES).content.decode()
    assert 'id="scan-all-job-form"' in page and f'action="{SCAN_ALL}"' in page
    response = client.post(SCAN_ALL)
    job = Job.objects.get()
    assert (response.status_code, response["Location"]) == (303, f"{JOBS}{job.pk}/")
    assert (job.kind, job.status) == (Job.SCAN_ALL, Job.QUEUED)  # the worker counts, not the request
    assert client.post(SCAN_ALL)["Location"] == f"{JOBS}{job.pk}/"  # a second press follows the same job
    assert Job.objects.count() == 1
    assert client_for("staff").post(SCAN_ALL).status_code == 403
    assert Job.objects.count() == 1


def test_without_workers_no_scan_runs_as_a_job_and_a_post_is_refused(rule: Rule) -> None:
    client = client_for("staff", ["view_duplicaterule"])
    assert 'id="scan-all-job-form"' not in client.get(RULES).content.decode()
    for url, data in ((SCAN_ALL, {}), (f"{RULES}scan-job/", {"rule": rule.key})):
        response = client.post(url, data)
        assert response.status_code == 409, url
        assert "No task worker is configured" in response.content.decode()
    assert not Job.objects.exists()


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_with_workers_the_events_page_prunes_as_a_job() -> None:
    client = client_for("staff", PRUNERS)
    page = client.get(EVENTS).content.decode()
    assert 'id="events-prune"' in page and "Prune as a job" in page
    response = client.post(f"{EVENTS}prune/", {"days": "7"})
    job = Job.objects.get()
    assert (response.status_code, response["Location"]) == (303, f"{JOBS}{job.pk}/")
    assert (job.kind, job.status, job.params) == (Job.PRUNE, Job.QUEUED, {"older_than_seconds": 7 * 86_400})
    assert job.what == "Samples older than 7 days"


@override_settings(INTEGRITY_TASK_BACKEND="db")
@pytest.mark.parametrize("days", ["", "-1", "seven", "36501"])
def test_a_prune_of_a_bad_age_is_refused_and_starts_nothing(days: str) -> None:
    response = client_for("staff", PRUNERS).post(f"{EVENTS}prune/", {"days": days})
    assert response.status_code == 400
    assert 'class="messagelist"' in response.content.decode()
    assert not Job.objects.exists()


def test_pruning_needs_the_delete_permission_of_the_events() -> None:
    viewer = client_for("staff", ["view_eventgroup"])
    assert 'id="events-prune"' not in viewer.get(EVENTS).content.decode()
    assert viewer.post(f"{EVENTS}prune/", {"days": "7"}).status_code == 403
    assert not Job.objects.exists()
