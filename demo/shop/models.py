"""The explicit-ids story (a data migration with explicit ids) and a bulk_create import."""

from __future__ import annotations

from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """Rows 1..N are written by migration 0002 with explicit ids."""

    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    tags = models.ManyToManyField(Tag, blank=True)

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    """Filled by an import that bulk_creates rows with their old ids."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"Order {self.pk}"


class Coupon(models.Model):
    """Its newest rows were deleted: the sequence is ahead of the data (a gap)."""

    code = models.CharField(max_length=20)

    def __str__(self) -> str:
        return self.code
