"""The Enforce pages through Django's test client: the confirmation shows the exact SQL, a POST (CSRF) starts the
build in a thread of the web process, its page (polled every second) follows it to ``enforced``.

Builds commit (``transaction=True``: CREATE INDEX CONCURRENTLY runs on a
connection of its own); the ``restore`` fixture puts the demo's drift back.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings

from integrity.models import EnforceRun
from tests.helpers import (
    ENFORCE,
    ENFORCE_RUN,
    client_for,
    csrf_token_of,
    leave_invalid_subscriber_index,
    run,
    text,
    undo_enforce,
    unique_indexes,
    vat_index_name,
)

DB = pytest.mark.django_db(databases="__all__")
COMMITTING = pytest.mark.django_db(databases="__all__", transaction=True)

VAT = "default:crm.Company:unique:vat_number"
SUBSCRIBER = "default:crm.Subscriber:crm_subscriber_email_uniq"
EMAIL_CI = "default:crm.Customer:crm_customer_email_ci_uniq"
NAME_CI = "default:crm.Customer:configured:customer_name_ci"
RULE = "/admin/integrity/duplicaterule/rule/"
SUMMARY = "/admin/integrity/duplicaterule/summary/"
ROLES = {
    "viewer": ["view_duplicaterule"],
    "enforcer": ["view_duplicaterule", "enforce_duplicaterule"],
}
client = partial(client_for, roles=ROLES)


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    undo_enforce()


def confirm(c: Client, key: str) -> Any:
    return c.get(f"{ENFORCE}?{urlencode({'rule': key})}")


def token_of(content: bytes) -> str:
    found = re.search(rb'name="token" value="([0-9a-f]+)"', content)
    assert found is not None
    return found.group(1).decode()


def code_of(content: bytes, code_id: str) -> str:
    """The text of a copyable block, exactly as the page holds it."""
    found = re.search(rf'<pre id="{code_id}"><code>(.*?)</code></pre>'.encode(), content, re.S)
    assert found is not None
    return html.unescape(found.group(1).decode())


def text_of(fragment: bytes) -> str:
    """A fragment's visible text, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(rb"<[^>]+>", b" ", fragment).decode()).split())


def post_enforce(c: Client, key: str) -> Any:
    page = confirm(c, key)
    return c.post(ENFORCE, {"rule": key, "token": token_of(page.content)})


def follow_run(c: Client, location: str, timeout: float = 60.0) -> Any:
    """Poll the run's page (as htmx does, every second here 0.2 s) until the run is over."""
    deadline = time.monotonic() + timeout
    while True:
        page = c.get(location, HTTP_HX_REQUEST="true")
        assert page.status_code == 200
        status = re.search(rb'data-status="(\w+)"', page.content)
        assert status is not None
        if status.group(1) in (b"done", b"refused", b"failed") or time.monotonic() > deadline:
            return c.get(location)
        time.sleep(0.2)


@DB
@pytest.mark.parametrize("role", ["viewer", "staff"])
def test_enforce_needs_its_own_permission(role: str):
    c = client(role)
    assert confirm(c, VAT).status_code == 403
    assert c.post(ENFORCE, {"rule": VAT, "token": "x"}).status_code == 403
    assert c.get(f"{ENFORCE_RUN}?run=1").status_code == 403
    assert not EnforceRun.objects.exists()


@DB
def test_the_rule_page_offers_enforce_only_with_the_permission():
    ready = b'id="enforce-ready"'
    assert ready in client("enforcer").get(f"{RULE}?{urlencode({'rule': VAT})}").content
    assert ready not in client("viewer").get(f"{RULE}?{urlencode({'rule': VAT})}").content


@DB
def test_the_rule_page_does_not_offer_enforce_while_there_are_duplicates():
    run("INSERT INTO crm_company (name, vat_number) VALUES ('A', 'GB1'), ('B', 'GB1')")
    page = client("enforcer").get(f"{RULE}?{urlencode({'rule': VAT})}")
    assert b'id="enforce-ready"' not in page.content


