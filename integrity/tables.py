"""What the app's django-tables2 tables share: names that wrap, a clamped page size, hand-rendered rows.

Rows of the sequences and duplicates tables are rendered in one Python pass
rather than cell by cell through django-tables2 (which inspects every render
method's signature per cell): 100 rows went from ~300 ms to a few ms.
django-tables2 still does the header, sorting and pagination.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import django_tables2 as tables
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import ngettext_lazy

__all__ = ["ClampedTable", "RowsTable", "breakable", "cells_html"]


def breakable(name: str) -> str:
    """Escape a dotted or snake_case name and let it wrap after "." and "_"."""
    return str(escape(name)).replace(".", ".<wbr>").replace("_", "_<wbr>")


def cells_html(classes: Iterable[str], cells: Iterable[Any]) -> str:
    """``<td>``s of already escaped cells, each with its column's class."""
    return "".join(f'<td class="{cls}">{cell}</td>' for cls, cell in zip(classes, cells, strict=True))


class ClampedTable(tables.Table):
    """A table whose page size, taken from the query string, is clamped.

    RequestConfig takes ``per_page`` from the query string as it is:
    ``?seq-per_page=-1`` would raise EmptyPage (a 500) and 0 would fall back to
    django-tables2's 25; both (and, with ``max_per_page``, a size above it) get
    ``default_per_page()`` instead.
    """

    max_per_page: int | None = None
    # "45 sequences" under the table: a lazy plural chosen by "count", the number shown as "shown".
    count_label: Any = ngettext_lazy("%(shown)s row", "%(shown)s rows", "count")

    def default_per_page(self) -> int:
        return int(self._meta.per_page)

    def count_text(self) -> str:
        """How many rows the table holds (every page), as "45 sequences"."""
        count = self.paginator.count if hasattr(self, "paginator") else len(self.rows)
        return str(self.count_label % {"count": count, "shown": f"{count:,}"})

    def paginate(self, *args: Any, **kwargs: Any) -> ClampedTable:
        per_page = kwargs.get("per_page")
        too_many = self.max_per_page is not None and per_page is not None and per_page > self.max_per_page
        if per_page is None or per_page < 1 or too_many:
            kwargs["per_page"] = self.default_per_page()
        super().paginate(*args, **kwargs)
        return self


class RowsTable(ClampedTable):
    """A table that renders its rows itself (``row_html``); its template shows ``page_html``."""

    def row_html(self, record: Any) -> SafeString:
        """One ``<tr>``, its cells in column order, each with its column as class."""
        raise NotImplementedError

    @property
    def page_html(self) -> SafeString:
        """Every row of the current page."""
        return mark_safe("".join(self.row_html(row.record) for row in self.paginated_rows))  # noqa: S308
