"""Duplicate groups of a rule: one set-based ``GROUP BY … HAVING COUNT(*) > 1``.

The grouped query is built with the ORM (so expressions, conditions and
quoting are Django's); a thin wrapper adds the totals as window functions and
pages it, so the count and the first page cost one scan. Nothing loads a
table into Python. NULLs follow the rule: in a nulls-distinct rule a row with
a NULL key part is never anyone's duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.models import Aggregate, Count, F, Field, Model, QuerySet
from django.db.models.functions import Lower, LTrim, RTrim, Trim, Upper
from django.utils.translation import gettext as _

from integrity import reads
from integrity.conf import settings
from integrity.db import quote
from integrity.duplicates.rules import Rule

QUERY_CANCELED = "57014"
GROUP_LIMIT = 100  # members of one group considered (merged, shown side by side) at most
# How "merge every group" picks the row of each group that stays (integrity.merge.bulk).
MOST_REFERENCED, OLDEST, NEWEST = "most-referenced", "oldest", "newest"
POLICIES = (MOST_REFERENCED, OLDEST, NEWEST)


def most_referenced(members: Sequence[Model], totals: Mapping[Any, int]) -> Any:
    """The primary key of the member the most rows reference (``totals``, by pk); ties to the lowest pk."""
    return min(members, key=lambda m: (-totals.get(m.pk, 0), m.pk)).pk


class ScanTimedOut(reads.ReadBusy):
    """The scan ran past ``INTEGRITY_SCAN_TIMEOUT_MS``; nothing was changed.

    A read not done in time like any other (``reads.ReadBusy``), so that a
    page that lets it through is the guard's "try again" page, never a 500;
    its text is the rule's key.
    """

    def __init__(self, key: str, *, timeout_ms: int, locked: bool = False) -> None:
        if locked:
            reason = _("the duplicate scan waited for a lock another transaction holds")
        else:
            reason = _("the duplicate scan ran past %(ms)s ms") % {"ms": f"{int(timeout_ms):,}"}
        super().__init__(reason, locked=locked)
        self.key = key

    def __str__(self) -> str:
        return self.key


class FirstKeys(Aggregate):
    """The first ``cap`` values of ``expression`` in a group, ascending: ``(array_agg(x ORDER BY x))[1:cap]``."""

    function = "ARRAY_AGG"
    template = "(%(function)s(%(expressions)s ORDER BY %(expressions)s))[1:%(cap)d]"

    def __init__(self, expression: Any, cap: int) -> None:
        super().__init__(expression, output_field=Field())
        self.extra["cap"] = int(cap)


@dataclass
class Group:
    """Rows sharing one key: the key's values, how many rows, their first primary keys."""

    key: tuple[Any, ...]
    size: int
    pks: list[Any]


@dataclass
class ScanResult:
    """One page of a rule's duplicate groups and the rule's totals."""

    rule: Rule
    groups: list[Group] = field(default_factory=list)
    total_groups: int = 0
    total_rows: int = 0
    offset: int = 0

    @property
    def extra_rows(self) -> int:
        """Rows that would have to go for the rule to hold (all but one per group)."""
        return self.total_rows - self.total_groups


def _every_row(model: type[Model], alias: str) -> QuerySet[Any]:
    """All rows of the table: a base manager may filter rows, the database's rule does not."""
    return QuerySet(model=model, using=alias)


def keyed(rule: Rule) -> tuple[QuerySet[Any], list[str]]:
    """The rule's rows (condition applied, NULL keys dropped when NULLs are distinct), keys annotated."""
    names = [f"k{i}" for i in range(len(rule.key_expressions))]
    qs = _every_row(rule.model, rule.database)
    if rule.condition is not None:
        qs = qs.filter(rule.condition)
    plain = [_null_source(e) for e in rule.key_expressions]
    if rule.nulls_distinct and all(plain):
        # lower(x) is NULL exactly when x is: test the column, not the
        # expression, or PostgreSQL computes every expression twice per row.
        qs = qs.filter(**{f"{name}__isnull": False for name in plain if name})
    qs = qs.annotate(**dict(zip(names, rule.key_expressions, strict=True)))
    if rule.nulls_distinct and not all(plain):
        qs = qs.filter(**{f"{name}__isnull": False for name in names})
    return qs.order_by(), names


