"""Settings of the app, read lazily so ``override_settings`` works.

Every setting is ``INTEGRITY_<NAME>`` in the project's settings; the property
below documents its default. A value is read from Django's settings the first
time it is asked for, then kept until Django says a setting changed
(``setting_changed``, sent by ``override_settings``): the middleware asks on
every request, and a setting a project does not define costs Django's lazy
settings an exception each time it is looked up.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_MISSING = object()  # the project does not set it: the default applies
_UNREAD = object()  # not looked up since the last change
_read: dict[str, Any] = {}


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("INTEGRITY_"):
        _read.pop(setting, None)


class Settings:
    """Typed, lazily read view of the ``INTEGRITY_*`` settings."""

    def _get(self, name: str, default: Any) -> Any:
        key = f"INTEGRITY_{name}"
        value = _read.get(key, _UNREAD)
        if value is _UNREAD:
            value = _read[key] = getattr(django_settings, key, _MISSING)
        return default if value is _MISSING else value

    @property
    def LOCK_TIMEOUT_MS(self) -> int:
        """How long a resync waits for its table lock, in ms (default 2000)."""
        return int(self._get("LOCK_TIMEOUT_MS", 2000))

    @property
    def ENFORCE_RETRIES(self) -> int:
        """How many times Enforce tries a statement again after its lock timeout (default 3)."""
        return max(int(self._get("ENFORCE_RETRIES", 3)), 0)

    @property
    def READ_LOCK_TIMEOUT_MS(self) -> int:
        """How long a read of the pages and the command waits for a table lock, in ms (default 1000)."""
        return max(int(self._get("READ_LOCK_TIMEOUT_MS", 1000)), 1)

    @property
    def READ_STATEMENT_TIMEOUT_MS(self) -> int:
        """How long one read of the pages and the command may run, in ms (default 10000)."""
        return max(int(self._get("READ_STATEMENT_TIMEOUT_MS", 10000)), 1)

    @property
    def WRITE_STATEMENT_TIMEOUT_MS(self) -> int:
        """How long one statement of a writing transaction (resync, merge, undo, prune) may run, in ms (default 600000)."""
        return max(int(self._get("WRITE_STATEMENT_TIMEOUT_MS", 600_000)), 1)

    @property
    def EVENT_WRITE_TIMEOUT_MS(self) -> int:
        """How long recording an IntegrityError may wait for a lock or run, in ms (default 50)."""
        return max(int(self._get("EVENT_WRITE_TIMEOUT_MS", 50)), 1)

    @property
    def EVENT_VALUE_CHARS(self) -> int:
        """Characters kept of each text an event stores (a key value, the detail); the rest is cut (default 1000)."""
        return max(int(self._get("EVENT_VALUE_CHARS", 1000)), 1)

    @property
    def CAPACITY_WARNING(self) -> float:
        """Fraction of a sequence's range used that shows a warning (default 0.75)."""
        return float(self._get("CAPACITY_WARNING", 0.75))

    @property
    def CAPACITY_CRITICAL(self) -> float:
        """Fraction of a sequence's range used that is critical (default 0.90)."""
        return float(self._get("CAPACITY_CRITICAL", 0.90))

    @property
    def SEQUENCES_PER_PAGE(self) -> int:
        """Rows per page of the sequence table (default 100)."""
        return int(self._get("SEQUENCES_PER_PAGE", 100))

    @property
    def DUPLICATE_RULES(self) -> list[dict[str, Any]]:
        """Extra rules to check before a constraint exists (default ``[]``).

        Each: ``{"model": "app.Model", "fields": ["name"], "case_insensitive":
        bool, "trim": bool, "nulls_equal": bool, "name": "optional id"}``.
        """
        return list(self._get("DUPLICATE_RULES", []))

    @property
    def SCAN_TIMEOUT_MS(self) -> int:
        """Statement timeout of one duplicate scan, in ms (default 10000)."""
        return int(self._get("SCAN_TIMEOUT_MS", 10000))

    @property
    def GROUP_SAMPLE_SIZE(self) -> int:
        """Member primary keys kept per duplicate group (default 10)."""
        return int(self._get("GROUP_SAMPLE_SIZE", 10))

    @property
    def GROUPS_PER_PAGE(self) -> int:
        """Duplicate groups per page (default 50)."""
        return int(self._get("GROUPS_PER_PAGE", 50))

    @property
    def MERGE_BATCH(self) -> int:
        """Groups merged per request of the admin's "merge every group" (default 10)."""
        return max(int(self._get("MERGE_BATCH", 10)), 1)

    @property
    def CAPTURE_HANDLED(self) -> bool:
        """Also record IntegrityErrors that application code catches, marked handled (default False)."""
        return bool(self._get("CAPTURE_HANDLED", False))

    @property
    def EVENT_SAMPLES(self) -> int:
        """Sample events kept per group of IntegrityErrors (default 20)."""
        return max(int(self._get("EVENT_SAMPLES", 20)), 0)

    @property
    def EVENT_FRAMES(self) -> int:
        """Frames of the project's own code kept per sample, innermost first; 0 keeps none (default 5)."""
        return max(int(self._get("EVENT_FRAMES", 5)), 0)

    @property
    def EVENT_TRENDS(self) -> bool:
        """Count occurrences per hour and per day for the events' charts (default True)."""
        return bool(self._get("EVENT_TRENDS", True))

    @property
    def NOTIFY_EMAIL(self) -> bool:
        """E-mail ADMINS when a group of IntegrityErrors is new or regressed (default False)."""
        return bool(self._get("NOTIFY_EMAIL", False))

    @property
    def NOTIFY_INTERVAL(self) -> int:
        """At most one such e-mail per group in this many seconds (default 3600)."""
        return max(int(self._get("NOTIFY_INTERVAL", 3600)), 0)

    @property
    def EVENT_VALUES(self) -> str:
        """Which key values an event stores: "keys" (primary and foreign keys; the default), "all" or "none"."""
        value = str(self._get("EVENT_VALUES", "keys"))
        return value if value in EVENT_VALUE_CHOICES else "keys"

    @property
    def EVENTS_POLL_SECONDS(self) -> int:
        """How often the events page asks for new events while the tab is visible (default 10)."""
        return max(int(self._get("EVENTS_POLL_SECONDS", 10)), 1)

    @property
    def AFTER_MIGRATE(self) -> str:
        """What ``migrate`` does about a sequence it leaves behind its data: "warn" (the default), "fix", "error"
        or "off". Another value counts as "warn" (and the system checks say so)."""
        value = self._get("AFTER_MIGRATE", "warn")
        return value if value in AFTER_MIGRATE_CHOICES else "warn"

    @property
    def TASK_BACKEND(self) -> str:
        """The alias in ``TASKS`` that long operations are enqueued on (default "default").

        A worker-backed backend runs them as jobs; Django's immediate or dummy
        backend keeps them in the request (``integrity.jobs.service.worker_backed``).
        """
        return str(self._get("TASK_BACKEND", "default"))

    @property
    def JOB_STALE_SECONDS(self) -> int:
        """A running job whose heartbeat is older than this is marked failed: its worker stopped (default 60)."""
        return max(int(self._get("JOB_STALE_SECONDS", 60)), 1)

    @property
    def JOB_SCAN_TIMEOUT_MS(self) -> int:
        """Statement timeout of a scan run as a job, in ms (default 3600000, an hour)."""
        return max(int(self._get("JOB_SCAN_TIMEOUT_MS", 3_600_000)), 1)

    @property
    def SCAN_CHUNK_ROWS(self) -> int:
        """Rows per unit of a chunked duplicate scan (a scan job's), each one statement (default 1000000:
        about 0.6 s of grouping here, far inside the scan timeout)."""
        return max(int(self._get("SCAN_CHUNK_ROWS", 1_000_000)), 1)

    @property
    def JOB_RESULT_GROUPS(self) -> int:
        """Duplicate groups a scan job keeps in its result, largest first (default 1000)."""
        return max(int(self._get("JOB_RESULT_GROUPS", 1000)), 1)