@DB
def test_the_dashboard_card_counts_the_rules_ready_to_enforce():
    page = client("superuser").get(SUMMARY)
    # The drifted VAT number and subscriber email rules (no rows), and the configured customer name rule.
    assert "3 ready to enforce" in text(page)


@DB
def test_the_confirmation_shows_exactly_the_sql_and_a_csrf_form():
    page = confirm(client("enforcer"), VAT)
    assert page.status_code == 200
    name = vat_index_name()
    assert "Ready to enforce: no duplicates left." in text(page)
    assert code_of(page.content, "enforce-sql") == (
        f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON "crm_company" ("vat_number");\n'
        f'ALTER TABLE "crm_company" ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}";\n'
    )
    assert b'name="csrfmiddlewaretoken"' in page.content
    assert unique_indexes("crm_company") == [("crm_company_name_key", True)]


@DB
def test_a_post_without_csrf_is_refused():
    c = client("enforcer", enforce_csrf_checks=True)
    assert c.post(ENFORCE, {"rule": VAT, "token": "x"}).status_code == 403
    page = confirm(c, VAT)
    assert csrf_token_of(page.content)


@DB
def test_a_stale_confirmation_is_refused_and_nothing_runs():
    page = client("enforcer").post(ENFORCE, {"rule": VAT, "token": "0" * 16})
    assert page.status_code == 409
    assert "The rule's state changed since the confirmation was shown: nothing was changed." in text(page)
    assert not EnforceRun.objects.exists()


@DB
def test_duplicates_present_mean_not_ready_with_a_link_to_the_groups():
    run("INSERT INTO crm_company (name, vat_number) VALUES ('A', 'GB1'), ('B', 'GB1')")
    page = confirm(client("enforcer"), VAT)
    body = text(page)
    assert "Not ready: 1 group of duplicates (2 rows) still breaks this rule." in body
    assert f'href="{RULE}?{urlencode({"rule": VAT})}"'.encode() in page.content
    assert b'id="enforce-form"' not in page.content


@DB
def test_an_unapplied_migration_shows_the_migrate_command():
    MigrationExecutor(connection).migrate([("crm", "0004_subscriber_email_uniq")])
    page = confirm(client("enforcer"), EMAIL_CI)
    body = text(page)
    assert "Migration crm.0005_customer_email_ci adds this rule and is not applied." in body
    assert "With the duplicates gone it will now succeed" in body
    assert "python manage.py migrate crm 0005_customer_email_ci" in body
    assert b'id="enforce-form"' not in page.content


@DB
def test_a_configured_rule_shows_the_meta_code_and_the_makemigrations_hint():
    body = text(confirm(client("enforcer"), NAME_CI))
    assert 'models.UniqueConstraint(Lower(Trim("name")), name="crm_customer_name_ci_uniq"),' in body
    assert "python manage.py makemigrations crm" in body


@DB
def test_a_post_for_a_rule_with_nothing_to_build_is_refused():
    page = client("enforcer").post(ENFORCE, {"rule": NAME_CI, "token": "x"})
    assert page.status_code == 409
    assert "There is no index to build for this rule" in text(page)


@DB
@pytest.mark.parametrize("query", ["run=abc", "run=0", "", "run=99999999999999999999"])
def test_a_bad_run_id_is_a_400(query: str):
    assert client("enforcer").get(f"{ENFORCE_RUN}?{query}").status_code == 400


@DB
def test_an_unknown_run_is_a_404():
    assert client("enforcer").get(f"{ENFORCE_RUN}?run=123456").status_code == 404


