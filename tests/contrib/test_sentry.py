"""integrity.contrib.sentry: one Sentry issue per constraint, through the sentry-sdk's own client and a transport of its kind.

Events go through ``sentry_sdk.capture_exception`` with ``before_send`` set,
into a ``Transport`` that keeps the envelopes in memory: no network. Errors
are real ones from the embedded PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from django.db import DataError, IntegrityError, connection, transaction
from sentry_sdk.transport import Transport

from demo.violations.models import Coupon, Member
from integrity.contrib.sentry import before_send
from integrity.events import recording
from integrity.models import EventGroup

pytestmark = pytest.mark.django_db(transaction=True)

TAKEN = "sentry@example.com"
EMAIL_KEY = "violations_member_email_key"


class Memory(Transport):
    """The SDK's transport interface, keeping each envelope's event instead of sending it."""

    def __init__(self) -> None:
        super().__init__({})
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sent() -> Iterator[list[dict[str, Any]]]:
    transport = Memory()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=transport,
        before_send=before_send,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    try:
        yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: the SDK is off again


def sign_up_from_the_form() -> None:
    Member.objects.create(email=TAKEN, nickname="form")


def sign_up_from_the_api() -> None:
    with transaction.atomic():
        Member.objects.create(email=TAKEN, nickname="api")


def reported(call: Any) -> None:
    try:
        with transaction.atomic():
            call()
    except Exception as exc:  # noqa: BLE001
        sentry_sdk.capture_exception(exc)
    else:
        raise AssertionError("no error")


def test_one_constraint_from_two_call_sites_is_one_fingerprint(sent: list[dict[str, Any]]) -> None:
    Member.objects.create(email=TAKEN, nickname="first")
    reported(sign_up_from_the_form)
    reported(sign_up_from_the_api)
    assert len(sent) == 2
    assert sent[0]["fingerprint"] == sent[1]["fingerprint"] == ["default", "23505", EMAIL_KEY]
    # Sentry's own grouping would have split them: the stacks differ.
    frames = [e["exception"]["values"][-1]["stacktrace"]["frames"] for e in sent]
    assert {f["function"] for f in frames[0]} != {f["function"] for f in frames[1]}
    for event in sent:
        assert event["tags"]["model"] == "violations.Member"
        assert event["tags"]["rule"] == "default:violations.Member:unique:email"
        assert event["tags"]["sqlstate"] == "23505"


def test_the_drivers_own_error_gets_the_same_fingerprint(sent: list[dict[str, Any]]) -> None:
    Member.objects.create(email=TAKEN, nickname="first")
    connection.ensure_connection()
    raw = connection.connection
    try:
        with raw.cursor() as cursor:
            cursor.execute("INSERT INTO violations_member (email, nickname) VALUES (%s, 'raw')", [TAKEN])
    except Exception as exc:  # noqa: BLE001  (psycopg's UniqueViolation, not Django's)
        assert not isinstance(exc, IntegrityError)
        sentry_sdk.capture_exception(exc)
    raw.rollback()
    (event,) = sent
    assert event["fingerprint"] == ["default", "23505", EMAIL_KEY]


def test_a_sequence_that_ran_out_is_fingerprinted_by_its_sequence(sent: list[dict[str, Any]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(s.seqrelid, s.seqmax, true) FROM pg_sequence s "
            "WHERE s.seqrelid = pg_get_serial_sequence('violations_coupon', 'id')::regclass"
        )
    try:
        reported(lambda: Coupon.objects.create(code="SPRING"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('violations_coupon', 'id'), 1, false)")
    (event,) = sent
    assert event["fingerprint"] == ["default", "2200H", "violations_coupon_id_seq"]
    assert event["exception"]["values"][-1]["type"] == DataError.__name__


def test_the_cause_the_events_pages_decided_is_a_tag(sent: list[dict[str, Any]]) -> None:
    Member.objects.create(email=TAKEN, nickname="first")
    try:
        with transaction.atomic():
            sign_up_from_the_form()
    except IntegrityError as exc:
        recording.record(exc)
        EventGroup.objects.filter(constraint=EMAIL_KEY).update(cause="value_taken")
        sentry_sdk.capture_exception(exc)
    (event,) = sent
    assert event["tags"]["cause"] == "value_taken"


def test_other_events_pass_unchanged(sent: list[dict[str, Any]]) -> None:
    try:
        raise ValueError("not a database error")
    except ValueError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.capture_message("hello")
    assert len(sent) == 2
    assert all("fingerprint" not in e for e in sent)
    assert all("model" not in (e.get("tags") or {}) for e in sent)
    assert before_send({"message": "x"}, {}) == {"message": "x"}
