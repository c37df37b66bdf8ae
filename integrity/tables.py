"""What the app's django-tables2 tables share: names that wrap, a clamped page size, hand-rendered rows.

Rows are rendered in one Python pass rather than cell by cell through
django-tables2 (which inspects every render method's signature per cell): 100
rows went from ~300 ms to a few ms. django-tables2 still does the header,
sorting and pagination.
"""

from __future__ import annotations

from django.utils.html import escape


def breakable(name: str) -> str:
    """Escape a dotted or snake_case name and let it wrap after "." and "_"."""
    return str(escape(name)).replace(".", ".<wbr>").replace("_", "_<wbr>")
