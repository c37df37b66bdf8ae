"""integrity.conf: documented defaults, read lazily so override_settings works."""

import pytest
from django.test import override_settings

from integrity.conf import settings


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("LOCK_TIMEOUT_MS", 2000),
        ("CAPACITY_WARNING", 0.75),
        ("CAPACITY_CRITICAL", 0.90),
        ("SEQUENCES_PER_PAGE", 100),
        ("MERGE_BATCH", 10),
        ("CAPTURE_HANDLED", False),
        ("EVENT_SAMPLES", 20),
        ("EVENT_VALUES", "keys"),
        ("EVENTS_POLL_SECONDS", 10),
        ("ENFORCE_RETRIES", 3),
        ("EVENT_TRENDS", True),
        ("NOTIFY_EMAIL", False),
        ("NOTIFY_INTERVAL", 3600),
    ],
)
def test_defaults(name, default):
    value = getattr(settings, name)
    assert value == default
    assert type(value) is type(default)


@pytest.mark.parametrize(
    ("name", "override", "expected"),
    [
        ("LOCK_TIMEOUT_MS", 50, 50),
        ("CAPACITY_WARNING", 0.5, 0.5),
        ("CAPACITY_CRITICAL", 0.99, 0.99),
        ("SEQUENCES_PER_PAGE", 25, 25),
    ],
)
def test_override_settings_is_seen_at_once_and_undone(name, override, expected):
    with override_settings(**{f"INTEGRITY_{name}": override}):
        assert getattr(settings, name) == expected
    assert getattr(settings, name) != expected


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("LOCK_TIMEOUT_MS", "500", 500),
        ("CAPACITY_WARNING", "0.6", 0.6),
        ("CAPACITY_CRITICAL", 1, 1.0),
        ("SEQUENCES_PER_PAGE", "10", 10),
        ("MERGE_BATCH", "3", 3),
        ("MERGE_BATCH", 0, 1),  # at least one group per request, or merge-all would never advance
    ],
)
def test_values_are_coerced_to_their_documented_type(name, raw, expected):
    with override_settings(**{f"INTEGRITY_{name}": raw}):
        value = getattr(settings, name)
    assert value == expected
    assert type(value) is type(expected)


def test_every_setting_documents_its_default():
    names = [n for n in vars(type(settings)) if n.isupper()]
    assert sorted(names) == [
        "AFTER_MIGRATE",
        "CAPACITY_CRITICAL",
        "CAPACITY_WARNING",
        "CAPTURE_HANDLED",
        "DUPLICATE_RULES",
        "ENFORCE_RETRIES",
        "EVENTS_POLL_SECONDS",
        "EVENT_FRAMES",
        "EVENT_SAMPLES",
        "EVENT_TRENDS",
        "EVENT_VALUES",
        "EVENT_VALUE_CHARS",
        "EVENT_WRITE_TIMEOUT_MS",
        "GROUPS_PER_PAGE",
        "GROUP_SAMPLE_SIZE",
        "JOB_RESULT_GROUPS",
        "JOB_SCAN_TIMEOUT_MS",
        "JOB_STALE_SECONDS",
        "LOCK_TIMEOUT_MS",
        "MERGE_BATCH",
        "NOTIFY_EMAIL",
        "NOTIFY_INTERVAL",
        "READ_LOCK_TIMEOUT_MS",
        "READ_STATEMENT_TIMEOUT_MS",
        "SCAN_CHUNK_ROWS",
        "SCAN_TIMEOUT_MS",
        "SEQUENCES_PER_PAGE",
        "TASK_BACKEND",
        "WRITE_STATEMENT_TIMEOUT_MS",
    ]
    for name in names:
        doc = getattr(type(settings), name).__doc__
        assert doc and "default" in doc, name


@pytest.mark.django_db(databases="__all__")
def test_capacity_thresholds_decide_the_level_the_service_reports():
    """A user-visible effect: the same near-overflow key is critical, then only a warning."""
    from django.db import connection

    from demo.metrics.models import Reading
    from integrity import sequences

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE metrics_reading RESTART IDENTITY")
        cursor.execute("SELECT setval(pg_get_serial_sequence('metrics_reading', 'id'), 1950000000)")
    Reading.objects.create(value=1.0)

    def level() -> str:
        [report] = sequences.collect(["default"], [Reading])
        [info] = report.sequences
        assert info.capacity is not None and 0.90 < info.capacity < 0.95
        return info.capacity_level

    assert level() == "critical"
    with override_settings(INTEGRITY_CAPACITY_CRITICAL=0.95):
        assert level() == "warning"
    with override_settings(INTEGRITY_CAPACITY_WARNING=0.92, INTEGRITY_CAPACITY_CRITICAL=0.95):
        assert level() == "ok"


def test_a_value_read_once_is_kept_until_a_setting_changes():
    """Read once (the middleware asks on every request), forgotten when Django says a setting changed."""
    from django.conf import settings as django_settings

    with override_settings(INTEGRITY_EVENT_SAMPLES=5):
        assert settings.EVENT_SAMPLES == 5
        django_settings.INTEGRITY_EVENT_SAMPLES = 7  # a change nobody announces is not seen...
        assert settings.EVENT_SAMPLES == 5
    assert settings.EVENT_SAMPLES == 20  # ...but leaving override_settings is


def test_an_unknown_event_values_mode_falls_back_to_keys():
    with override_settings(INTEGRITY_EVENT_VALUES="everything"):
        assert settings.EVENT_VALUES == "keys"
