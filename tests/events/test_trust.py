"""Recording is best effort and bounded: a locked events table never delays a response; nothing stored is unbounded.

A view that raises an IntegrityError answers with its usual 500 (the
exception unchanged) within ``INTEGRITY_EVENT_WRITE_TIMEOUT_MS`` plus a
margin while another session holds the events tables (or a group's row),
and a warning says the event was not recorded. Stored texts are cut to
``INTEGRITY_EVENT_VALUE_CHARS``, saying where; a NUL byte in a request path
is kept escaped instead of losing the event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test import Client, RequestFactory, override_settings

from demo.violations.models import Member
from integrity.events import recording as events
from integrity.models import Event, EventGroup
from tests.helpers import HOLD_SECONDS, MARGIN, held

UNIQUE = "/demo/violations/unique/"
WRITE = {"INTEGRITY_EVENT_WRITE_TIMEOUT_MS": 50}


def raise_integrity_error(path: str = UNIQUE, **data: str) -> tuple[float, BaseException]:
    """POST to a view that raises an IntegrityError: (seconds it took, the exception the client got)."""
    client = Client(raise_request_exception=True)
    start = time.monotonic()
    with pytest.raises(IntegrityError) as excinfo:
        client.post(path, data)
    return time.monotonic() - start, excinfo.value


def answered_promptly(elapsed: float) -> None:
    assert elapsed < WRITE["INTEGRITY_EVENT_WRITE_TIMEOUT_MS"] / 1000 + MARGIN < HOLD_SECONDS, elapsed


def not_recorded(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.name == "integrity.events" and r.levelno == logging.WARNING and "Could not record" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.django_db(databases="__all__", transaction=True)
@pytest.mark.parametrize("table", [EventGroup._meta.db_table, Event._meta.db_table])
@override_settings(**WRITE)
def test_a_locked_events_table_costs_the_response_only_the_write_timeout(table, caplog):
    with held(table):
        elapsed, exc = raise_integrity_error()
    answered_promptly(elapsed)
    assert "violations_member_email_key" in str(exc)  # the application's own error, unchanged
    assert not_recorded(caplog)
    assert not EventGroup.objects.exists()  # one transaction: nothing half written
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == ("0",)  # the connection's settings are untouched


@pytest.mark.django_db(databases="__all__", transaction=True)
@override_settings(**WRITE)
def test_a_locked_group_row_costs_the_response_only_the_write_timeout(caplog):
    raise_integrity_error()
    group = EventGroup.objects.get()
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute(f"SET idle_in_transaction_session_timeout = '{HOLD_SECONDS}s'")
        other.execute(f'SELECT 1 FROM "{EventGroup._meta.db_table}" WHERE id = %s FOR UPDATE', [group.pk])
        elapsed, _exc = raise_integrity_error()
    finally:
        other.rollback()
        other.close()
    answered_promptly(elapsed)
    assert not_recorded(caplog)
    assert EventGroup.objects.get().count == 1  # not counted, and nothing half written


@pytest.mark.django_db(databases="__all__")
@override_settings(**WRITE)
def test_inside_a_transaction_the_own_connection_is_bounded_too(caplog):
    """In a transaction (here the test's), recording takes a connection of its own: bounded the same way."""
    with held(EventGroup._meta.db_table):
        elapsed, _exc = raise_integrity_error()
    answered_promptly(elapsed)
    assert not_recorded(caplog)


@pytest.fixture
def big_table() -> Iterator[str]:
    """A table whose text column is unique by an exclusion constraint (a hash index takes any size)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE trust_big (id serial PRIMARY KEY, k text, EXCLUDE USING hash (k WITH =))"
        )
    try:
        yield "trust_big"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE trust_big")


@pytest.mark.django_db(databases="__all__", transaction=True)
@override_settings(INTEGRITY_EVENT_VALUES="all")
def test_an_enormous_key_is_stored_cut_and_says_where(big_table):
    big = "x" * 5_242_880
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO trust_big (k) VALUES (%s)", [big])
        with pytest.raises(IntegrityError) as excinfo:
            cursor.execute("INSERT INTO trust_big (k) VALUES (%s)", [big])
    assert events.record(excinfo.value) is not None
    event = Event.objects.get()
    stored = [v for v in event.values if isinstance(v, str)]
    assert stored and all(len(v) < 1_100 for v in stored)
    assert all(v.endswith("… (cut at 1,000 of 5,242,880 characters)") for v in stored)
    assert len(event.detail) < 1_100 and "(cut at 1,000 of" in event.detail
    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="x"))
    page = client.get(f"/admin/integrity/eventgroup/group/?id={event.group_id}")
    assert page.status_code == 200
    assert len(page.content) < 200_000  # it was 15 MB


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_nul_byte_in_the_path_is_recorded_escaped(caplog):
    """PostgreSQL text cannot hold NUL: the event used to be dropped (a warning); now the path is kept escaped."""
    Member.objects.create(email="taken@example.com", nickname="first")
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        Member.objects.create(email="taken@example.com", nickname="second")
    request = RequestFactory().post("/demo/violations/unique/\x00/")
    assert events.record(excinfo.value, request=request) is not None
    assert not not_recorded(caplog)
    assert Event.objects.get().path == "/demo/violations/unique/\\x00/"
    assert list(EventGroup.objects.get().paths) == ["/demo/violations/unique/\\x00/"]
