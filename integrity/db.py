"""Identifiers in SQL: the one place they are quoted.

Catalog and ``_meta`` names can contain anything, a ``"`` included; Django's
``quote_name`` does not double an embedded quote (the identifier would end
early), so every name the app splices into SQL goes through ``quote``.
"""

from __future__ import annotations


def quote(name: str) -> str:
    """``name`` as a PostgreSQL quoted identifier, embedded quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``"schema"."name"``, each part quoted."""
    return f"{quote(schema)}.{quote(name)}"
