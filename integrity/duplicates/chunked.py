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
  grouped: each unit reads the next ``chunk_rows`` rows in index order and
  groups them as they stream. A key whose rows may go on past the unit is left
  to the next one, which starts at it, so no group is ever split. As fast as
  the one statement (which then streams over the index too).
- **table chunks** otherwise: ranges of pages (``ctid``, a TID range scan)
  whose keys and pks are staged in a temporary table hash-partitioned by key;
  then each partition is grouped on its own (a key lives in one partition
  only). Exact, bounded, and about twice the one statement (everything is
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

import heapq
import itertools
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import F

from integrity.conf import settings
from integrity.db import escaped
from integrity.duplicates import chunk_sql as q
from integrity.duplicates.chunk_units import Units
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import Group, scan

CHUNK_ROWS = 1_000_000  # rows per unit: about 0.6 s of grouping here, far inside the 10 s scan timeout
KEPT_GROUPS = 1000  # groups kept (the largest), when the caller does not say
MAX_TUPLES_PER_PAGE = 291  # PostgreSQL's bound for 8 kB pages: a chunk of never-analysed pages stays bounded
MAX_PARTITIONS = 1024
KEEP_BATCH = 1000  # kept groups per INSERT
STALE = (
    0.2  # rows written since ANALYZE, as a share of the rows it counted, past which its histogram is not used
)
ONE, RANGES, CHUNKS = "one statement", "key ranges", "table chunks"
Progress = Callable[[int, int], None]


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
) -> ChunkedScan:
    """The rule's ``limit`` largest groups (default 1000) and exact totals, in units of ``chunk_rows`` rows.

    ``progress(done, total)`` is called after each unit and ``should_stop()``
    before the next: when it answers True the scan ends with ``complete`` False.
    ``method`` forces one of the three ways (tests, benchmarks). Raises
    ``ScanTimedOut`` when a unit runs past ``INTEGRITY_SCAN_TIMEOUT_MS``.
    """
    sample = settings.GROUP_SAMPLE_SIZE if sample is None else int(sample)
    chunk_rows = CHUNK_ROWS if chunk_rows is None else int(chunk_rows)
    limit = KEPT_GROUPS if limit is None else int(limit)
    if chunk_rows < 1 or limit < 0 or sample < 1:
        raise ValueError("chunk_rows and sample must be positive, limit not negative")
    report = progress or (lambda done, total: None)
    units = Units(rule)
    units.open()
    try:
        tuples, pages = _size(units, rule)
        order = _index_order(units, rule, chunk_rows) if method in (None, RANGES) else None
        chosen = method or (ONE if tuples * pages <= chunk_rows else RANGES if order else CHUNKS)
        if chosen == ONE:
            units.close()
            return _one(rule, sample, limit, report)
        if chosen == RANGES and order is None:
            raise ValueError("no index gives this rule's keys in order")
        return _chunked(
            units, rule, chosen, order, sample, chunk_rows, limit, pages, tuples, should_stop, report
        )
    finally:
        units.close()


def _one(rule: Rule, sample: int, limit: int, report: Progress) -> ChunkedScan:
    found = scan(rule, limit=limit, sample=sample)
    report(1, 1)
    return ChunkedScan(rule, ONE, found.groups, found.total_groups, found.total_rows, True, 1, 1)


def _size(units: Units, rule: Rule) -> tuple[float, int]:
    """(rows per page as last analysed, pages the table has in the scan's snapshot)."""
    [(reltuples, relpages, pages)] = units.run(*q.table_size(rule))
    if reltuples is None:
        return MAX_TUPLES_PER_PAGE, 0
    density = reltuples / relpages if relpages and reltuples and reltuples > 0 else MAX_TUPLES_PER_PAGE
    return float(density), int(pages)


def _index_order(units: Units, rule: Rule, chunk_rows: int) -> tuple[int, ...] | None:
    """An order of the rule's keys that an index reads without a sort (None: no index does).

    Key ranges need the keys' rows in key order from an index; NULL keys, which
    a range cannot hold, must be dropped by the rule (nulls distinct). The
    planner decides, so an expression index counts and a mismatched collation
    or a partial index does not.
    """
    if not rule.nulls_distinct:
        return None
    width = len(rule.key_expressions)
    candidates = itertools.permutations(range(width)) if width <= 3 else [tuple(range(width))]
    for order in candidates:
        sql, params = q.ordered_probe(q.shape(rule, order), chunk_rows)
        [(plan,)] = units.run("EXPLAIN (FORMAT JSON) " + sql, params, ranges=True)
        nodes = set(_node_types(json.loads(plan) if isinstance(plan, str) else plan))
        if nodes & {"Index Scan", "Index Only Scan"} and not nodes & {"Sort", "Incremental Sort"}:
            return tuple(order)
    return None


def _node_types(plan: Any) -> list[str]:
    if isinstance(plan, list):
        return [t for p in plan for t in _node_types(p)]
    if isinstance(plan, dict):
        own = [plan["Node Type"]] if "Node Type" in plan else []
        return own + [t for v in plan.values() if isinstance(v, list | dict) for t in _node_types(v)]
    return []