settings = Settings()

EVENT_VALUE_CHOICES = ("keys", "all", "none")
AFTER_MIGRATE_CHOICES = ("warn", "fix", "error", "off")
# The whole-number settings and the smallest value each takes (a smaller one is raised to it).
INTEGER_MINIMUMS = {
    "LOCK_TIMEOUT_MS": 0,
    "ENFORCE_RETRIES": 0,
    "SEQUENCES_PER_PAGE": 1,
    "SCAN_TIMEOUT_MS": 0,
    "GROUP_SAMPLE_SIZE": 1,
    "GROUPS_PER_PAGE": 1,
    "MERGE_BATCH": 1,
    "EVENT_SAMPLES": 0,
    "EVENT_FRAMES": 0,
    "EVENTS_POLL_SECONDS": 1,
    "WRITE_STATEMENT_TIMEOUT_MS": 1,
    "NOTIFY_INTERVAL": 0,
    "JOB_STALE_SECONDS": 1,
    "JOB_SCAN_TIMEOUT_MS": 1,
    "JOB_RESULT_GROUPS": 1,
    "SCAN_CHUNK_ROWS": 1,
}
BOOLEANS = ("EVENT_TRENDS", "NOTIFY_EMAIL")  # the switches of newer features: True or False, nothing else
FRACTIONS = ("CAPACITY_WARNING", "CAPACITY_CRITICAL")


