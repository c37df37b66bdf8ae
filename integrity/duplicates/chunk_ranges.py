"""Key ranges of a chunked scan (``integrity.duplicates.chunked``): which index, where each range ends.

A range is a span of the index's leading key: every row of every key in it,
so no group is split between two ranges whatever the bounds. The bounds only
decide how big each unit is.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import F

from integrity.db import escaped
from integrity.duplicates import chunk_sql as q
from integrity.duplicates.chunk_units import Tally, Units
from integrity.duplicates.rules import Rule

KEEP_BATCH = 1000  # kept groups per INSERT
STALE = (
    0.2  # rows written since ANALYZE, as a share of the rows it counted, past which its histogram is not used
)


def index_order(units: Units, rule: Rule, chunk_rows: int) -> tuple[int, ...] | None:
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


def ranges(
    units: Units,
    shape: q.Shape,
    top: str,
    run: Tally,
    chunk_rows: int,
    sample: int,
    limit: int,
    estimate: int,
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
