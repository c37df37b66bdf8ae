"""The events' story, told by ``manage.py demo`` once the data is loaded: a group that regressed, a fix that held.

Both are made of real errors. Each starts with one real IntegrityError,
recorded as it was at earlier times of the past days (``recording.write`` of
the parsed error), so that the charts have a history; what happens then is
done through the app, as a user would:

- an overdrawn account (a CHECK) occurred for days, was resolved by the
  admin, and occurred again: the group is **regressed**;
- new members collided with an existing id (their id sequence was behind,
  as after an import with explicit ids) until the admin resynced the
  sequence: the group records the resync, with **no occurrence since**.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from demo.violations.models import Account, Member
from integrity.events import lifecycle, locations, recording, violations
from integrity.models import EventGroup
from integrity.sequences import service as sequences

# Recording waits at most 50 ms for a lock, to cost a failing request no more: the demo's history is written
# once, at start-up, where waiting a little (a busy machine, a vacuum) is better than a story with gaps.
PATIENT_MS = 5000

# When the earlier occurrences happened, before now.
OVERDRAWN_AGO = [timedelta(days=d, hours=h) for d, h in ((6, 3), (4, 10), (2, 1), (1, 5), (1, 2))]
NEW_MEMBER = "new-member@example.com"
IMPORT_AGO = [timedelta(hours=h) for h in (30, 29, 29, 20, 9, 8, 8, 8, 3)]


def _raised(statement: Callable[[], Any]) -> IntegrityError:
    try:
        with transaction.atomic():
            statement()
    except IntegrityError as exc:
        return exc
    raise RuntimeError("the demo's violation did not happen")


def _history(exc: IntegrityError, path: str, view: str, ago: list[timedelta]) -> int:
    """Record ``exc`` as if it had happened at each of ``ago`` before now, from ``path``; the group's id."""
    v = violations.parse(exc, "default")
    context = {"method": "POST", "path": path, "view": view, "user_pk": ""}
    now = timezone.now()
    group_id = None
    for delta in sorted(ago, reverse=True):
        group_id = recording.write(
            v, "default", context, now=now - delta, frames=locations.frames(exc), write_timeout_ms=PATIENT_MS
        )
    assert group_id is not None
    return group_id


def overdrawn_account_regressed(user: Any) -> EventGroup:
    """Resolved, then the same CHECK failed again: regressed."""

    def overdraw() -> None:
        Account.objects.create(name="Overdrawn", balance=-1)

    group_id = _history(_raised(overdraw), "/demo/violations/check/", "violations:check", OVERDRAWN_AGO)
    lifecycle.resolve([group_id], user)
    started = time.time()
    try:
        with transaction.atomic():
            overdraw()  # today: it occurs again
    except IntegrityError as exc:
        # As ``integrity.capture()`` records it, with the start-up's patient timeout.
        recording.record(exc, origin="capture", started=started, write_timeout_ms=PATIENT_MS)
    return EventGroup.objects.get(pk=group_id)


IMPORTED = 3  # members imported with the ids the sequence hands out next: each failed insert uses one up


def _put_member_sequence_behind() -> None:
    """Members written with the ids the sequence hands out next, as an import with explicit ids does."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('violations_member', 'id'), "
            "nextval(pg_get_serial_sequence('violations_member', 'id')), false)"
        )
        next_id = cursor.fetchone()[0]
    Member.objects.bulk_create(
        Member(id=pk, email=f"imported-{pk}@example.com", nickname="imported")
        for pk in range(next_id, next_id + IMPORTED)
    )


def member_ids_resynced(user: Any) -> EventGroup:
    """Colliding ids until the admin resynced the sequence; a sign-up after it succeeds: verified."""
    Member.objects.filter(email=NEW_MEMBER).delete()  # a rerun on the same database starts over
    _put_member_sequence_behind()

    def sign_up() -> None:
        Member.objects.create(email=NEW_MEMBER, nickname="new")

    group_id = _history(_raised(sign_up), "/demo/violations/unique/", "violations:unique", IMPORT_AGO)
    sequences.resync("default", "violations.Member", "id", user=user)
    sign_up()  # no error now: the fix held
    return EventGroup.objects.get(pk=group_id)


def tell(user: Any) -> list[EventGroup]:
    """Both stories, as ``user`` (the demo's admin); the groups they leave."""
    return [overdrawn_account_regressed(user), member_ids_resynced(user)]
