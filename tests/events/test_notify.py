"""Being told (integrity.events.notify): the signal for a new and a regressed group, e-mail to ADMINS, failures.

Errors are real: a sign-up with a taken e-mail through the middleware (a real
request), or ``events.write`` of a parsed violation where only the recording
matters. E-mail goes to Django's test outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.core import mail
from django.db import connections
from django.test import Client, override_settings

from integrity.checks import check_notify_email
from integrity.conf import invalid_values
from integrity.events import lifecycle, notify
from integrity.models import Event, EventGroup
from integrity.signals import event_group_alert

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    # Django 6.1 asks projects to move to MAILERS; the test project keeps the EMAIL_* settings 5.2 knows.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]

SIGN_UP = "/demo/violations/unique/"
CONSTRAINT = "violations_member_email_key"
# Django 6.0 takes addresses; 5.2 takes (name, address) pairs, which 6.x deprecates.
ADMINS: list[Any] = ["ann@example.com"] if django.VERSION >= (6, 0) else [("Ann", "ann@example.com")]


@pytest.fixture
def alerts() -> Iterator[list[dict[str, Any]]]:
    heard: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        heard.append({"sender": sender, **kwargs})

    event_group_alert.connect(receiver, dispatch_uid="test-notify")
    try:
        yield heard
    finally:
        event_group_alert.disconnect(dispatch_uid="test-notify")


def ours() -> list[Any]:
    """The e-mails about groups: a 500 also mails ADMINS through Django's own request logger."""
    return [m for m in mail.outbox if "violation of" in m.subject]


def sign_up(client: Client) -> int:
    return client.post(SIGN_UP, {"email": "taken@example.com"}).status_code


def raising_client() -> Client:
    return Client(raise_request_exception=False)


def test_a_new_group_is_announced_once_with_its_group_and_sample(alerts: list[dict[str, Any]]) -> None:
    client = raising_client()
    assert sign_up(client) == 500
    assert sign_up(client) == 500  # the same group again: not new
    group = EventGroup.objects.get(constraint=CONSTRAINT)
    assert group.count == 2
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert["sender"] is EventGroup and alert["kind"] == "new"
    assert alert["group"].pk == group.pk and alert["group"].count == 1  # as it was when it was new
    assert isinstance(alert["event"], Event) and alert["event"].path == SIGN_UP
    assert alert["event"].group_id == group.pk


def test_a_resolved_group_that_occurs_again_is_announced_regressed(alerts: list[dict[str, Any]]) -> None:
    client = raising_client()
    sign_up(client)
    group = EventGroup.objects.get(constraint=CONSTRAINT)
    lifecycle.resolve([group.pk])
    sign_up(client)
    sign_up(client)  # regressed already: no second notice
    assert [a["kind"] for a in alerts] == ["new", "regressed"]
    regressed = alerts[1]["group"]
    assert regressed.pk == group.pk and regressed.state == "regressed" and regressed.count == 2


@override_settings(INTEGRITY_EVENT_SAMPLES=1)
def test_without_a_sample_slot_the_event_is_none(alerts: list[dict[str, Any]]) -> None:
    client = raising_client()
    sign_up(client)
    lifecycle.resolve([EventGroup.objects.get(constraint=CONSTRAINT).pk])
    sign_up(client)
    assert [a["kind"] for a in alerts] == ["new", "regressed"]
    assert alerts[1]["event"] is None


def test_no_email_by_default() -> None:
    with override_settings(ADMINS=ADMINS):
        sign_up(raising_client())
    assert ours() == []


@override_settings(INTEGRITY_NOTIFY_EMAIL=True, ADMINS=ADMINS, INTEGRITY_NOTIFY_INTERVAL=3600)
def test_admins_are_mailed_once_per_group_within_the_interval() -> None:
    client = raising_client()
    sign_up(client)
    group = EventGroup.objects.get(constraint=CONSTRAINT)
    assert len(ours()) == 1
    first = ours()[0]
    assert first.to == ["ann@example.com"]
    assert "New: unique violation of violations_member_email_key" in first.subject
    assert f"/admin/integrity/eventgroup/group/?id={group.pk}" in first.body
    assert f"Request: POST {SIGN_UP}" in first.body
    lifecycle.resolve([group.pk])
    sign_up(client)  # regressed, within the hour: no second e-mail
    assert len(ours()) == 1
    with override_settings(INTEGRITY_NOTIFY_INTERVAL=0):
        lifecycle.resolve([group.pk])
        sign_up(client)
    assert len(ours()) == 2 and ours()[1].subject.startswith("[Django] Regressed:")


