"""``integrity.events``: grouping, sampling under a storm, redaction, sources, cost, failures, databases.

Violations are real: each comes from a statement PostgreSQL refused, parsed
by ``integrity.events.violations``; the storm then writes one of them many times.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from demo.helpdesk.models import Comment, Ticket
from demo.shop.models import Product
from demo.violations.models import Invoice, Member
from integrity.events import recording as events
from integrity.events.violations import parse
from integrity.models import Event, EventGroup

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MIDDLEWARE = "integrity.middleware.IntegrityErrorMiddleware"
CONTEXT = {"method": "POST", "path": "/sign-up/", "view": "accounts:sign-up", "user_pk": "7"}
NO_CONTEXT = events.request_context(None)


def raised(statement: Callable[[], Any], using: str = "default") -> IntegrityError:
    """The IntegrityError ``statement`` raises in a transaction of its own (at COMMIT for deferred checks)."""
    try:
        with transaction.atomic(using=using):
            statement()
    except IntegrityError as exc:
        return exc
    raise AssertionError("no IntegrityError")


def duplicate_email(email: str = "a@example.com") -> IntegrityError:
    Member.objects.get_or_create(email=email)
    return raised(lambda: Member.objects.create(email=email))


def duplicate_product() -> IntegrityError:
    Product.objects.get_or_create(id=5, defaults={"name": "Dock"})
    return raised(lambda: Product.objects.create(id=5, name="Dock again"))


def missing_member() -> IntegrityError:
    return raised(lambda: Invoice.objects.create(member_id=424242))


def duplicate_ticket(using: str) -> IntegrityError:
    Ticket.objects.using(using).get_or_create(number=1, defaults={"subject": "first"})
    return raised(lambda: Ticket.objects.using(using).create(number=1, subject="again"), using)


def connections_to_test_database(expected: int | None = None) -> int:
    """Backends connected to the test database (waiting a little for closed ones to exit)."""
    for _ in range(50):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            count = int(cursor.fetchone()[0])
        if expected is None or count == expected:
            break
        time.sleep(0.05)
    return count


# The storm --------------------------------------------------------------------------------------


# Eight threads queue on one group's row: on a loaded machine a wait can pass the (best effort) write
# timeout, and that occurrence is then not counted (a warning). With time enough every one is counted.
@override_settings(INTEGRITY_EVENT_WRITE_TIMEOUT_MS=30_000)
def test_a_storm_of_identical_violations_is_one_group_with_bounded_samples() -> None:
    violation = parse(duplicate_email(), "default")
    threads, per_thread = 8, 1250
    errors: list[BaseException] = []

    def storm() -> None:
        try:
            for _ in range(per_thread):
                events.write(violation, "default", CONTEXT)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=storm) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    group = EventGroup.objects.get()
    assert (group.count, group.sampled, group.handled_count) == (10_000, 20, 0)
    assert Event.objects.count() == 20 == group.samples.count()
    assert group.views == {"accounts:sign-up": 10_000} and group.paths == {"/sign-up/": 10_000}


@override_settings(INTEGRITY_EVENT_SAMPLES=3)
def test_recording_real_errors_from_threads_never_overshoots_the_samples() -> None:
    errors = [duplicate_email(f"user{i}@example.com") for i in range(40)]
    batches = [errors[i::4] for i in range(4)]

    def record(batch: list[IntegrityError]) -> None:
        try:
            for exc in batch:
                events.record(exc, origin="capture")
        finally:
            connections.close_all()

    workers = [threading.Thread(target=record, args=(b,)) for b in batches]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    group = EventGroup.objects.get()
    assert (group.count, group.sampled, Event.objects.count()) == (40, 3, 3)


@override_settings(INTEGRITY_EVENT_SAMPLES=0)
def test_no_samples_at_all_still_counts() -> None:
    events.write(parse(duplicate_email(), "default"), "default", CONTEXT)
    assert EventGroup.objects.get().count == 1 and not Event.objects.exists()


def test_an_exception_is_recorded_once() -> None:
    exc = duplicate_email()
    assert events.record(exc) is not None
    assert events.record(exc) is None
    assert EventGroup.objects.get().count == 1


# Redaction -----------------------------------------------------------------------------------------


def test_by_default_only_primary_and_foreign_key_values_are_kept() -> None:
    email, product, invoice = (
        parse(e, "default") for e in (duplicate_email(), duplicate_product(), missing_member())
    )
    assert (email.columns, email.values) == (("email",), ("a@example.com",))
    assert events.kept_values(email) == ["…"]
    assert events.kept_values(product) == ["5"]
    assert events.kept_values(invoice) == ["424242"]
    assert [events.kept_values(v, "all") for v in (email, product, invoice)] == [
        ["a@example.com"],
        ["5"],
        ["424242"],
    ]
    assert [events.kept_values(v, "none") for v in (email, product, invoice)] == [["…"], ["…"], ["…"]]


@pytest.mark.parametrize(
    ("mode", "values", "detail"),
    [
        ("keys", ["…"], ""),
        ("none", ["…"], ""),
        ("all", ["a@example.com"], "Key (email)=(a@example.com) already exists."),
    ],
)
def test_stored_values_detail_and_message_follow_the_setting(
    mode: str, values: list[str], detail: str
) -> None:
    with override_settings(INTEGRITY_EVENT_VALUES=mode):
        events.record(duplicate_email())
    group, event = EventGroup.objects.get(), Event.objects.get()
    assert (event.values, event.detail) == (values, detail)
    # PostgreSQL's primary message names the constraint, never a value.
    assert group.message == 'duplicate key value violates unique constraint "violations_member_email_key"'


# Grouping ------------------------------------------------------------------------------------------


def test_one_constraint_is_one_group_whatever_the_values() -> None:
    for i in range(3):
        events.record(duplicate_email(f"u{i}@example.com"))
    group = EventGroup.objects.get()
    assert (group.count, group.sampled, group.constraint) == (3, 3, "violations_member_email_key")
    events.record(duplicate_product())
    assert EventGroup.objects.count() == 2


def test_the_same_constraint_on_two_databases_is_two_groups() -> None:
    for alias in ("default", "other", "other"):
        events.record(duplicate_ticket(alias))
    groups = {g.database: g for g in EventGroup.objects.all()}
    assert {a: g.count for a, g in groups.items()} == {"default": 1, "other": 2}
    assert {g.constraint for g in groups.values()} == {"helpdesk_ticket_number_key"}
    assert {a: list(g.samples.values_list("database", flat=True)) for a, g in groups.items()} == {
        "default": ["default"],
        "other": ["other", "other"],
    }
    v = parse(duplicate_ticket("default"), "default")
    assert events.fingerprint("default", v) != events.fingerprint("other", v)
    assert events.fingerprint("default", v) == groups["default"].fingerprint


def test_without_a_constraint_name_table_and_columns_make_the_fingerprint() -> None:
    v = parse(duplicate_email(), "default")
    unnamed = replace(v, constraint=None)
    other_column = replace(v, constraint=None, columns=("nickname",))
    assert events.fingerprint("default", unnamed) != events.fingerprint("default", other_column)
    assert events.fingerprint("default", unnamed) != events.fingerprint("default", v)


# Where from: views and paths, bounded ----------------------------------------------------------------


def test_views_and_paths_are_counted_within_max_sources() -> None:
    v = parse(duplicate_email(), "default")
    for i in range(events.MAX_SOURCES + 10):
        events.write(v, "default", {**CONTEXT, "view": f"app:view{i}", "path": f"/p/{i}/"})
    events.write(v, "default", {**CONTEXT, "view": "app:view0", "path": "/p/0/"})
    events.write(v, "default", NO_CONTEXT)  # capture(): no view, no path
    group = EventGroup.objects.get()
    assert group.count == events.MAX_SOURCES + 12
    assert len(group.views) == len(group.paths) == events.MAX_SOURCES
    assert group.views["app:view0"] == 2 and group.paths["/p/0/"] == 2
    assert f"app:view{events.MAX_SOURCES}" not in group.views and "" not in group.views


# Cost ----------------------------------------------------------------------------------------------------


def queries_of(path: str, middleware: list[str], user: Any = None) -> list[str]:
    """The statements a GET of ``path`` runs, literals left out (after a first GET that warms up)."""
    with override_settings(MIDDLEWARE=middleware):
        client = Client()
        if user is not None:
            client.force_login(user)
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
    return [re.sub(r"'[^']*'", "?", q["sql"]) for q in queries.captured_queries]


@pytest.mark.parametrize("capture_handled", [False, True])
def test_requests_that_raise_nothing_pay_nothing(capture_handled: bool) -> None:
    from django.conf import settings

    without = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    admin = get_user_model().objects.create_superuser("boss", password="x")
    with override_settings(INTEGRITY_CAPTURE_HANDLED=capture_handled):
        assert (
            queries_of("/demo/violations/", settings.MIDDLEWARE)
            == []
            == queries_of("/demo/violations/", without)
        )
        # A page that reads the session, the user and the database: the very same statements.
        with_middleware = queries_of("/admin/auth/user/", settings.MIDDLEWARE, admin)
        assert with_middleware == queries_of("/admin/auth/user/", without, admin)
    assert with_middleware and not EventGroup.objects.exists()


@override_settings(INTEGRITY_EVENT_SAMPLES=2)
def test_recording_costs_two_statements_then_one_once_the_samples_are_full() -> None:
    errors = [duplicate_email(f"c{i}@example.com") for i in range(3)]
    costs = []
    for exc in errors:
        with CaptureQueriesContext(connection) as queries:
            events.record(exc)
        statements = [q["sql"] for q in queries.captured_queries]
        costs.append(len([q for q in statements if "integrity_event" in q]))
        # Around them: one transaction that sets its lock and statement timeouts (issue 11).
        assert [q for q in statements if "integrity_event" not in q] == [
            "BEGIN",
            "SELECT set_config('lock_timeout', '50ms', true), set_config('statement_timeout', '50ms', true)",
            "COMMIT",
        ]
    assert costs == [2, 2, 1]


# Failures --------------------------------------------------------------------------------------------


@pytest.fixture
def events_table_missing() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE integrity_eventgroup RENAME TO integrity_eventgroup_gone")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE integrity_eventgroup_gone RENAME TO integrity_eventgroup")


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_failure_to_record_is_a_warning_never_an_exception(
    in_transaction: bool, events_table_missing: None, caplog: pytest.LogCaptureFixture
) -> None:
    exc = duplicate_email()
    with caplog.at_level(logging.WARNING, logger="integrity.events"):
        if in_transaction:
            with transaction.atomic():
                assert events.record(exc) is None
                assert Member.objects.count() == 1  # the caller's transaction is untouched
        else:
            assert events.record(exc) is None
            assert Member.objects.count() == 1
    [warning] = [r for r in caplog.records if r.name == "integrity.events"]
    assert (
        warning.levelno == logging.WARNING
        and warning.getMessage() == "Could not record an IntegrityError event"
    )
    assert warning.exc_info and "integrity_eventgroup" in str(warning.exc_info[1])


def test_recording_inside_a_transaction_commits_apart_and_leaves_no_connection_open() -> None:
    exc = duplicate_email()
    before = connections_to_test_database()
    with pytest.raises(RuntimeError), transaction.atomic():
        Member.objects.create(email="rolled-back@example.com")
        assert events.record(exc) is not None
        raise RuntimeError("roll back")
    assert not Member.objects.filter(email="rolled-back@example.com").exists()
    assert EventGroup.objects.get().count == 1
    assert connections_to_test_database(before) == before


def test_recording_in_a_failed_transaction_uses_a_connection_of_its_own() -> None:
    Member.objects.create(email="a@example.com")
    with transaction.atomic():
        try:
            Member.objects.create(email="a@example.com")
        except IntegrityError as exc:
            caught = exc
        assert events.record(caught) is not None
        transaction.set_rollback(True)
    assert EventGroup.objects.get().count == 1


# Which database ----------------------------------------------------------------------------------------


def test_alias_of_a_query_error_is_its_connection() -> None:
    assert events.alias_of(duplicate_ticket("other")) == "other"
    assert events.alias_of(duplicate_ticket("default")) == "default"


def test_alias_of_a_deferred_foreign_key_failing_at_commit() -> None:
    """COMMIT runs no query through the execute wrappers, and psycopg's error names no connection."""
    exc = raised(lambda: Comment.objects.using("other").create(ticket_id=999, body="orphan"), "other")
    assert type(exc.__cause__).__name__ == "ForeignKeyViolation"
    assert events.alias_of(exc) == "other"
    events.record(exc)
    group = EventGroup.objects.get()
    assert (group.database, group.kind, group.model) == ("other", "foreign key", "helpdesk.Comment")


