"""The middleware over real HTTP: every kind of violation becomes an event, and the error goes on unchanged.

Each violation page of ``demo.violations`` is requested from the live server
(the middleware installed) and from a second live server whose handler was
built without it; status, body, the ``got_request_exception`` signal and the
``django.request`` log must be the same. ``ATOMIC_REQUESTS`` is switched in
the connections' shared settings dicts, which every thread's connection reads.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.signals import got_request_exception
from django.db import IntegrityError, connection, connections, transaction
from django.test import AsyncClient, Client, override_settings
from django.test.testcases import LiveServerThread

import integrity
from demo.helpdesk.models import Comment, Ticket
from demo.violations.models import Member
from demo.violations.views import TAKEN
from integrity.models import Event, EventGroup
from tests.helpers import (
    TOKEN,
    Answer,
    post,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MIDDLEWARE = "integrity.middleware.IntegrityErrorMiddleware"
SECRET = "pw-Never-Stored-7f3a9c"
PREFIX = "/demo/violations/"

# page: (sqlstate, kind, constraint, model, primary key)
PAGES: dict[str, tuple[str, str, str, str, bool]] = {
    "sequence": ("23505", "unique", "shop_product_pkey", "shop.Product", True),
    "hidden-row": ("23505", "unique", "clinic_doctor_pkey", "clinic.Doctor", True),
    "unique": ("23505", "unique", "violations_member_email_key", "violations.Member", False),
    "nested": ("23505", "unique", "violations_member_email_key", "violations.Member", False),
    "async": ("23505", "unique", "violations_member_email_key", "violations.Member", False),
    "foreign-key": ("23503", "foreign key", "violations_invoice_member_id_", "violations.Invoice", False),
    "not-null": ("23502", "not null", "", "violations.Member", False),
    "check": ("23514", "check", "violations_account_balance_gte_0", "violations.Account", False),
    "exclusion": ("23P01", "exclusion", "violations_booking_no_overlap", "violations.Booking", False),
}


@contextmanager
def serve() -> Iterator[str]:
    """A live server of its own: its handler loads ``settings.MIDDLEWARE`` as it is now."""
    thread = LiveServerThread("localhost", StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://localhost:{thread.port}"
    finally:
        thread.terminate()


@pytest.fixture
def bare_server() -> Iterator[str]:
    """The same site without the middleware, to compare with."""
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != MIDDLEWARE]), serve() as url:
        yield url


@contextmanager
def atomic_requests(on: bool) -> Iterator[None]:
    """``ATOMIC_REQUESTS`` on or off for the default database, in every thread.

    Every thread's connection (and the handler's ``make_view_atomic``) reads
    the one settings dict per alias held by ``connections.settings``.
    """
    dicts = [connections.settings["default"]]
    assert dicts[0] is connections["default"].settings_dict
    before = [d["ATOMIC_REQUESTS"] for d in dicts]
    for d in dicts:
        d["ATOMIC_REQUESTS"] = on
    try:
        yield
    finally:
        for d, value in zip(dicts, before, strict=True):
            d["ATOMIC_REQUESTS"] = value


@pytest.fixture(params=[False, True], ids=["autocommit", "atomic_requests"])
def atomic(request: pytest.FixtureRequest) -> Iterator[bool]:
    with atomic_requests(request.param):
        yield request.param


class Seen(logging.Handler):
    """What Django's error reporting saw: ``got_request_exception`` and the ``django.request`` log."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.signalled: list[BaseException] = []
        self.logged: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.logged.append(record.exc_info[1])

    def on_signal(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.signalled.append(exc)

    def take(self) -> list[tuple[str, ...]]:
        """What was seen since the last call, comparable between two servers (key values may differ)."""
        seen: list[tuple[str, ...]] = [("signal", *describe(e)) for e in self.signalled]
        seen += [("log", *describe(e)) for e in self.logged]
        self.signalled.clear()
        self.logged.clear()
        return seen


def describe(exc: BaseException) -> tuple[str, str, str]:
    return (type(exc).__qualname__, type(exc.__cause__).__qualname__, str(exc).splitlines()[0])


@pytest.fixture
def seen() -> Iterator[Seen]:
    handler = Seen()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    got_request_exception.connect(handler.on_signal, dispatch_uid="test_middleware")
    try:
        yield handler
    finally:
        got_request_exception.disconnect(dispatch_uid="test_middleware")
        logger.removeHandler(handler)


@pytest.fixture
def user_session() -> tuple[str, str]:
    user = get_user_model().objects.create_user("visitor", password=SECRET)
    client = Client()
    client.force_login(user)
    return str(user.pk), client.cookies[settings.SESSION_COOKIE_NAME].value


def same_answer_without_middleware(
    live: str, bare: str, path: str, seen: Seen, data: dict[str, str] | None = None, session: str = ""
) -> Answer:
    """POST to the bare server, then to the live one: same status, body and error reports."""
    without = post(bare, path, data, session)
    reported_without = seen.take()
    recorded_before = EventGroup.objects.count()
    assert recorded_before == 0, "the server without the middleware recorded something"
    with_middleware = post(live, path, data, session)
    reported_with = seen.take()
    assert (with_middleware.status, with_middleware.body) == (without.status, without.body)
    assert reported_with == reported_without
    return with_middleware


def one_group() -> tuple[EventGroup, Event]:
    group = EventGroup.objects.get()
    return group, group.samples.get()


@pytest.mark.parametrize("page", list(PAGES))
def test_each_violation_page_becomes_one_event_and_answers_as_without_the_middleware(
    page: str, atomic: bool, live_server: Any, bare_server: str, seen: Seen, user_session: tuple[str, str]
) -> None:
    user_pk, session = user_session
    path = f"{PREFIX}{page}/"
    answer = same_answer_without_middleware(live_server.url, bare_server, path, seen, session=session)
    assert answer.status == 500 and b"Server Error (500)" in answer.body
    # Both servers' reporting saw the IntegrityError itself, psycopg's error its cause.
    sqlstate, kind, constraint, model, primary_key = PAGES[page]
    group, event = one_group()
    assert (group.sqlstate, group.kind, group.model, group.primary_key) == (
        sqlstate,
        kind,
        model,
        primary_key,
    )
    if kind == "not null":  # PostgreSQL 18 names NOT NULL constraints, earlier versions none
        assert group.constraint in ("", "violations_member_nickname_not_null")
        assert group.columns == ["nickname"] and group.fields == ["nickname"]
    else:
        assert group.constraint.startswith(constraint)
    assert (group.database, group.count, group.handled_count, group.sampled) == ("default", 1, 0, 1)
    assert group.views == {f"violations:{page}": 1} and group.paths == {path: 1}
    assert (event.method, event.path, event.view, event.origin) == (
        "POST",
        path,
        f"violations:{page}",
        "request",
    )
    assert (event.handled, event.database) == (False, "default")
    # The user is known: loaded by the view (the unique page), or read from the session afterwards.
    assert event.user_pk == user_pk


def test_errors_reported_by_django_are_the_recorded_exception_itself(live_server: Any, seen: Seen) -> None:
    answer = post(live_server.url, f"{PREFIX}check/")
    assert answer.status == 500
    assert len(seen.signalled) == len(seen.logged) == 1
    exc = seen.signalled[0]
    assert exc is seen.logged[0]
    assert isinstance(exc, IntegrityError) and type(exc.__cause__).__name__ == "CheckViolation"
    assert getattr(exc, "integrity_recorded", False) is True
    assert EventGroup.objects.get().count == 1


def test_no_password_header_or_body_is_stored(live_server: Any, user_session: tuple[str, str]) -> None:
    _pk, session = user_session
    for mode in ("keys", "all", "none"):
        with override_settings(INTEGRITY_EVENT_VALUES=mode):
            answer = post(live_server.url, f"{PREFIX}unique/", {"email": TAKEN, "password": SECRET}, session)
        assert answer.status == 500
    group = EventGroup.objects.get()
    assert group.count == 3
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT json_agg(g)::text FROM integrity_eventgroup g) || "
            "(SELECT json_agg(e)::text FROM integrity_event e)"
        )
        stored = cursor.fetchone()[0]
    for never in (SECRET, TOKEN, session, "password", "csrf", "Cookie"):
        assert never not in stored
    # The email is the key of the violated constraint: kept only when asked for everything.
    values = {e.detail != "": e.values for e in Event.objects.all()}
    assert values == {True: [TAKEN], False: ["…"]}