def _as(kind: type, value: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def invalid_values() -> list[str]:
    """What is wrong with the ``INTEGRITY_*`` values the project sets, one message each (the system check's).

    A value the properties above cannot read would fail while a page is
    served; one they would quietly replace (a typo in ``EVENT_VALUES``) would
    hide the mistake. ``DUPLICATE_RULES`` is checked by the duplicates room.
    """
    problems = []
    for name in INTEGER_MINIMUMS:
        value = getattr(django_settings, f"INTEGRITY_{name}", _MISSING)
        if value is not _MISSING and (isinstance(value, bool) or _as(int, value) is None):
            problems.append(f"INTEGRITY_{name} must be a whole number, not {value!r}.")
    for name in BOOLEANS:
        value = getattr(django_settings, f"INTEGRITY_{name}", _MISSING)
        if value is not _MISSING and not isinstance(value, bool):
            problems.append(f"INTEGRITY_{name} must be True or False, not {value!r}.")
    for name in FRACTIONS:
        value = getattr(django_settings, f"INTEGRITY_{name}", _MISSING)
        number = None if value is _MISSING or isinstance(value, bool) else _as(float, value)
        if value is not _MISSING and (number is None or not 0 <= number <= 1):
            problems.append(f"INTEGRITY_{name} must be a fraction between 0 and 1, not {value!r}.")
    values = getattr(django_settings, "INTEGRITY_EVENT_VALUES", _MISSING)
    if values is not _MISSING and values not in EVENT_VALUE_CHOICES:
        choices = ", ".join(repr(c) for c in EVENT_VALUE_CHOICES)
        problems.append(f"INTEGRITY_EVENT_VALUES must be one of {choices}, not {values!r}.")
    after = getattr(django_settings, "INTEGRITY_AFTER_MIGRATE", _MISSING)
    if after is not _MISSING and after not in AFTER_MIGRATE_CHOICES:
        choices = ", ".join(repr(c) for c in AFTER_MIGRATE_CHOICES)
        problems.append(f"INTEGRITY_AFTER_MIGRATE must be one of {choices}, not {after!r}.")
    rules = getattr(django_settings, "INTEGRITY_DUPLICATE_RULES", _MISSING)
    if rules is not _MISSING and not isinstance(rules, list | tuple):
        problems.append(f"INTEGRITY_DUPLICATE_RULES must be a list of rules, not {rules!r}.")
    return problems
