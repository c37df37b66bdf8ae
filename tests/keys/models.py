"""Keys real projects have that the trust tests need: UUID and text primary keys, generic
foreign keys of every object_id type, and a table and column with spaces and capitals.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class UuidThing(models.Model):
    """Merged by ``email``; its primary keys are UUIDs, which no integer column can hold."""

    objects: ClassVar[models.Manager[UuidThing]]  # seen by mypy: demo.settings does not install this app
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    email = models.CharField(max_length=100)


class CodeThing(models.Model):
    """Merged by ``email``; text primary keys, some of which ("12") an integer column can hold."""

    objects: ClassVar[models.Manager[CodeThing]]  # seen by mypy: demo.settings does not install this app
    code = models.CharField(max_length=20, primary_key=True)
    email = models.CharField(max_length=100)


class IntRef(models.Model):
    objects: ClassVar[models.Manager[IntRef]]  # seen by mypy: demo.settings does not install this app
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.IntegerField()
    target = GenericForeignKey("content_type", "object_id")


class TextRef(models.Model):
    objects: ClassVar[models.Manager[TextRef]]  # seen by mypy: demo.settings does not install this app
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.TextField()
    target = GenericForeignKey("content_type", "object_id")


class UuidRef(models.Model):
    objects: ClassVar[models.Manager[UuidRef]]  # seen by mypy: demo.settings does not install this app
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.UUIDField()
    target = GenericForeignKey("content_type", "object_id")


class OddName(models.Model):
    """A table and a column whose names need quoting (spaces, capitals)."""

    objects: ClassVar[models.Manager[OddName]]  # seen by mypy: demo.settings does not install this app
    counter = models.IntegerField(db_column="Odd Col", null=True)

    class Meta:
        db_table = "keys Odd Table"