NULL_PRESERVING = (Lower, Upper, Trim, LTrim, RTrim)


def _null_source(expression: Any) -> str | None:
    """The field an expression is NULL exactly when, for ``F`` wrapped in NULL-preserving functions."""
    while isinstance(expression, NULL_PRESERVING):
        sources = expression.get_source_expressions()
        if len(sources) != 1:
            return None
        expression = sources[0]
    if isinstance(expression, F):
        return str(getattr(expression, "name", "")) or None
    return None


def counted(rule: Rule) -> tuple[QuerySet[Any], list[str]]:
    """``SELECT keys, COUNT(*) … GROUP BY keys HAVING COUNT(*) > 1``, as a queryset."""
    qs, names = keyed(rule)
    return qs.values(*names).annotate(n=Count("*")).filter(n__gt=1).order_by(), names


def grouped(rule: Rule, sample: int) -> tuple[QuerySet[Any], list[str]]:
    """Like ``counted``, with each group's first ``sample`` primary keys as ``pks``."""
    qs, names = keyed(rule)
    pk = rule.model._meta.pk.attname
    return qs.values(*names).annotate(n=Count("*"), pks=FirstKeys(pk, sample)).filter(
        n__gt=1
    ).order_by(), names


def _timeout(cursor: Any, timeout_ms: int | None) -> str:
    """Set the scan's timeout for the current transaction; return the timeout it replaces."""
    ms = settings.SCAN_TIMEOUT_MS if timeout_ms is None else timeout_ms
    cursor.execute(
        "WITH previous AS MATERIALIZED (SELECT current_setting('statement_timeout') AS value) "
        "SELECT value, set_config('statement_timeout', %s, true) FROM previous",
        [f"{int(ms)}ms"],
    )
    return str(cursor.fetchone()[0])


def scan(
    rule: Rule,
    *,
    limit: int | None = None,
    offset: int = 0,
    sample: int | None = None,
    timeout_ms: int | None = None,
) -> ScanResult:
    """A page of the rule's groups (largest first) and its totals, in one statement.

    Raises ``ScanTimedOut`` after the statement timeout.
    """
    limit = settings.GROUPS_PER_PAGE if limit is None else limit
    sample = settings.GROUP_SAMPLE_SIZE if sample is None else int(sample)
    groups_qs, names = counted(rule)
    rows_qs, _names = keyed(rule)
    pk = rule.model._meta.pk.attname
    inner, params = groups_qs.query.sql_with_params()
    members, member_params = rows_qs.values(pk, *names).query.sql_with_params()
    qn = quote
    keys = ", ".join(f"p.{qn(n)}" for n in names)
    # NULLs-equal rules join NULL keys too: ARRAY[a] = ARRAY[b] is NULL-safe and, unlike
    # IS NOT DISTINCT FROM, can still be a hash join.
    on = " AND ".join(
        f"m.{qn(n)} = p.{qn(n)}" if rule.nulls_distinct else f"ARRAY[m.{qn(n)}] = ARRAY[p.{qn(n)}]"
        for n in names
    )
    # Count every group first (a hash aggregate, no sort of the table), keep
    # one page of them, and only then collect that page's primary keys.
    sql = (
        f"WITH p AS (SELECT g.*, COUNT(*) OVER () AS total_groups, SUM(g.{qn('n')}) OVER () AS total_rows "  # noqa: S608
        f"FROM ({inner}) g ORDER BY g.{qn('n')} DESC, {', '.join(f'g.{qn(n)}' for n in names)} "
        f"LIMIT %s OFFSET %s) "
        f"SELECT {keys}, p.{qn('n')}, (ARRAY_AGG(m.{qn(pk)} ORDER BY m.{qn(pk)}))[1:{sample:d}], "
        f"p.total_groups, p.total_rows FROM p JOIN ({members}) m ON {on} "
        f"GROUP BY {keys}, p.{qn('n')}, p.total_groups, p.total_rows ORDER BY p.{qn('n')} DESC, {keys}"
    )
    params = (*params, int(limit), int(offset), *member_params)
    rows = run(rule, sql, params, timeout_ms)
    result = ScanResult(rule, offset=offset)
    width = len(names)
    for row in rows:
        result.groups.append(Group(tuple(row[:width]), row[width], list(row[width + 1])))
    if rows:
        result.total_groups, result.total_rows = rows[0][-2], int(rows[0][-1])
    elif offset:
        result.total_groups, result.total_rows = totals(rule, timeout_ms=timeout_ms)
    return result


