"""The Enforce build: run a ``Plan``'s SQL off any request's transaction, record each step, leave nothing half-done.

Each build gets a connection of its own (``CREATE INDEX CONCURRENTLY``
cannot run in a transaction), holds the rule's advisory lock (one build per
rule at a time, whichever process), waits for no lock longer than
``INTEGRITY_LOCK_TIMEOUT_MS`` and tries a statement again at most
``INTEGRITY_ENFORCE_RETRIES`` times. Its steps are written to an
``EnforceRun`` as it goes; its live progress is PostgreSQL's
(``pg_stat_progress_create_index``, by backend pid). When the build fails
(duplicates that slipped in, locks not granted), the index it left invalid
is dropped and nothing else was changed; it ends with the index verified
valid (``pg_index.indisvalid``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections, router
from django.utils.translation import gettext as _

from integrity import reads
from integrity.conf import settings
from integrity.duplicates import indexes
from integrity.duplicates.enforce import BUILD, Plan
from integrity.models import EnforceRun

logger = logging.getLogger("integrity.enforce")

UNIQUE_VIOLATION, LOCK_NOT_AVAILABLE, DUPLICATE_TABLE = "23505", "55P03", "42P07"
BACKOFF_SECONDS = 0.2  # before the next try of a statement whose lock was not granted: 0.2 s, 0.4 s, …


class Stop(Exception):
    """The build ends here: ``status`` and the message the run records."""

    def __init__(self, status: str, message: str, *, duplicates: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.duplicates = duplicates


def record(run: EnforceRun, **changes: Any) -> None:
    """Write ``changes`` to the run (and to the object) at once: other processes read it."""
    for name, value in changes.items():
        setattr(run, name, value)
    run.save(update_fields=[*changes, "updated_at"])


def new_run(plan: Plan, user: Any = None) -> EnforceRun:
    """The run of ``plan``, recorded before anything is built."""
    assert plan.action == BUILD
    return EnforceRun.objects.using(router.db_for_write(EnforceRun)).create(
        user=user if getattr(user, "pk", None) else None,
        database=plan.rule.database,
        rule=plan.rule.key,
        index=plan.index,
        sql=plan.sql,
    )


def lock_timeout_ms() -> int:
    return max(settings.LOCK_TIMEOUT_MS, 1)  # 0 would mean "wait for ever" to PostgreSQL


def execute(plan: Plan, run: EnforceRun) -> EnforceRun:
    """Run ``plan`` on a connection of its own; the run says how it ended (``done``, ``refused``, ``failed``)."""
    connection = connections.create_connection(plan.rule.database)
    try:
        with connection.cursor() as cursor:
            pid, granted = indexes.try_lock(cursor, plan.rule.key)
            if not granted:
                raise Stop(EnforceRun.REFUSED, _("Another Enforce of this rule is running: try again later."))
            reads.set_timeouts(cursor, lock_timeout_ms(), 0, local=False)
            record(run, status=EnforceRun.RUNNING, pid=pid)
            _build(plan, run, cursor)
        record(
            run,
            status=EnforceRun.DONE,
            step="",
            message=_("Enforced by %(index)s, verified valid.") % {"index": plan.index},
        )
    except Stop as stop:
        record(run, status=stop.status, message=str(stop), duplicates=stop.duplicates)
    except Exception as exc:  # noqa: BLE001 - whatever happened, the run must not stay "running"
        logger.exception("Enforce of %s failed", plan.rule.key)
        record(run, status=EnforceRun.FAILED, message=str(exc).strip())
    finally:
        connection.close()
    return run


def _build(plan: Plan, run: EnforceRun, cursor: Any) -> None:
    if plan.drop_invalid:
        record(run, step=_("dropping the invalid index %(index)s") % {"index": plan.drop_invalid})
        _retrying(run, cursor, plan.drop_statement, lambda: None)
    record(run, step=_("building %(index)s") % {"index": plan.index})
    try:
        _retrying(run, cursor, plan.create_index, lambda: _drop_if_invalid(plan, cursor))
    except DatabaseError as exc:
        if reads.sqlstate(exc) != DUPLICATE_TABLE:
            _drop_if_invalid(plan, cursor)
        if reads.sqlstate(exc) == UNIQUE_VIOLATION:
            message = _("Duplicates came in while the index was built: it was dropped, nothing else changed.")
            raise Stop(EnforceRun.REFUSED, f"{message} {_first_line(exc)}", duplicates=True) from exc
        raise Stop(_stop_status(exc), _failed(exc)) from exc
    if plan.add_constraint:
        record(run, step=_("attaching %(index)s as a constraint") % {"index": plan.index})
        try:
            _retrying(run, cursor, plan.add_constraint, lambda: None)
        except DatabaseError as exc:
            _drop(cursor, plan)  # a bare index where Django expects a constraint would trip later migrations
            raise Stop(_stop_status(exc), _failed(exc)) from exc
    state = indexes.index_state(cursor, plan.schema, plan.index, plan.rule.model._meta.db_table)
    if state != (True, True):
        _drop_if_invalid(plan, cursor)
        raise Stop(EnforceRun.FAILED, _("PostgreSQL does not mark the new index valid: it was dropped."))


def _retrying(run: EnforceRun, cursor: Any, statement: str, clean_up: Callable[[], None]) -> None:
    """``statement``, tried again (after ``clean_up``) while its lock is not granted, at most ENFORCE_RETRIES times."""
    retries = settings.ENFORCE_RETRIES
    for attempt in range(retries + 1):
        record(run, attempts=run.attempts + 1)
        try:
            cursor.execute(statement)
            return
        except DatabaseError as exc:
            if reads.sqlstate(exc) != LOCK_NOT_AVAILABLE or attempt == retries:
                raise
            clean_up()
            time.sleep(BACKOFF_SECONDS * (attempt + 1))


def _drop_if_invalid(plan: Plan, cursor: Any) -> None:
    """Drop the index of ``plan`` if it is there and invalid (what a failed concurrent build leaves): never a valid one."""
    if indexes.index_state(cursor, plan.schema, plan.index, plan.rule.model._meta.db_table) == (False, True):
        _drop(cursor, plan)


def _drop(cursor: Any, plan: Plan) -> None:
    for attempt in range(settings.ENFORCE_RETRIES + 1):
        try:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {plan.index_regclass}")
            return
        except DatabaseError as exc:
            if reads.sqlstate(exc) != LOCK_NOT_AVAILABLE or attempt == settings.ENFORCE_RETRIES:
                message = _("The index %(index)s could not be dropped (%(error)s): drop it with %(sql)s") % {
                    "index": plan.index,
                    "error": _first_line(exc),
                    "sql": f"DROP INDEX CONCURRENTLY IF EXISTS {plan.index_regclass};",
                }
                raise Stop(EnforceRun.FAILED, message) from exc
            time.sleep(BACKOFF_SECONDS * (attempt + 1))


def _stop_status(exc: DatabaseError) -> str:
    return EnforceRun.REFUSED if reads.sqlstate(exc) == LOCK_NOT_AVAILABLE else EnforceRun.FAILED


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _failed(exc: DatabaseError) -> str:
    if reads.sqlstate(exc) == LOCK_NOT_AVAILABLE:
        return _(
            "The table stayed locked by other transactions (%(tries)d tries of %(ms)s ms each): nothing was "
            "changed; try again."
        ) % {"tries": settings.ENFORCE_RETRIES + 1, "ms": f"{lock_timeout_ms():,}"}
    return _("The build failed: %(error)s. Nothing was changed.") % {"error": _first_line(exc)}


def start(plan: Plan, user: Any = None) -> EnforceRun:
    """Record the run and build in a thread of this process; the run's page follows it."""
    run = new_run(plan, user)

    def work() -> None:
        try:
            execute(plan, run)
        finally:
            connections.close_all()  # this thread's own connections

    threading.Thread(target=work, name=f"integrity-enforce-{run.pk}", daemon=True).start()
    return run


def live_progress(run: EnforceRun) -> tuple[indexes.Progress | None, bool]:
    """``(progress, alive)`` of a running build: PostgreSQL's progress row, and whether its backend is there."""
    if run.finished or run.pid is None:
        return None, True
    with reads.bounded(run.database), connections[run.database].cursor() as cursor:
        return indexes.progress_of(cursor, run.pid), indexes.backend_alive(cursor, run.pid)
