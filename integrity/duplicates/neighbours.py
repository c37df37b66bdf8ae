"""Where one group stands among its rule's groups: its position and the groups before and after it.

The group page links to the previous and next group so that an admin can
work through a rule's groups one after the other, in the order of the rule's
page (largest first, then by key). One statement: the rule's groups counted
as the scan counts them, numbered by a window function, read at the row of
the group whose first primary key is given. It costs what a scan costs, and
is bounded by the scan's timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from integrity.db import quote
from integrity.duplicates.rules import Rule
from integrity.duplicates.service import FirstKeys, keyed, run


@dataclass
class Neighbours:
    """The group's place (1-based) among ``total`` groups; the first primary key of its neighbours, if any."""

    position: int
    total: int
    previous: Any = None
    next: Any = None


def neighbours(rule: Rule, first_pk: Any, *, timeout_ms: int | None = None) -> Neighbours | None:
    """The group whose smallest primary key is ``first_pk``, placed among the rule's groups; None if none is.

    Raises ``ScanTimedOut`` after the scan's timeout.
    """
    qs, names = keyed(rule)
    pk = rule.model._meta.pk.attname
    groups = qs.values(*names).annotate(n=Count("*"), first=FirstKeys(pk, 1)).filter(n__gt=1).order_by()
    inner, params = groups.query.sql_with_params()
    qn = quote
    order = ", ".join([f"g.{qn('n')} DESC", *(f"g.{qn(n)}" for n in names)])
    sql = (
        "SELECT x.pos, x.total, x.prev, x.next FROM ("  # noqa: S608 - names are quoted, values parameters
        f"SELECT g.{qn('first')}[1] AS first, ROW_NUMBER() OVER w AS pos, COUNT(*) OVER () AS total, "
        f"LAG(g.{qn('first')}[1]) OVER w AS prev, LEAD(g.{qn('first')}[1]) OVER w AS next "
        f"FROM ({inner}) g WINDOW w AS (ORDER BY {order})) x WHERE x.first = %s"
    )
    rows = run(rule, sql, (*params, first_pk), timeout_ms)
    if not rows:
        return None
    position, total, previous, after = rows[0]
    return Neighbours(int(position), int(total), previous, after)