def test_alias_of_an_error_no_connection_saw_is_the_default() -> None:
    assert events.alias_of(IntegrityError("made up")) == "default"


def test_the_watchers_are_installed_once_per_connection_and_survive_execute_wrapper_blocks() -> None:
    def noop(execute: Callable[..., Any], *args: Any) -> Any:
        return execute(*args)

    connection.close()
    with connection.execute_wrapper(noop):
        Member.objects.count()  # connects inside the block: the watcher goes first
    assert connection.execute_wrappers == [events.watch_queries]
    commit = connection._commit  # type: ignore[attr-defined]
    connection.close()
    connection.ensure_connection()
    assert connection.execute_wrappers == [events.watch_queries] and connection._commit is commit  # type: ignore[attr-defined]


# Request context ---------------------------------------------------------------------------------------


def test_request_context_reads_what_the_request_already_loaded() -> None:
    user = get_user_model().objects.create_user("ctx", password="x")
    request = RequestFactory().post("/demo/violations/unique/", {"password": "x"})
    assert events.request_context(request) == {
        "method": "POST",
        "path": "/demo/violations/unique/",
        "view": "",
        "user_pk": "",
    }
    request._cached_user = user  # type: ignore[attr-defined]
    assert events.request_context(request)["user_pk"] == str(user.pk)
    request._cached_user = AnonymousUser()  # type: ignore[attr-defined]
    session = SessionStore()
    session["_auth_user_id"] = "31"
    request.session = session
    assert events.request_context(request)["user_pk"] == "31"
    # A session the request did not load is read, once, when its connection is free...
    stored = SessionStore()
    stored["_auth_user_id"] = "42"
    stored.save()
    request.session = SessionStore(session_key=stored.session_key)
    with CaptureQueriesContext(connection) as queries:
        assert events.request_context(request)["user_pk"] == "42"
    assert len(queries) == 1
    # ...and never inside a transaction, which may be the one that failed.
    request.session = SessionStore(session_key=stored.session_key)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert events.request_context(request)["user_pk"] == ""
    assert len(queries) == 0