def test_a_failing_receiver_is_logged_and_the_request_answers_as_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver down")

    event_group_alert.connect(broken, dispatch_uid="test-broken")
    try:
        with caplog.at_level(logging.WARNING, logger="integrity.events"):
            assert sign_up(raising_client()) == 500  # the IntegrityError's own 500, as without notices
    finally:
        event_group_alert.disconnect(dispatch_uid="test-broken")
    assert EventGroup.objects.get(constraint=CONSTRAINT).count == 1
    failed = [r for r in caplog.records if "receiver of event_group_alert failed" in r.getMessage()]
    assert failed and failed[0].exc_info and "receiver down" in str(failed[0].exc_info[1])


@pytest.mark.filterwarnings(r"ignore:The EMAIL_\w+ setting is deprecated")
@override_settings(
    INTEGRITY_NOTIFY_EMAIL=True,
    ADMINS=ADMINS,
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    EMAIL_HOST="127.0.0.1",
    EMAIL_PORT=9,  # discard: nothing listens, the connection is refused at once
    EMAIL_TIMEOUT=2,
)
def test_a_mail_server_that_is_down_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="integrity.events"):
        assert sign_up(raising_client()) == 500
    assert EventGroup.objects.get(constraint=CONSTRAINT).count == 1
    assert any("Could not e-mail ADMINS" in r.getMessage() for r in caplog.records)


def test_the_settings_are_checked() -> None:
    with override_settings(INTEGRITY_NOTIFY_EMAIL="yes", INTEGRITY_NOTIFY_INTERVAL="hourly"):
        problems = invalid_values()
    assert "INTEGRITY_NOTIFY_EMAIL must be True or False, not 'yes'." in problems
    assert "INTEGRITY_NOTIFY_INTERVAL must be a whole number, not 'hourly'." in problems
    with override_settings(INTEGRITY_NOTIFY_EMAIL=True, ADMINS=[]):
        assert [w.id for w in check_notify_email()] == ["integrity.W004"]
    with override_settings(INTEGRITY_NOTIFY_EMAIL=True, ADMINS=ADMINS):
        assert check_notify_email() == []


@pytest.mark.filterwarnings(r"ignore:The EMAIL_\w+ setting is deprecated")
def test_smtp_without_a_timeout_is_warned_of() -> None:
    """The e-mail is sent by the failing request: a mail server that never answers must not hold it."""
    smtp = {
        "INTEGRITY_NOTIFY_EMAIL": True,
        "ADMINS": ADMINS,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    }
    with override_settings(**smtp, EMAIL_TIMEOUT=None):
        assert [w.id for w in check_notify_email()] == ["integrity.W005"]
    with override_settings(**smtp, EMAIL_TIMEOUT=10):
        assert check_notify_email() == []
    with override_settings(**{**smtp, "INTEGRITY_NOTIFY_EMAIL": False}, EMAIL_TIMEOUT=None):
        assert check_notify_email() == []


def test_a_locked_group_row_costs_the_claim_its_timeout_then_a_log(caplog: pytest.LogCaptureFixture) -> None:
    """Claiming the e-mail's interval waits for a group row locked elsewhere at most the write timeout."""
    sign_up(raising_client())
    group = EventGroup.objects.get(constraint=CONSTRAINT)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM integrity_eventgroup WHERE id = %s FOR UPDATE", [group.pk])
            with (
                override_settings(
                    INTEGRITY_NOTIFY_EMAIL=True, ADMINS=ADMINS, INTEGRITY_EVENT_WRITE_TIMEOUT_MS=200
                ),
                caplog.at_level(logging.WARNING, logger="integrity.events"),
            ):
                notify.send(group, notify.REGRESSED, None)
            cursor.execute("ROLLBACK")
    finally:
        holder.close()
    assert ours() == []
    failed = [r for r in caplog.records if "receiver of event_group_alert failed" in r.getMessage()]
    # The lock was waited for no longer than the timeout.
    assert failed and failed[0].exc_info and "timeout" in str(failed[0].exc_info[1])