@COMMITTING
def test_enforce_a_drifted_rule_from_the_admin(restore: None):
    c = client("enforcer")
    started = post_enforce(c, VAT)
    assert started.status_code == 303
    assert started["Location"].startswith(f"{ENFORCE_RUN}?run=")
    done = follow_run(c, started["Location"])
    body = text(done)
    assert f"Enforced by {vat_index_name()}, verified valid." in body
    assert f"The rule is now enforced by index {vat_index_name()}" in body
    rule_page = text(c.get(f"{RULE}?{urlencode({'rule': VAT})}"))
    assert f"Enforced by index {vat_index_name()}: no duplicates possible." in rule_page
    run_row = EnforceRun.objects.get()
    assert (run_row.status, run_row.user.username if run_row.user else None) == ("done", "enforcer")


@COMMITTING
def test_enforce_an_invalid_rule_from_the_admin(restore: None):
    leave_invalid_subscriber_index()
    c = client("enforcer")
    body = text(confirm(c, SUBSCRIBER))
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "public"."crm_subscriber_email_uniq";' in body
    done = follow_run(c, post_enforce(c, SUBSCRIBER)["Location"])
    assert "The rule is now enforced by index crm_subscriber_email_uniq" in text(done)
    assert unique_indexes("crm_subscriber") == [("crm_subscriber_email_uniq", True)]


@COMMITTING
def test_duplicates_that_slip_in_after_the_confirmation_fail_the_build_cleanly(restore: None):
    c = client("enforcer")
    page = confirm(c, VAT)
    run("INSERT INTO crm_company (name, vat_number) VALUES ('A', 'GB1'), ('B', 'GB1'), ('C', 'GB2')")
    started = c.post(ENFORCE, {"rule": VAT, "token": token_of(page.content)})
    done = follow_run(c, started["Location"])
    body = text(done)
    assert "Duplicates came in while the index was built: it was dropped, nothing else changed." in body
    assert "1 group of duplicates now breaks the rule:" in body
    assert "2 rows with GB1" in body
    assert f'href="{RULE}?{urlencode({"rule": VAT})}"'.encode() in done.content
    assert unique_indexes("crm_company") == [("crm_company_name_key", True)]


@COMMITTING
@override_settings(INTEGRITY_LOCK_TIMEOUT_MS=20000)
def test_the_run_page_shows_postgresqls_progress_while_the_build_waits(restore: None):
    run(
        "INSERT INTO crm_company (name, vat_number) SELECT 'c-' || n, 'V' || n FROM generate_series(1, 1000) AS n"
    )
    with psycopg.connect(**connection.get_connection_params()) as old:
        old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT count(*) FROM crm_company")  # a snapshot older than the build: it waits for it
        c = client("enforcer")
        location = post_enforce(c, VAT)["Location"]
        deadline = time.monotonic() + 30
        fragment = b""
        # PostgreSQL reports "initializing" first; the build then waits for the old snapshot until it ends.
        while time.monotonic() < deadline and b"waiting for old snapshots" not in fragment:
            fragment = c.get(location, HTTP_HX_REQUEST="true").content
            time.sleep(0.05)
        old.rollback()
    body = text_of(fragment)
    assert "Phase waiting for old snapshots" in body
    assert "Blocks" in body and "Tuples" in body
    assert f'hx-get="{location}" hx-trigger="every 1s"'.encode() in fragment.replace(b"&amp;", b"&")
    done = follow_run(c, location)
    assert b"hx-trigger" not in done.content  # polling stops once the run is over
    assert "The rule is now enforced" in text(done)


@COMMITTING
def test_a_run_whose_process_died_does_not_block_a_new_one(restore: None):
    c = client("enforcer")
    dead = EnforceRun.objects.create(database="default", rule=VAT, index="x", sql="", status="running", pid=1)
    page = c.get(f"{ENFORCE_RUN}?run={dead.pk}")
    assert "The build stopped without finishing (its process ended)." in text(page)
    started = post_enforce(c, VAT)
    assert started["Location"] != f"{ENFORCE_RUN}?run={dead.pk}"
    assert "The rule is now enforced" in text(follow_run(c, started["Location"]))
