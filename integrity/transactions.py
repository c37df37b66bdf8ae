"""The app's writing transactions: on READ COMMITTED whatever the project configured.

Resync, merge and undo lock first, then read what they act on: a reader that
saw data from before its lock (the snapshot ``REPEATABLE READ`` and
``SERIALIZABLE`` take at the first statement) would set a sequence below a
MAX committed meanwhile, or fail with a serialization error after waiting on
a row lock. So each of them runs at ``READ COMMITTED``: set as the first
statement of its own transaction, or, nested in a caller's transaction,
checked (``SHOW`` takes no snapshot) and refused when it is any other level,
since that transaction may have read already. A serialization failure or a
deadlock becomes the caller's refusal ("try again"), with nothing changed.

Nothing in them waits without a limit either: every statement has
``lock_timeout`` = ``INTEGRITY_LOCK_TIMEOUT_MS`` and ``statement_timeout`` =
``INTEGRITY_WRITE_STATEMENT_TIMEOUT_MS`` (``SET LOCAL``; nested in a caller's
transaction, the caller's values are put back afterwards), and a lock not
granted, or a statement cut, in time is the caller's refusal too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections, transaction
from django.utils.translation import gettext as _

from integrity.conf import settings
from integrity.reads import sqlstate

SERIALIZATION_FAILURE, DEADLOCK_DETECTED = "40001", "40P01"
LOCK_NOT_AVAILABLE, QUERY_CANCELED = "55P03", "57014"
TIMEOUTS = "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)"


@contextmanager
def writing(alias: str, refused: Callable[[str], Exception]) -> Iterator[None]:
    """``transaction.atomic(using=alias)`` at READ COMMITTED; ``refused(message)`` raised when it can't be."""
    connection = connections[alias]
    outermost = connection.get_autocommit() and not connection.in_atomic_block
    try:
        with transaction.atomic(using=alias):
            if connection.vendor != "postgresql":
                yield
                return
            with connection.cursor() as cursor:
                if outermost:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    before = None
                else:
                    cursor.execute(
                        "SELECT current_setting('transaction_isolation'), current_setting('lock_timeout'), "
                        "current_setting('statement_timeout')"
                    )
                    level, *before = cursor.fetchone()
                    if level != "read committed":
                        message = _(
                            "This must run at READ COMMITTED, not inside a transaction at %(level)s "
                            "that may have read already: nothing was changed. Run it outside that "
                            "transaction."
                        )
                        raise refused(message % {"level": level.upper()})
                cursor.execute(
                    TIMEOUTS, [f"{settings.LOCK_TIMEOUT_MS}ms", f"{settings.WRITE_STATEMENT_TIMEOUT_MS}ms"]
                )
            yield
            if before is not None:  # the caller's transaction goes on with its own limits
                with connection.cursor() as cursor:
                    cursor.execute(TIMEOUTS, before)
    except DatabaseError as exc:
        code = sqlstate(exc)
        if code in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
            raise refused(
                _(
                    "Another transaction changed the same rows at the same time: nothing was changed; try again."
                )
            ) from exc
        if code == LOCK_NOT_AVAILABLE:
            raise refused(
                _(
                    "A table or row it needs is locked by another transaction (a migration, VACUUM FULL?): "
                    "nothing was changed; try again."
                )
            ) from exc
        if code == QUERY_CANCELED:
            message = _(
                "A statement ran longer than INTEGRITY_WRITE_STATEMENT_TIMEOUT_MS (%(ms)s ms): nothing was changed."
            )
            raise refused(message % {"ms": f"{settings.WRITE_STATEMENT_TIMEOUT_MS:,}"}) from exc
        raise
