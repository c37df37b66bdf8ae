"""Schemas a real project has and ``_meta`` does not fully describe (tests of merging only).

``Org`` is merged: a proxy of it is referenced by a foreign key, generic
foreign keys point at it (integer and text object ids, concrete and proxy
content types), and tables created by raw SQL (``0002_raw``, schema
``legacy``, no model) reference it with every ``ON DELETE`` action. ``Place``
> ``Restaurant`` > ``Pizzeria`` is a multi-table inheritance chain. ``Lonely``
and ``Pair`` are referenced in ways a merge cannot re-point exactly.
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Org(models.Model):
    objects: ClassVar[models.Manager[Org]]  # seen by mypy: demo.settings does not install this app
    name = models.CharField(max_length=50)
    code = models.CharField(max_length=20, unique=True, null=True, blank=True)  # noqa: DJ001


class OrgProxy(Org):
    class Meta:
        proxy = True


class Member(models.Model):
    """A foreign key to the proxy: its constraint references the concrete table."""

    objects: ClassVar[models.Manager[Member]]  # seen by mypy: demo.settings does not install this app
    org = models.ForeignKey(OrgProxy, on_delete=models.CASCADE, related_name="members")
    name = models.CharField(max_length=50)


class Seat(models.Model):
    """No declared rule; the database has two unique indexes (0002_raw): (org, number) and (org, lower(label))."""

    objects: ClassVar[models.Manager[Seat]]  # seen by mypy: demo.settings does not install this app
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="seats")
    number = models.IntegerField()
    label = models.CharField(max_length=20, blank=True)


class Tag(models.Model):
    """A generic foreign key with integer ids that stores a proxy's own content type."""

    objects: ClassVar[models.Manager[Tag]]  # seen by mypy: demo.settings does not install this app
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id", for_concrete_model=False)
    text = models.CharField(max_length=50)


class Label(models.Model):
    """A generic foreign key with text ids (concrete content types)."""

    objects: ClassVar[models.Manager[Label]]  # seen by mypy: demo.settings does not install this app
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=40)
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=50)


class Place(models.Model):
    objects: ClassVar[models.Manager[Place]]  # seen by mypy: demo.settings does not install this app
    name = models.CharField(max_length=50)


class Restaurant(Place):
    objects: ClassVar[models.Manager[Restaurant]]  # seen by mypy: demo.settings does not install this app
    cuisine = models.CharField(max_length=50)


class Pizzeria(Restaurant):
    objects: ClassVar[models.Manager[Pizzeria]]  # seen by mypy: demo.settings does not install this app
    oven = models.CharField(max_length=50)


class Review(models.Model):
    """References two levels of the chain."""

    objects: ClassVar[models.Manager[Review]]  # seen by mypy: demo.settings does not install this app
    place = models.ForeignKey(Place, on_delete=models.CASCADE, related_name="reviews")
    restaurant = models.ForeignKey(
        Restaurant, null=True, blank=True, on_delete=models.SET_NULL, related_name="restaurant_reviews"
    )
    text = models.CharField(max_length=50)


class Lonely(models.Model):
    """Referenced by a table without a primary key (0002_raw): its rows cannot be recorded for an undo."""

    objects: ClassVar[models.Manager[Lonely]]  # seen by mypy: demo.settings does not install this app
    name = models.CharField(max_length=50)


class Pair(models.Model):
    """Referenced by a two-column foreign key (0002_raw)."""

    objects: ClassVar[models.Manager[Pair]]  # seen by mypy: demo.settings does not install this app
    name = models.CharField(max_length=50)
    code = models.CharField(max_length=20)
