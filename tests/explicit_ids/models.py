"""A forum's categories: its data migration writes the two default ones with explicit ids.

No ``id`` is declared: Django and PostgreSQL take care of the primary key,
until a migration writes one itself and the sequence stays at 1.
"""

from __future__ import annotations

from django.db import models


class Category(models.Model):
    title = models.CharField(max_length=75)
    slug = models.SlugField()
    is_private = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.title
