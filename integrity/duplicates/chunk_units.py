"""How each unit of a chunked scan runs: its own bounded transaction, all of them on one snapshot.

Outside a transaction, a second connection opens a ``REPEATABLE READ READ
ONLY`` transaction and exports its snapshot; every unit that reads the user's
table is a short ``READ ONLY`` transaction importing it. So the units add up
to the table at one moment, like one statement would, while the scan's own
connection commits between them (what a task writes as its progress on that
connection is seen at once). Units that read only the staged rows run in a
plain transaction, which sees what the earlier units wrote. Inside a
transaction of the caller's, units are savepoints of it and see what it sees.
Every unit has the scan's statement timeout and the reads' lock timeout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections, transaction

from integrity import reads
from integrity.conf import settings
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import QUERY_CANCELED, ScanTimedOut

SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f-]+$")

# A savepoint's SET LOCAL outlives its release: the caller's values are read first, put back after.
SAVE_AND_SET = (
    "WITH previous AS MATERIALIZED (SELECT current_setting('statement_timeout') AS s, "
    "current_setting('lock_timeout') AS l, current_setting('enable_sort') AS o) "
    "SELECT s, l, o, set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
    "set_config('enable_sort', %s, true) FROM previous"
)
RESTORE = (
    "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
    "set_config('enable_sort', %s, true)"
)


class Units:
    """Runs the statements of one chunked scan of ``rule``."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.connection = connections[rule.database]
        self.nested = self.connection.in_atomic_block
        self.snapshot: str | None = None
        self._exporter: Any = None

    def open(self) -> None:
        """Export the snapshot every unit will read (not inside a caller's transaction)."""
        if self.nested:
            return
        wrapper = self.connection
        wrapper.ensure_connection()
        raw = wrapper.get_new_connection(wrapper.get_connection_params())
        raw.autocommit = True
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = str(cursor.fetchone()[0])
        except BaseException:
            raw.close()
            raise
        if not SNAPSHOT_ID.match(snapshot):
            raw.close()
            raise DatabaseError(f"unexpected snapshot id {snapshot!r}")
        self._exporter, self.snapshot = raw, snapshot

    def close(self) -> None:
        if self._exporter is not None:
            exporter, self._exporter = self._exporter, None
            exporter.close()

    def run(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        snapshot: bool = True,
        ranges: bool = False,
        read_only: bool = True,
    ) -> list[tuple[Any, ...]]:
        """One unit: ``sql`` in its own bounded transaction (on the scan's snapshot unless told not to).

        ``ranges``: sorting is disabled for it, so that a key range is always
        read from the index, never as a sort of the whole table.
        """
        connection = self.connection
        timeout = f"{int(settings.SCAN_TIMEOUT_MS)}ms"
        lock = f"{int(settings.READ_LOCK_TIMEOUT_MS)}ms"
        sort = "off" if ranges else "on"
        with self._timeouts_as_scan_timed_out(), transaction.atomic(using=self.rule.database):
            with connection.cursor() as cursor:
                previous = None
                if self.nested:
                    cursor.execute(SAVE_AND_SET, [timeout, lock, sort])
                    previous = cursor.fetchone()[:3]
                else:
                    cursor.execute(self._begin(timeout, lock, sort, snapshot and read_only, read_only))
                # No parameters, no placeholders: the temporary tables' DDL is several statements in one.
                cursor.execute(sql, list(params) if params else None)
                rows = list(cursor.fetchall()) if cursor.description else []
                if previous is not None:
                    cursor.execute(RESTORE, list(previous))
                return rows

    @contextmanager
    def _timeouts_as_scan_timed_out(self) -> Iterator[None]:
        try:
            yield
        except DatabaseError as exc:
            if reads.sqlstate(exc) in (QUERY_CANCELED, reads.LOCK_NOT_AVAILABLE):
                raise ScanTimedOut(self.rule.key) from exc
            raise

    def _begin(self, timeout: str, lock: str, sort: str, snapshot: bool, read_only: bool) -> str:
        # One round trip, values checked above (no parameters: SET TRANSACTION SNAPSHOT takes none).
        # Temporary tables are written in READ ONLY units, but only created or dropped outside one.
        head = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " if read_only else ""
        if snapshot and self.snapshot:
            head += f"SET TRANSACTION SNAPSHOT '{self.snapshot}'; "
        return (
            head + f"SET LOCAL statement_timeout = '{timeout}'; SET LOCAL lock_timeout = '{lock}'; "
            f"SET LOCAL enable_sort = {sort}"
        )

    def ddl(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Create or drop the scan's temporary tables (a transaction of its own, or a savepoint)."""
        self.run(sql, params, snapshot=False, read_only=False)
