"""A reusable app's customers, which its next release makes unique by e-mail, case-insensitively.

Installs already hold duplicates, referenced by a foreign key (orders), by a
child table with its own unique pair (memberships) and by a generic foreign
key (notes, which the migration state does not describe).
"""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models.functions import Lower


class Customer(models.Model):
    email = models.CharField(max_length=100)
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="dedupe_customer_email_ci")]

    def __str__(self) -> str:
        return self.email


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    number = models.CharField(max_length=20)


class Membership(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    club = models.CharField(max_length=50)
    role = models.CharField(max_length=50)

    class Meta:
        unique_together = [("customer", "club")]


class Note(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=100)