def totals(rule: Rule, *, timeout_ms: int | None = None) -> tuple[int, int]:
    """(groups, rows involved) of the rule, without any page."""
    qs, _names = counted(rule)
    inner, params = qs.query.sql_with_params()
    sql = f"SELECT COUNT(*), COALESCE(SUM(g.n), 0) FROM ({inner}) g"  # noqa: S608
    ((groups, rows),) = run(rule, sql, params, timeout_ms)
    return int(groups), int(rows)


def run(rule: Rule, sql: str, params: Sequence[Any], timeout_ms: int | None) -> list[tuple[Any, ...]]:
    """Rows of a scan's statement, under the scan's timeout; ``ScanTimedOut`` when it runs past it."""
    connection = connections[rule.database]
    nested = connection.in_atomic_block
    try:
        with transaction.atomic(using=rule.database), connection.cursor() as cursor:
            previous = _timeout(cursor, timeout_ms)
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())
            if nested:
                # SET LOCAL outlives a released savepoint: give the caller's transaction its timeout back.
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
            return rows
    except DatabaseError as exc:
        if reads.sqlstate(exc) in (QUERY_CANCELED, reads.LOCK_NOT_AVAILABLE):
            # A lock not granted in time (INTEGRITY_READ_LOCK_TIMEOUT_MS) is a scan that could not finish too.
            locked = reads.sqlstate(exc) == reads.LOCK_NOT_AVAILABLE
            ms = settings.SCAN_TIMEOUT_MS if timeout_ms is None else timeout_ms
            raise ScanTimedOut(rule.key, timeout_ms=ms, locked=locked) from exc
        raise


def group_of(rule: Rule, pk: Any, *, limit: int = 100) -> list[Model]:
    """The rows that share the rule's key with row ``pk`` (itself included), by primary key.

    Empty when ``pk`` does not exist or is not part of any group.
    """
    qs, names = keyed(rule)
    key = qs.filter(pk=pk).values(*names).first()
    if key is None:
        return []
    members = list(qs.filter(**key).order_by("pk")[:limit])
    return members if len(members) > 1 else []


@dataclass
class Reference:
    """Rows of one relation that point at a group's members: per member, how many."""

    label: str  # e.g. "crm.Customer.company"
    counts: dict[Any, int]


def references(rule: Rule, members: list[Model]) -> list[Reference]:
    """For every relation to the rule's model, how many rows point at each member (one query each).

    The same relations a merge re-points (``integrity.duplicates.relations``). Generic
    foreign keys can point at any model: they are listed only where rows do
    point at a member.
    """
    from integrity.duplicates.relations import GENERIC, relations_to

    out = []
    for rel in relations_to(rule.database, rule.model):
        values = {getattr(m, rel.target): m.pk for m in members}
        counts = rel.counts(rule.database, list(values))
        per_member = {pk: counts.get(value, 0) for value, pk in values.items()}
        if rel.kind == GENERIC and not any(per_member.values()):
            continue
        out.append(Reference(rel.label, {m.pk: per_member.get(m.pk, 0) for m in members}))
    return out
