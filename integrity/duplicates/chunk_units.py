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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction

from integrity import reads
from integrity.conf import settings
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import QUERY_CANCELED, ScanTimedOut

if TYPE_CHECKING:
    from integrity.duplicates.chunked import ChunkedScan

Progress = Callable[[int, int], None]
SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f-]+$")

# Key ranges are read with sorts and sequential scans disabled, so that a range always comes from the
# index (never from a sort or a filter of the whole table); from PostgreSQL 16, ordered aggregates (the first pks) would then be fed
# by a walk of the primary key index, unless presorted aggregates are disabled too.
PLANNER = ("enable_sort", "enable_seqscan")
PLANNER_16 = (*PLANNER, "enable_presorted_aggregate")


def _save_and_set(names: Sequence[str]) -> str:
    """Read the caller's values, then SET LOCAL ours (a savepoint's SET LOCAL outlives its release)."""
    read = ", ".join(f"current_setting('{n}') AS v{i}" for i, n in enumerate(names))
    values = ", ".join(f"v{i}" for i in range(len(names)))
    return f"WITH previous AS MATERIALIZED (SELECT {read}) SELECT {values}, {_set(names)} FROM previous"  # noqa: S608


def _set(names: Sequence[str]) -> str:
    return ", ".join(f"set_config('{n}', %s, true)" for n in names)


class Units:
    """Runs the statements of one chunked scan of ``rule``."""

    def __init__(self, rule: Rule, *, timeout_ms: int | None = None) -> None:
        self.rule = rule
        self.timeout_ms = settings.SCAN_TIMEOUT_MS if timeout_ms is None else int(timeout_ms)
        self.connection = connections[rule.database]
        self.nested = self.connection.in_atomic_block
        self.snapshot: str | None = None
        self._exporter: Any = None
        pg16 = getattr(self.connection, "pg_version", 0) >= 160000
        self.settings = ("statement_timeout", "lock_timeout", *(PLANNER_16 if pg16 else PLANNER))

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
            # It waits idle in its transaction for the whole scan, by design: a server-wide idle limit
            # would end it between two units (and the next one could not import its snapshot).
            cursor.execute("SET idle_in_transaction_session_timeout = 0")
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
        """One unit of one statement (see ``unit``)."""
        with self.unit(snapshot=snapshot, ranges=ranges, read_only=read_only) as execute:
            return execute(sql, params)

    @contextmanager
    def unit(
        self, *, snapshot: bool = True, ranges: bool = False, read_only: bool = True
    ) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
        """One unit: its statements in one bounded transaction (on the scan's snapshot unless told not to).

        Yields ``execute(sql, params)``, which returns the rows.
        ``ranges``: the planner may neither sort nor scan the whole table (``PLANNER``).
        """
        connection = self.connection
        planner = "off" if ranges else "on"
        values = [f"{self.timeout_ms}ms", f"{int(settings.READ_LOCK_TIMEOUT_MS)}ms"]
        values += [planner] * (len(self.settings) - 2)
        with self._timeouts_as_scan_timed_out(), transaction.atomic(using=self.rule.database):
            with connection.cursor() as cursor:
                previous = None
                if self.nested:
                    cursor.execute(_save_and_set(self.settings), values)
                    previous = cursor.fetchone()[: len(values)]
                else:
                    cursor.execute(self._begin(values, snapshot and read_only, read_only))

                def execute(
                    sql: str, params: Sequence[Any] = (), many: bool = False
                ) -> list[tuple[Any, ...]]:
                    if many:
                        cursor.executemany(sql, list(params))
                        return []
                    # No parameters, no placeholders: the temporary tables' DDL is several statements in one.
                    cursor.execute(sql, list(params) if params else None)
                    return list(cursor.fetchall()) if cursor.description else []

                yield execute
                if previous is not None:
                    cursor.execute(f"SELECT {_set(self.settings)}", list(previous))

    @contextmanager
    def _timeouts_as_scan_timed_out(self) -> Iterator[None]:
        try:
            yield
        except DatabaseError as exc:
            code = reads.sqlstate(exc)
            if code in (QUERY_CANCELED, reads.LOCK_NOT_AVAILABLE):
                locked = code == reads.LOCK_NOT_AVAILABLE
                raise ScanTimedOut(self.rule.key, timeout_ms=self.timeout_ms, locked=locked) from exc
            raise

    def _begin(self, values: Sequence[str], snapshot: bool, read_only: bool) -> str:
        # One round trip, values made above (no parameters: SET TRANSACTION SNAPSHOT takes none).
        # Temporary tables are written in READ ONLY units, but only created or dropped outside one.
        head = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " if read_only else ""
        if snapshot and self.snapshot:
            head += f"SET TRANSACTION SNAPSHOT '{self.snapshot}'; "
        return head + "; ".join(f"SET LOCAL {n} = '{v}'" for n, v in zip(self.settings, values, strict=True))

    def ddl(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Create or drop the scan's temporary tables (a transaction of its own, or a savepoint)."""
        self.run(sql, params, snapshot=False, read_only=False)


@dataclass
class Tally:
    """What the units found so far."""

    result: ChunkedScan
    report: Progress
    should_stop: Callable[[], bool]

    def unit_done(self, groups: int, rows: int, total: int) -> bool:
        """Count a finished unit; True when the scan must stop before the next."""
        r = self.result
        r.total_groups, r.total_rows = r.total_groups + int(groups), r.total_rows + int(rows)
        r.chunks_done, r.chunks_total = r.chunks_done + 1, max(total, r.chunks_done + 1)
        self.report(r.chunks_done, r.chunks_total)
        return self.should_stop()
