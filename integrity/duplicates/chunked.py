"""A rule's duplicate groups on a table too big for one statement: the scan cut in bounded units.

The one-statement scan (``service.scan``) is one hash aggregate over the whole
table, bounded by ``INTEGRITY_SCAN_TIMEOUT_MS``: past a few million rows it can
only time out. ``scan_chunked`` gives the same answer (the same groups, sizes,
first pks, order and totals) in units of about ``chunk_rows`` rows each,
reporting progress after each unit and stopping between two when asked. How
the table is cut depends on what it has (measured by ``benchmarks/scan.py``):

- **one statement** when the table holds no more than one unit: that is
  ``service.scan`` itself.
- **key ranges** when a btree index gives the rule's keys in order (the
  planner says so, for columns and expressions alike) and NULL keys are not
  grouped: each unit groups the keys of one range of the index's leading key,
  every row of its last key included, so no group is ever split. Where a
  range ends comes from ANALYZE's histogram of that key when it is fresh,
  else from the index (the key ``chunk_rows`` rows further, a second read).
  Each unit is a plain read, grouped as it streams: about the one statement.
- **table chunks** otherwise: ranges of pages (``ctid``, a TID range scan)
  whose keys and pks are staged in a temporary table hash-partitioned by key;
  then each partition is grouped on its own (a key lives in one partition
  only). Exact, bounded, and 1.3x to 3x the one statement (everything is
  written once more), which is why an index on the keys is worth having.

Each unit keeps its largest ``limit`` groups in a temporary table; the answer
is the largest of those, ordered by PostgreSQL (its collation, not Python's).
Python holds no more than that. The user's tables are only read (the units
run ``READ ONLY``); the temporary tables are dropped at the end, on a stop or
an error too. Outside a transaction every unit reads the same snapshot,
exported by a second connection held open for the scan, so the parts add up
to the table as it was at the start whatever is written meanwhile; inside
the caller's transaction the units run in savepoints of it. A unit past the
scan timeout raises ``ScanTimedOut``: never a partial answer passed off as
whole.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from integrity.conf import settings
from integrity.duplicates import chunk_sql as q
from integrity.duplicates.chunk_ranges import index_order, ranges
from integrity.duplicates.chunk_units import Progress, Tally, Units
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import Group, scan

KEPT_GROUPS = 1000  # groups kept (the largest), when the caller does not say
MAX_TUPLES_PER_PAGE = 291  # PostgreSQL's bound for 8 kB pages: a chunk of never-analysed pages stays bounded
MAX_PARTITIONS = 1024
ONE, RANGES, CHUNKS = "one statement", "key ranges", "table chunks"


@dataclass
class ChunkedScan:
    """A rule's largest groups and its totals, as the chunked scan found them."""

    rule: Rule
    method: str
    groups: list[Group] = field(default_factory=list)
    total_groups: int = 0
    total_rows: int = 0
    complete: bool = True  # False: stopped between two units; groups and totals cover the units done
    chunks_done: int = 0
    chunks_total: int = 0
    ends: str = ""  # key ranges: where each ends came from, "statistics" (ANALYZE's histogram) or "index"

    @property
    def extra_rows(self) -> int:
        return self.total_rows - self.total_groups


def scan_chunked(
    rule: Rule,
    *,
    sample: int | None = None,
    chunk_rows: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    limit: int | None = None,
    method: str | None = None,
    timeout_ms: int | None = None,
) -> ChunkedScan:
    """The rule's ``limit`` largest groups (default 1000) and exact totals, in units of ``chunk_rows`` rows
    (default ``INTEGRITY_SCAN_CHUNK_ROWS``).

    ``progress(done, total)`` is called after each unit and ``should_stop()``
    before the next: when it answers True the scan ends with ``complete`` False.
    ``method`` forces one of the three ways (tests, benchmarks). Raises
    ``ScanTimedOut`` when a unit runs past ``timeout_ms`` (default
    ``INTEGRITY_SCAN_TIMEOUT_MS``; a job gives its own).
    """
    sample = settings.GROUP_SAMPLE_SIZE if sample is None else int(sample)
    chunk_rows = settings.SCAN_CHUNK_ROWS if chunk_rows is None else int(chunk_rows)
    limit = KEPT_GROUPS if limit is None else int(limit)
    if chunk_rows < 1 or limit < 0 or sample < 1:
        raise ValueError("chunk_rows and sample must be positive, limit not negative")
    report = progress or (lambda done, total: None)
    units = Units(rule, timeout_ms=timeout_ms)
    units.open()
    try:
        tuples, pages = _size(units, rule)
        order = index_order(units, rule, chunk_rows) if method in (None, RANGES) else None
        chosen = method or (ONE if tuples * pages <= chunk_rows else RANGES if order else CHUNKS)
        if chosen == ONE:
            units.close()
            return _one(rule, sample, limit, report, timeout_ms)
        if chosen == RANGES and order is None:
            raise ValueError("no index gives this rule's keys in order")
        return _chunked(
            units, rule, chosen, order, sample, chunk_rows, limit, pages, tuples, should_stop, report
        )
    finally:
        units.close()


