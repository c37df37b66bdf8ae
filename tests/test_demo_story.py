"""The demo tells its story: the handled violation is recorded, a rerun resets the logs, and the output says how to stop."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

import demo.settings as demo_settings
from demo.shop.models import Product
from integrity.models import EventGroup, SequenceResync
from integrity.sequences import service as sequences

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def demo_output() -> str:
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    return out.getvalue()


def test_the_demos_handled_button_records_a_handled_event(client: Client) -> None:
    """The demo's settings turn INTEGRITY_CAPTURE_HANDLED on (the tests keep the app's default, off)."""
    with override_settings(INTEGRITY_CAPTURE_HANDLED=demo_settings.INTEGRITY_CAPTURE_HANDLED):
        assert client.post("/demo/violations/handled/").status_code == 200

    group = EventGroup.objects.get(constraint="violations_member_email_key")
    assert (group.count, group.handled_count) == (1, 1)


def test_rerunning_resets_the_data_and_the_logs_and_says_so(client: Client) -> None:
    text = demo_output()
    sequences.resync("default", "shop.Product", "id")
    with override_settings(INTEGRITY_CAPTURE_HANDLED=True):
        client.post("/demo/violations/handled/")
    assert SequenceResync.objects.exists() and EventGroup.objects.exists()

    text = demo_output()

    assert "Rerunning this command resets the demo data and the logs" in text
    # What is left is the story the command tells (demo.violations.story), told once: not the earlier run's.
    assert list(SequenceResync.objects.values_list("model", flat=True)) == ["violations.Member"]
    assert sorted(EventGroup.objects.values_list("constraint", flat=True)) == [
        "violations_account_balance_gte_0",
        "violations_member_pkey",
    ]
    assert Product.objects.count() == 8


def test_the_output_introduces_the_w001_warning_and_prints_no_url() -> None:
    text = demo_output()

    assert "The system check warning integrity.W001 (clinic.Doctor) is part of the story, on purpose" in text
    assert "http://" not in text


def test_the_output_says_how_to_stop_the_embedded_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    text = demo_output()

    from demo import embedded

    stop = embedded.stop_command()
    if stop is None:
        pytest.skip("the tests run on a DATABASE_URL server, not the embedded one")
    assert f"The embedded PostgreSQL keeps running for the next run; to stop it:  {stop}" in text
    assert "pg_ctl" in stop and " stop" in stop
