"""Identifiers in SQL: the one place that quotes them.

Names from the catalog or from ``_meta`` can contain anything, a ``"``
included; Django's ``quote_name`` does not double it, so such a name would
end the identifier early. Values never go through here: they are parameters.
"""

from __future__ import annotations


def quote(name: str) -> str:
    """``name`` as a PostgreSQL identifier: in double quotes, embedded ones doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``"schema"."name"``, each part quoted."""
    return f"{quote(schema)}.{quote(name)}"


def escaped(text: str) -> str:
    """Text spliced into a statement run with parameters (a quoted name, a catalog expression): ``%`` doubled."""
    return text.replace("%", "%%")
