"""Never wait forever: every read of the pages and the command is bounded by a lock and a statement timeout.

Another connection holds a table in ACCESS EXCLUSIVE mode (what a migration
or ``VACUUM FULL`` holds). The holder's session ends by itself after
``HOLD_SECONDS`` (``idle_in_transaction_session_timeout``), so a read that
waits for the lock would answer only then: each test asserts the answer came
well before (the timeout setting plus a generous margin) and what it says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings

from demo.shop.models import Product
from integrity.models import MergeRecord
from tests.helpers import HOLD_SECONDS, MARGIN, held
from tests.helpers import integrity_command as command

TIMEOUTS = {"INTEGRITY_READ_LOCK_TIMEOUT_MS": 300, "INTEGRITY_READ_STATEMENT_TIMEOUT_MS": 3000}

pytestmark = pytest.mark.django_db(databases="__all__")


@contextmanager
def prompt(limit_ms: int = TIMEOUTS["INTEGRITY_READ_STATEMENT_TIMEOUT_MS"]) -> Iterator[None]:
    """The block must finish within ``limit_ms`` plus ``MARGIN``, far less than the lock is held."""
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < limit_ms / 1000 + MARGIN < HOLD_SECONDS, f"answered after {elapsed:.1f} s"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="x"))
    return client


# ---------------------------------------------------------------------------
# Sequences: the page, the command
# ---------------------------------------------------------------------------


@override_settings(**TIMEOUTS)
def test_sequences_page_answers_with_the_locked_table_shown_busy(admin_client):
    with held(Product._meta.db_table), prompt():
        response = admin_client.get("/admin/integrity/sequence/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-status="busy"' in page
    assert "table locked by another transaction" in page
    assert 'data-status="ok"' in page or 'data-status="ahead"' in page or 'data-status="empty"' in page


@override_settings(**TIMEOUTS)
def test_sequences_command_reports_the_locked_table_and_exits_1():
    with held(Product._meta.db_table), prompt():
        code, out, err = command("sequences", "--json")
    assert code == 1
    rows = json.loads(out)
    product = [r for r in rows if r["model"] == "shop.Product" and r["database"] == "default"]
    assert [
        (r["status"], r["reason"].startswith("table locked by another transaction")) for r in product
    ] == [("busy", True)]
    others = [r for r in rows if r["model"] != "shop.Product"]
    assert others and all(r["status"] != "busy" for r in others)
    assert "shop.Product" in err and "table locked by another transaction" in err


@override_settings(**TIMEOUTS)
def test_the_connection_settings_are_untouched_after_a_bounded_read(admin_client):
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        before = cursor.fetchone()
    assert admin_client.get("/admin/integrity/sequence/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == before
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)


# ---------------------------------------------------------------------------
# Every other page, and the events command: the page answers, saying what could not be read
# ---------------------------------------------------------------------------

LOCKED_PAGES = [
    ("integrity_eventgroup", "/admin/integrity/eventgroup/"),
    ("integrity_eventgroup", "/admin/integrity/eventgroup/group/?id=1"),
    ("integrity_mergerecord", "/admin/integrity/mergerecord/"),
    ("integrity_sequenceresync", "/admin/integrity/sequenceresync/"),
    ("crm_company", "/admin/integrity/duplicaterule/"),
    ("crm_company", "/admin/integrity/duplicaterule/rule/?rule=default:crm.Company:unique:vat_number"),
    ("crm_company", "/admin/integrity/duplicaterule/group/?rule=default:crm.Company:unique:vat_number&pk=1"),
    ("crm_company", "/admin/integrity/duplicaterule/count/?rule=default:crm.Company:unique:vat_number"),
    ("integrity_eventgroup", "/admin/integrity/"),
    ("shop_product", "/admin/integrity/"),
]


@override_settings(**TIMEOUTS)
@pytest.mark.parametrize(("table", "url"), LOCKED_PAGES)
def test_a_page_whose_table_is_locked_answers_promptly_and_says_so(admin_client, table, url):
    with held(table), prompt():
        response = admin_client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "locked" in page or "timed out" in page.lower() or "could not" in page.lower(), page[-3000:]


@override_settings(**TIMEOUTS)
def test_events_command_exits_1_when_the_events_table_is_locked():
    with held("integrity_eventgroup"), prompt():
        code, _out, err = command("events", "--since", "all")
    assert code == 1
    assert "table locked by another transaction" in err


# ---------------------------------------------------------------------------
# Writes: the merge's plan, the merge, undo, prune, nested writing transactions
# ---------------------------------------------------------------------------

WRITE_TIMEOUTS = {**TIMEOUTS, "INTEGRITY_LOCK_TIMEOUT_MS": 300}
EMAIL_RULE = [{"model": "merging.Person", "fields": ["email"], "name": "email"}]


@pytest.fixture
def two_people():
    from tests.merging.models import Order, Person

    with override_settings(INTEGRITY_DUPLICATE_RULES=EMAIL_RULE, **WRITE_TIMEOUTS):
        a = Person.objects.create(email="dup@example.com")
        b = Person.objects.create(email="dup@example.com")
        Order.objects.create(person=b)
        yield a, b


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_merge_preview_with_a_referencing_table_locked_is_refused_promptly(two_people):
    from tests.merging.models import Order, Person

    a, b = two_people
    with held(Order._meta.db_table), prompt():
        code, out, err = command(
            "merge", "merging.Person", "--keep", str(a.pk), "--remove", str(b.pk), "--dry-run"
        )
    assert code == 1
    assert "could not be read in time" in err and "table locked by another transaction" in err
    assert Person.objects.filter(pk=b.pk).exists()


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_merge_with_a_referencing_table_locked_is_refused_promptly_and_changes_nothing(two_people):
    from integrity.models import MergeRecord
    from tests.merging.models import Order, Person

    a, b = two_people
    with held(Order._meta.db_table), prompt():
        code, _out, err = command("merge", "merging.Person", "--keep", str(a.pk), "--remove", str(b.pk))
    assert code == 1
    assert "nothing was changed" in err
    assert Person.objects.filter(pk=b.pk).exists()
    assert Order.objects.get().person_id == b.pk
    assert not MergeRecord.objects.exists()


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_the_merge_page_answers_409_promptly_while_a_referencing_table_is_locked(two_people, admin_client):
    from tests.merging.models import Order, Person

    a, b = two_people
    form = {
        "rule": "default:merging.Person:configured:email",
        "survivor": str(a.pk),
        "remove": [str(b.pk)],
        "step": "preview",
    }
    with held(Order._meta.db_table), prompt():
        response = admin_client.post("/admin/integrity/duplicaterule/merge/", form)
    assert response.status_code == 409
    assert "table locked by another transaction" in response.content.decode()
    assert Person.objects.filter(pk=b.pk).exists()


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.parametrize("step", ["preview", "run"])
def test_merge_every_group_whose_scan_waits_for_a_lock_is_a_503_page_and_changes_nothing(
    two_people, admin_client, step
):
    from tests.merging.models import Order, Person

    url = "/admin/integrity/duplicaterule/merge-all/"
    form = {"rule": "default:merging.Person:configured:email", "policy": "oldest", "step": step}
    before = (
        sorted(Person.objects.values_list("pk", flat=True)),
        sorted(Order.objects.values_list("pk", "person_id")),
    )
    with override_settings(INTEGRITY_SCAN_TIMEOUT_MS=300), held(Person._meta.db_table), prompt():
        page = admin_client.post(url, form, HTTP_REFERER="/admin/integrity/duplicaterule/")
        fragment = admin_client.post(url, form, headers={"HX-Request": "true"})
    for response in (page, fragment):
        assert response.status_code == 503
        shown = response.content.decode()
        assert "This could not be done in time: the duplicate scan ran past 300 ms." in shown
        assert "The step that waited changed nothing" in shown
    assert (
        'href="/admin/integrity/duplicaterule/"' in page.content.decode()
    )  # back to the form, not a GET of a POST
    after = (
        sorted(Person.objects.values_list("pk", flat=True)),
        sorted(Order.objects.values_list("pk", "person_id")),
    )
    assert after == before
    assert not MergeRecord.objects.exists()


@override_settings(**WRITE_TIMEOUTS)
def test_prune_with_the_events_tables_locked_exits_1_promptly():
    with held("integrity_event"), prompt():
        code, _out, err = command("prune", "--older-than", "0d")
    assert code == 1
    assert "Nothing was pruned" in err and "locked" in err
    with held("integrity_event"), prompt():
        code, _out, err = command("prune", "--older-than", "0d", "--dry-run")
    assert code == 1


@override_settings(INTEGRITY_LOCK_TIMEOUT_MS=1234, INTEGRITY_WRITE_STATEMENT_TIMEOUT_MS=5678)
def test_a_writing_transaction_bounds_its_statements_and_gives_a_callers_limits_back():
    from django.db import transaction

    from integrity.transactions import writing

    def limits():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
            return cursor.fetchone()

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '7s'")
        caller = limits()
        with writing("default", RuntimeError):
            assert limits() == ("1234ms", "5678ms")
        assert limits() == caller == ("7s", "0")
