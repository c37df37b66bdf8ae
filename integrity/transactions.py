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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections, transaction
from django.utils.translation import gettext as _

SERIALIZATION_FAILURE, DEADLOCK_DETECTED = "40001", "40P01"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (psycopg 3 or psycopg2), if any."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


@contextmanager
def writing(alias: str, refused: Callable[[str], Exception]) -> Iterator[None]:
    """``transaction.atomic(using=alias)`` at READ COMMITTED; ``refused(message)`` raised when it can't be."""
    connection = connections[alias]
    outermost = connection.get_autocommit() and not connection.in_atomic_block
    try:
        with transaction.atomic(using=alias):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    if outermost:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    else:
                        cursor.execute("SHOW transaction_isolation")
                        level = cursor.fetchone()[0]
                        if level != "read committed":
                            message = _(
                                "This must run at READ COMMITTED, not inside a transaction at %(level)s "
                                "that may have read already: nothing was changed. Run it outside that "
                                "transaction."
                            )
                            raise refused(message % {"level": level.upper()})
            yield
    except DatabaseError as exc:
        if sqlstate(exc) in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
            raise refused(
                _(
                    "Another transaction changed the same rows at the same time: nothing was changed; try again."
                )
            ) from exc
        raise