@pytest.mark.parametrize("capture_handled", [True, False])
def test_a_caught_error_is_a_handled_event_only_when_asked(
    capture_handled: bool, atomic: bool, live_server: Any, bare_server: str, seen: Seen
) -> None:
    with override_settings(INTEGRITY_CAPTURE_HANDLED=capture_handled):
        answer = same_answer_without_middleware(live_server.url, bare_server, f"{PREFIX}handled/", seen)
    assert answer.status == 200 and answer.body == f"Member {Member.objects.get().pk}: {TAKEN}\n".encode()
    assert seen.take() == []
    if not capture_handled:
        assert not EventGroup.objects.exists()
        return
    group, event = one_group()
    assert (group.kind, group.constraint, group.count, group.handled_count) == (
        "unique",
        "violations_member_email_key",
        1,
        1,
    )
    assert (event.handled, event.view, event.method) == (True, "violations:handled", "POST")


def test_capture_handled_still_records_an_escaping_error_once_as_unhandled(live_server: Any) -> None:
    with override_settings(INTEGRITY_CAPTURE_HANDLED=True):
        assert post(live_server.url, f"{PREFIX}nested/").status == 500
    group, event = one_group()
    assert (group.count, group.handled_count, event.handled) == (1, 0, False)


def test_ticket_numbers_from_max_plus_one_collide_under_concurrent_requests(
    atomic: bool, live_server: Any
) -> None:
    """MAX + 1 numbering: two requests read the same MAX(number) and insert the same number."""
    start = threading.Barrier(2)
    answers: list[Answer] = []

    def one() -> None:
        start.wait()
        answers.append(post(live_server.url, f"{PREFIX}ticket-race/?sleep=0.5"))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status for a in answers) == [200, 500]
    assert Ticket.objects.count() == 1
    group, event = one_group()
    assert (group.kind, group.model, group.fields, group.primary_key) == (
        "unique",
        "helpdesk.Ticket",
        ["number"],
        False,
    )
    assert group.constraint == "helpdesk_ticket_number_key"
    assert event.view == "violations:ticket-race" and event.values == ["…"]


