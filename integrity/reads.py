"""Bounded reads: no read of the pages or the command waits for a lock, or runs, without a limit.

``bounded(alias)`` runs its block in a savepoint (a transaction in autocommit)
with ``lock_timeout`` and ``statement_timeout`` set for it alone
(``set_config(…, true)``, i.e. ``SET LOCAL``), and rolls it back at the end:
the settings die with it, whatever the project configured on the connection
or whether a transaction of the caller's was open (``SET LOCAL`` would outlive
a released savepoint; a rolled back one takes it along). A read that is not
granted its lock, or not done, in time raises ``ReadBusy``, whose text says
which. Blocks that write must not run in it (their writes are rolled back).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils.translation import gettext as _

from integrity.conf import settings

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


class ReadBusy(Exception):
    """A read could not be done in time: a lock another transaction holds, or a statement timeout."""

    def __init__(self, reason: str, *, locked: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked = locked


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a Django ``DatabaseError``: from the driver's exception it wraps (psycopg 3's
    ``sqlstate``, psycopg2's ``pgcode``), or the exception's own when it is the driver's."""
    for error in (exc.__cause__, exc):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if code:
            return str(code)
    return None


def locked_reason() -> str:
    return _("table locked by another transaction (a migration, VACUUM FULL?); try again")


def busy(exc: BaseException) -> ReadBusy | None:
    """``exc`` as a ``ReadBusy`` when it is a lock or statement timeout, else ``None``."""
    code = sqlstate(exc)
    if code == LOCK_NOT_AVAILABLE:
        return ReadBusy(locked_reason(), locked=True)
    if code == QUERY_CANCELED:
        reason = _("the read took longer than %(ms)s ms; try again") % {
            "ms": f"{settings.READ_STATEMENT_TIMEOUT_MS:,}"
        }
        return ReadBusy(reason, locked=False)
    return None


def set_timeouts(cursor: Any, lock_ms: int, statement_ms: int, *, local: bool = True) -> None:
    """``SET LOCAL`` both timeouts on ``cursor``'s transaction (``local=False``: its session); values are parameters."""
    cursor.execute(
        "SELECT set_config('lock_timeout', %s, %s), set_config('statement_timeout', %s, %s)",
        [f"{int(lock_ms)}ms", local, f"{int(statement_ms)}ms", local],
    )


@contextmanager
def bounded(
    alias: str, *, lock_ms: int | None = None, statement_ms: int | None = None, savepoint: bool = True
) -> Iterator[None]:
    """Run the block's reads on ``alias`` with a lock and a statement timeout, then roll back.

    Defaults: ``INTEGRITY_READ_LOCK_TIMEOUT_MS`` and
    ``INTEGRITY_READ_STATEMENT_TIMEOUT_MS``. Non-PostgreSQL aliases run the
    block as it is. Raises ``ReadBusy`` on a timeout. Within a block bounded
    the same way already, the timeouts are in force: only a savepoint is
    taken (so that the caller can go on after a ``ReadBusy``, and so that the
    locks its reads took end with it), and not even that with
    ``savepoint=False`` (a ``ReadBusy`` then ends the outer block too).
    """
    connection = connections[alias]
    if connection.vendor != "postgresql" or getattr(connection, "needs_rollback", False):
        yield
        return
    lock = settings.READ_LOCK_TIMEOUT_MS if lock_ms is None else lock_ms
    statement = settings.READ_STATEMENT_TIMEOUT_MS if statement_ms is None else statement_ms
    stack: list[tuple[int, int]] = connection.__dict__.setdefault("_integrity_bounds", [])
    same = connection.in_atomic_block and bool(stack) and stack[-1] == (lock, statement)
    if same and not savepoint:
        yield
        return
    stack.append((lock, statement))
    try:
        with transaction.atomic(using=alias):
            if not same:
                with connection.cursor() as cursor:
                    set_timeouts(cursor, lock, statement)
            yield
            # Reads only: nothing to keep. Rolled back, the timeouts go too (not ``same``), and so do the
            # locks the block's reads took, even in a savepoint (RELEASE would keep them until the outer
            # transaction ends: thousands of tables read chunk by chunk would overflow the lock table).
            transaction.set_rollback(True, using=alias)
    except DatabaseError as exc:
        found = busy(exc)
        if found is None:
            raise
        raise found from exc
    finally:
        stack.pop()


def postgres_aliases(aliases: Iterable[str] | None = None) -> list[str]:
    return [
        a for a in (aliases if aliases is not None else connections) if connections[a].vendor == "postgresql"
    ]


@contextmanager
def bounded_all(aliases: Iterable[str] | None = None) -> Iterator[None]:
    """``bounded`` on every PostgreSQL alias (default: all of ``DATABASES``) at once."""
    with ExitStack() as stack:
        for alias in postgres_aliases(aliases):
            stack.enter_context(bounded(alias))
        yield