def _one(rule: Rule, sample: int, limit: int, report: Progress, timeout_ms: int | None) -> ChunkedScan:
    # The totals come with the rows of the page: a page of none would count none.
    found = scan(rule, limit=max(limit, 1), sample=sample, timeout_ms=timeout_ms)
    found.groups = found.groups[:limit]
    report(1, 1)
    return ChunkedScan(rule, ONE, found.groups, found.total_groups, found.total_rows, True, 1, 1)


def _size(units: Units, rule: Rule) -> tuple[float, int]:
    """(rows per page as last analysed, pages the table has in the scan's snapshot)."""
    [(reltuples, relpages, pages)] = units.run(*q.table_size(rule))
    if reltuples is None:
        return MAX_TUPLES_PER_PAGE, 0
    density = reltuples / relpages if relpages and reltuples and reltuples > 0 else MAX_TUPLES_PER_PAGE
    return float(density), int(pages)


def _chunked(
    units: Units,
    rule: Rule,
    method: str,
    order: tuple[int, ...] | None,
    sample: int,
    chunk_rows: int,
    limit: int,
    pages: int,
    density: float,
    should_stop: Callable[[], bool],
    report: Progress,
) -> ChunkedScan:
    shape = q.shape(rule, order)
    tag = uuid.uuid4().hex[:12]
    rows, top = f"integrity_scan_{tag}_rows", f"integrity_scan_{tag}_top"
    run = Tally(ChunkedScan(rule, method), report, should_stop)
    tables = [top, q.like(rows)]
    try:
        for statement in q.templates(shape, rows, top):
            units.ddl(*statement)
        if method == RANGES:
            finished = ranges(units, shape, top, run, chunk_rows, sample, limit, math.ceil(pages * density))
        else:
            tables.insert(0, rows)
            finished = _chunks(units, rule, shape, rows, top, run, chunk_rows, sample, limit, pages, density)
        run.result.complete = finished
        if finished:
            run.result.chunks_total = run.result.chunks_done
        width = len(shape.names)
        for row in units.run(*q.kept(shape, top, limit), snapshot=False):
            run.result.groups.append(Group(tuple(row[:width]), int(row[width]), list(row[width + 1])))
    finally:
        units.ddl(q.drop(*tables))
    return run.result


def _chunks(
    units: Units,
    rule: Rule,
    shape: q.Shape,
    rows: str,
    top: str,
    run: Tally,
    chunk_rows: int,
    sample: int,
    limit: int,
    pages: int,
    density: float,
) -> bool:
    """Stage the table page range by page range, then group each partition; True when all is done."""
    per_chunk = max(1, int(chunk_rows // max(density, 1.0)))
    starts = list(range(0, max(pages, 1), per_chunk))
    parts = max(1, min(MAX_PARTITIONS, len(starts)))
    total = len(starts) + parts
    units.ddl(q.partitions(shape, rows, parts))
    for i, first in enumerate(starts):
        last = starts[i + 1] if i + 1 < len(starts) else None  # the last chunk runs to the table's end
        units.run(*q.copy_chunk(shape, rows, first, last))
        if run.unit_done(0, 0, total):
            return False
    for i in range(parts):
        # Staged rows only: read in a transaction of its own, which sees what the copies wrote.
        [(groups, grouped)] = units.run(
            *q.combine(
                shape, f"{rows}_{i}", top, nulls_equal=not rule.nulls_distinct, sample=sample, limit=limit
            ),
            snapshot=False,
        )
        if run.unit_done(groups, grouped, total) and i + 1 < parts:
            return False
    return True
