"""Database helpers every room shares: identifiers quoted for SQL, which models live on an alias, and
whether a model's base manager hides rows.

Identifiers are quoted here and nowhere else: names from the catalog or from
``_meta`` can contain anything, a ``"`` included, and Django's ``quote_name``
does not double it, so such a name would end the identifier early. Values
never go through here: they are query parameters.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.apps import apps
from django.db import router
from django.db.models import Model

__all__ = [
    "escaped",
    "filtering_base_manager",
    "models_for_alias",
    "qualified",
    "quote",
    "quote_table",
    "transaction_text",
]


def quote(name: str) -> str:
    """``name`` as a PostgreSQL identifier: in double quotes, embedded ones doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``"schema"."name"``, each part quoted."""
    return f"{quote(schema)}.{quote(name)}"


def escaped(text: str) -> str:
    """Text spliced into a statement run with parameters (a quoted name, a catalog expression): ``%`` doubled."""
    return text.replace("%", "%%")


def quote_table(table: str) -> str:
    """A ``db_table`` quoted for SQL (and for ``to_regclass``), embedded quotes doubled.

    ``db_table`` values already written as ``"schema"."table"`` are kept as they
    are. (PostgreSQL before 16 raises "invalid name syntax" from ``to_regclass``
    on an undoubled quote instead of answering NULL.)
    """
    if table.startswith('"') and table.endswith('"'):
        return table
    return quote(table)


def transaction_text(statements: Iterable[str]) -> str:
    """Statements as one transaction's SQL text, as the confirmation pages show it (``integrity/sql.html``)."""
    return "".join(f"{s};\n" for s in ["BEGIN", *statements, "COMMIT"])


def models_for_alias(alias: str, models: Iterable[type[Model]] | None = None) -> list[type[Model]]:
    """Concrete models (M2M through tables included) that live on ``alias``.

    Unmanaged models count too (legacy tables have sequences); the router's
    ``allow_migrate`` decides where each lives.
    """
    candidates = apps.get_models(include_auto_created=True) if models is None else models
    return [
        m
        for m in candidates
        if not m._meta.proxy
        and not m._meta.swapped
        and router.allow_migrate(alias, m._meta.app_label, model_name=m._meta.model_name, model=m)
    ]


def filtering_base_manager(model: type[Model]) -> str | None:
    """Return the base manager's name when its ``get_queryset`` narrows rows."""
    if not model._meta.base_manager_name:
        return None
    try:
        query = model._base_manager.get_queryset().query
    except Exception:  # noqa: BLE001 - a manager that needs a request context
        return model._meta.base_manager_name
    narrowed = bool(query.where) or query.is_sliced or query.distinct
    return model._meta.base_manager_name if narrowed else None
