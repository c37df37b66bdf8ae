"""Every column of the project that can hold a reference to a row of a model.

Found from ``_meta`` of every model (auto-created many-to-many tables
included), so foreign keys with ``related_name="+"``, self-references,
``to_field`` targets, one-to-ones, both sides of many-to-manys, explicit
through models and ``GenericForeignKey`` columns (with or without a
``GenericRelation``) are all seen. No database access except the content type
lookup of generic relations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.db.models import Count, Field, Model, Q, QuerySet

from integrity.db import models_for_alias

FOREIGN_KEY, ONE_TO_ONE, MANY_TO_MANY, GENERIC = "foreign key", "one-to-one", "many-to-many", "generic"


class NotStorable(ValueError):
    """The column can't hold that value (a UUID in an integer object id): no row of it references it."""


@dataclass(frozen=True, eq=False)
class Relation:
    """One column (``field`` of ``holder``) whose value is ``target``'s value of a row of the model.

    For a generic relation, ``content_type`` is the column holding the content
    type and ``content_type_id`` the model's content type on this database.
    """

    holder: type[Model]
    field: Field[Any, Any]
    target: str  # attname on the referenced model whose value the column stores
    kind: str
    content_type: Field[Any, Any] | None = None
    content_type_id: int | None = None
    parent_link: bool = False
    proxy: str = ""  # a generic relation's content type of a proxy model (``for_concrete_model=False``)
    # A generic relation's referenced primary key field: what an object id resolves to.
    target_field: Field[Any, Any] | None = None

    @property
    def label(self) -> str:
        """``app.Model.field``; for an auto-created M2M table, the many-to-many it belongs to.

        A many-to-many from a model to itself has two columns pointing at it:
        those labels name the column's field too.
        """
        meta = self.holder._meta
        if not meta.auto_created:
            return f"{meta.label}.{self.field.name}" + (f" (as {self.proxy})" if self.proxy else "")
        owner: Any = meta.auto_created
        name = next(f.name for f in owner._meta.local_many_to_many if f.remote_field.through is self.holder)
        target: Any = self.field.remote_field
        same = [
            f for f in meta.local_concrete_fields if f.remote_field and f.remote_field.model is target.model
        ]
        label = f"{owner._meta.label}.{name}"
        return f"{label} ({self.field.name})" if len(same) > 1 else label

    @property
    def column(self) -> str:
        return str(self.field.column)

    def rows(self, alias: str, values: Iterable[Any]) -> QuerySet[Any]:
        """The holder's rows (all of them, whatever the base manager filters) referencing ``values``."""
        qs: QuerySet[Any] = QuerySet(model=self.holder, using=alias)
        return qs.filter(self.matching(values)).order_by()

    def matching(self, values: Iterable[Any]) -> Q:
        """``Q`` of the rows that reference one of ``values`` (the target attribute's values)."""
        q = Q(**{f"{self.field.attname}__in": list(self.storable(values))})
        if self.content_type is not None:
            q &= Q(**{self.content_type.attname: self.content_type_id})
        return q

    def stored(self, value: Any) -> Any:
        """The value as this column stores it (a generic relation's object id may be text).

        A generic object id column holds only some primary keys: ``NotStorable``
        when this one can't be held (a UUID or ``'abc'`` in an integer column,
        an integer out of its range, text too long) or would be held as another
        value (``'012'`` in an integer column reads back as the key ``'12'``).
        """
        if self.kind != GENERIC:
            return value
        target = self.target_field
        try:
            held = self.field.to_python(value)
            self.field.run_validators(held)
            # What the held value resolves to must be this very key.
            key, back = (
                (value, value) if target is None else (target.to_python(value), target.to_python(held))
            )
        except (ValidationError, TypeError, ValueError, OverflowError) as exc:
            raise NotStorable(value) from exc
        if held is None or back != key:
            raise NotStorable(value)
        return held

    def storable(self, values: Iterable[Any]) -> dict[Any, Any]:
        """``{stored value: value}`` of the values this column can hold; the others can't be referenced by it."""
        out = {}
        for value in values:
            if value is None:
                continue
            try:
                out[self.stored(value)] = value
            except NotStorable:
                continue
        return out

    def counts(self, alias: str, values: Iterable[Any]) -> dict[Any, int]:
        """How many rows reference each value (one query)."""
        stored = self.storable(values)
        if not stored:
            return {}
        rows = self.rows(alias, stored.values()).values_list(self.field.attname).annotate(c=Count("*"))
        return {stored[value]: c for value, c in rows if value in stored}


def _concrete_relations(model: type[Model], candidates: list[type[Model]]) -> list[Relation]:
    found = []
    for holder in candidates:
        for f in holder._meta.local_concrete_fields:
            remote = f.remote_field
            # A foreign key to a proxy model references the concrete model's table.
            if (
                remote is None
                or not (f.many_to_one or f.one_to_one)
                or _concrete(remote.model) is not _concrete(model)
            ):
                continue
            target: Any = getattr(f, "target_field", None)
            if target is None:
                continue
            through = holder._meta.auto_created
            kind = MANY_TO_MANY if through else ONE_TO_ONE if f.one_to_one else FOREIGN_KEY
            found.append(
                Relation(
                    holder,
                    f,
                    target.attname,
                    kind,
                    parent_link=bool(getattr(remote, "parent_link", False)),
                )
            )
    return found


def _concrete(model: Any) -> Any:
    return getattr(getattr(model, "_meta", None), "concrete_model", None)


def _proxies(model: type[Model]) -> list[type[Model]]:
    return [m for m in model._meta.apps.get_models() if m._meta.proxy and m._meta.concrete_model is model]


def _generic_relations(alias: str, model: type[Model], candidates: list[type[Model]]) -> list[Relation]:
    if not apps.is_installed("django.contrib.contenttypes"):
        return []
    from django.contrib.contenttypes.fields import GenericForeignKey
    from django.contrib.contenttypes.models import ContentType

    found = []
    for holder in candidates:
        for private in holder._meta.private_fields:
            if not isinstance(private, GenericForeignKey):
                continue
            # Not for the concrete model: a proxy's instances are stored under the proxy's content type.
            shapes = [model] if private.for_concrete_model else [model, *_proxies(model)]
            for shape in shapes:
                try:
                    ct = ContentType.objects.db_manager(alias).get_for_model(
                        shape, for_concrete_model=private.for_concrete_model
                    )
                except DatabaseError:
                    return []  # no content types on this database: nothing can point here generically
                found.append(
                    Relation(
                        holder,
                        holder._meta.get_field(private.fk_field),  # type: ignore[arg-type]
                        model._meta.pk.attname,
                        GENERIC,
                        content_type=holder._meta.get_field(private.ct_field),  # type: ignore[arg-type]
                        content_type_id=ct.pk,
                        proxy=shape._meta.label if shape is not model else "",
                        target_field=model._meta.pk,
                    )
                )
    return found


def relations_to(alias: str, model: type[Model]) -> list[Relation]:
    """Every relation to ``model`` from a model living on ``alias`` (router-aware), in a stable order."""
    candidates = models_for_alias(alias, model._meta.apps.get_models(include_auto_created=True))
    found = _concrete_relations(model, candidates) + _generic_relations(alias, model, candidates)
    return sorted(found, key=lambda r: (r.label, r.column))