@dataclass
class _Run:
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
    run = _Run(ChunkedScan(rule, method), report, should_stop)
    tables = [top, q.like(rows)]
    try:
        for statement in q.templates(shape, rows, top):
            units.ddl(*statement)
        if method == RANGES:
            finished = _ranges(units, shape, top, run, chunk_rows, sample, limit, math.ceil(pages * density))
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


def _ranges(
    units: Units, shape: q.Shape, top: str, run: _Run, chunk_rows: int, sample: int, limit: int, estimate: int
) -> bool:
    """Key range after key range; True when the last one was read to the end of the index."""
    planned = _planned_ends(units, run.result.rule, shape, chunk_rows)
    run.result.ends = "index" if planned is None else "statistics"
    total = len(planned) if planned is not None else max(1, math.ceil(estimate / chunk_rows))
    # The sizes of the groups kept so far (``limit`` numbers at most): a later range's group smaller
    # than all of them cannot be among the largest, so its pks are not looked up. Ranges come in the
    # rule's key order unless the index's columns are in another order: then a tie may still win.
    sizes: list[int] = []
    ties_lose = list(shape.names) == sorted(shape.names, key=lambda n: int(n[1:]))
    width = len(shape.names)
    after: Sequence[Any] | None = None
    while True:
        least = sizes[0] + int(ties_lose) if limit and len(sizes) >= limit else 0
        with units.unit(ranges=True) as execute:
            if planned is not None:
                upto = planned[run.result.chunks_done]
            else:
                ends = execute(*q.boundary(shape, after=after, chunk_rows=chunk_rows))
                upto = ends[0] if ends else None
            found = execute(
                *q.key_range(shape, after=after, upto=upto, sample=sample, limit=limit, least=least)
            )
            kept = [row[2:] for row in found if row[2 + width] is not None]
            for start in range(0, len(kept), KEEP_BATCH):  # a statement's parameters are bounded
                execute(*q.keep(shape, top, kept[start : start + KEEP_BATCH]))
        for row in kept:
            _keep(sizes, int(row[width]), limit)
        groups, grouped = found[0][:2]
        if upto is None:  # the range ran to the end of the index
            run.unit_done(groups, grouped, run.result.chunks_done + 1)
            return True
        after = list(upto)
        if run.unit_done(groups, grouped, total):
            return False


def _planned_ends(
    units: Units, rule: Rule, shape: q.Shape, chunk_rows: int
) -> list[tuple[Any] | None] | None:
    """Where each range ends, read off the leading key's histogram when ANALYZE's is fresh; else None.

    Finding each range's end in the index costs a read of its rows over again
    (about two thirds of grouping them); the histogram costs nothing. Only the
    size of the units depends on it, never the answer: ranges on the leading
    key keep every group whole, whatever the bounds. It is not trusted when the
    table changed much since ANALYZE or its most common values hold more
    rows than a range: then each
    range's end is found in the index (``q.boundary``).
    """
    column = _leading_column(rule, shape)
    if column is None:
        return None
    [(type_name,)] = units.run(*q.column_type(rule, column))
    found = units.run(*q.histogram(rule, column, escaped(type_name)))
    if not found:
        return None
    bounds, null_frac, common, reltuples, changed = found[0]
    # The most common values are not in the histogram: together they may add at most one unit's rows
    # to a range (at most twice the size asked for).
    if (
        not bounds
        or len(bounds) < 3
        or reltuples <= 0
        or changed > STALE * reltuples
        or common * reltuples > chunk_rows
    ):
        return None
    per_bucket = reltuples * max(0.0, 1.0 - null_frac - common) / (len(bounds) - 1)
    every = max(1, round(chunk_rows / per_bucket)) if per_bucket > 0 else 1
    # The last bound was the largest key at ANALYZE: past it, the last range runs to the end.
    ends: list[tuple[Any] | None] = [(b,) for b in bounds[every - 1 : -1 : every]]
    return [*ends, None]


def _leading_column(rule: Rule, shape: q.Shape) -> str | None:
    """The column of the leading key when it is a plain field of the model (its statistics are the column's)."""
    expression = rule.key_expressions[int(shape.names[0][1:])]
    if not isinstance(expression, F):
        return None
    try:
        field = rule.model._meta.get_field(str(getattr(expression, "name", "")))
    except FieldDoesNotExist:
        return None
    column = getattr(field, "column", None)
    return str(column) if column else None


def _keep(sizes: list[int], size: int, limit: int) -> None:
    """Keep the ``limit`` largest sizes in the min-heap ``sizes``."""
    if len(sizes) < limit:
        heapq.heappush(sizes, size)
    elif limit and size > sizes[0]:
        heapq.heapreplace(sizes, size)


def _chunks(
    units: Units,
    rule: Rule,
    shape: q.Shape,
    rows: str,
    top: str,
    run: _Run,
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