def test_a_missing_events_table_is_a_warning_and_changes_nothing(
    live_server: Any, bare_server: str, seen: Seen, caplog: pytest.LogCaptureFixture
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE integrity_event RENAME TO integrity_event_away")
        cursor.execute("ALTER TABLE integrity_eventgroup RENAME TO integrity_eventgroup_away")
    try:
        with caplog.at_level(logging.WARNING, logger="integrity.events"):
            without = post(bare_server, f"{PREFIX}unique/")
            reported_without = seen.take()
            with override_settings(INTEGRITY_CAPTURE_HANDLED=True):
                answer = post(live_server.url, f"{PREFIX}unique/")
                handled = post(live_server.url, f"{PREFIX}handled/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE integrity_eventgroup_away RENAME TO integrity_eventgroup")
            cursor.execute("ALTER TABLE integrity_event_away RENAME TO integrity_event")
    assert (answer.status, answer.body) == (without.status, without.body) == (500, without.body)
    assert seen.take() == reported_without
    assert handled.status == 200 and handled.body.startswith(b"Member ")
    warnings = [r for r in caplog.records if r.name == "integrity.events"]
    assert [r.getMessage() for r in warnings] == ["Could not record an IntegrityError event"] * 2
    assert all(r.levelno == logging.WARNING and r.exc_info for r in warnings)
    assert not EventGroup.objects.exists()


# ASGI: the middleware's async path (the live server is WSGI, where async views run in async_to_sync).


@pytest.mark.parametrize(("page", "status"), [("async", 500), ("unique", 500), ("handled", 200)])
def test_asgi_requests_are_recorded_too(page: str, status: int) -> None:
    client = AsyncClient(raise_request_exception=False)
    with override_settings(INTEGRITY_CAPTURE_HANDLED=True):
        response = async_to_sync(client.post)(f"{PREFIX}{page}/")
    assert response.status_code == status
    group, event = one_group()
    assert (group.kind, group.constraint, group.count) == ("unique", "violations_member_email_key", 1)
    assert (event.handled, event.view, event.method) == (status == 200, f"violations:{page}", "POST")


# integrity.capture(): code outside requests.


def test_capture_records_and_reraises_the_same_exception() -> None:
    Member.objects.create(email=TAKEN)
    with pytest.raises(IntegrityError) as raised, integrity.capture():
        Member.objects.create(email=TAKEN)
    assert type(raised.value.__cause__).__name__ == "UniqueViolation"
    assert getattr(raised.value, "integrity_recorded", False) is True
    group, event = one_group()
    assert (group.constraint, group.count, group.handled_count) == ("violations_member_email_key", 1, 0)
    assert (event.origin, event.method, event.path, event.view, event.user_pk) == ("capture", "", "", "", "")


def test_capture_inside_a_transaction_records_on_a_connection_of_its_own() -> None:
    Member.objects.create(email=TAKEN)
    with pytest.raises(IntegrityError), transaction.atomic(), integrity.capture():
        with transaction.atomic():  # a savepoint: the outer transaction stays usable after it
            Member.objects.create(email=TAKEN)
    # The outer block was rolled back, the event committed apart from it.
    assert one_group()[0].count == 1


@integrity.capture
def sign_up_twice() -> None:
    Member.objects.create(email=TAKEN)
    Member.objects.create(email=TAKEN)


def test_capture_as_a_decorator() -> None:
    with pytest.raises(IntegrityError):
        sign_up_twice()
    assert one_group()[1].origin == "capture"


@pytest.mark.parametrize("capture_handled", [True, False])
def test_capture_records_caught_errors_as_handled_when_asked(capture_handled: bool) -> None:
    Member.objects.create(email=TAKEN)
    with override_settings(INTEGRITY_CAPTURE_HANDLED=capture_handled), integrity.capture():
        try:
            with transaction.atomic():
                Member.objects.create(email=TAKEN)
        except IntegrityError:
            pass
    if capture_handled:
        group, event = one_group()
        assert (group.count, group.handled_count, event.handled, event.origin) == (1, 1, True, "capture")
    else:
        assert not EventGroup.objects.exists()


def test_capture_names_the_database_of_a_deferred_foreign_key_failing_at_commit() -> None:
    """COMMIT runs no query through the execute wrappers: the error is tagged where COMMIT fails."""
    with pytest.raises(IntegrityError) as raised, integrity.capture(), transaction.atomic(using="other"):
        Comment.objects.using("other").create(ticket_id=123456, body="orphan")
    assert type(raised.value.__cause__).__name__ == "ForeignKeyViolation"
    group, event = one_group()
    assert (group.database, event.database, group.kind, group.model) == (
        "other",
        "other",
        "foreign key",
        "helpdesk.Comment",
    )
    assert event.values == ["123456"]  # a foreign key value: kept by default
    assert group.fields == ["ticket"]


@integrity.capture
async def sign_up_twice_async() -> None:
    await Member.objects.acreate(email=TAKEN)
    await Member.objects.acreate(email=TAKEN)


@override_settings(INTEGRITY_CAPTURE_HANDLED=True)
def test_capture_of_async_code_records_escaping_and_caught_errors() -> None:
    async def caught_then_escaping() -> None:
        async with integrity.capture():
            await Member.objects.acreate(email=TAKEN)
            try:
                await Member.objects.acreate(email=TAKEN)
            except IntegrityError:
                pass
        async with integrity.capture():
            await Member.objects.acreate(email=TAKEN)

    with pytest.raises(IntegrityError) as raised:
        async_to_sync(caught_then_escaping)()
    assert getattr(raised.value, "integrity_recorded", False) is True
    group = EventGroup.objects.get()
    assert (group.count, group.handled_count) == (2, 1)
    assert sorted(group.samples.values_list("handled", "origin")) == [(False, "capture"), (True, "capture")]
    with pytest.raises(IntegrityError):
        async_to_sync(sign_up_twice_async)()
    assert EventGroup.objects.get().count == 3
