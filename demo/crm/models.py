"""The unique-rules story: uniqueness rules, and what the database really enforces of them.

Every kind of rule a model can declare, each left by its migrations in one of
the states a real project ends up in: enforced (also by a hand-made index in
another column order), dropped by hand (drift), added by a migration that has
not been applied yet, a failed ``CREATE UNIQUE INDEX CONCURRENTLY`` (invalid),
and a ``managed = False`` table that never had an index.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Company(models.Model):
    # Enforced, and the target of Customer.company (to_field="name").
    name = models.CharField(max_length=100, unique=True)
    # Declared unique, but migration 0002 dropped the constraint by hand: drift.
    vat_number = models.CharField(max_length=20, unique=True, null=True, blank=True)

    class Meta:
        verbose_name_plural = "companies"

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    """Filled by an import; its case-insensitive email rule comes in migration 0005."""

    email = models.EmailField()
    name = models.CharField(max_length=100)
    company = models.ForeignKey(Company, to_field="name", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="crm_customer_email_ci_uniq")]

    def __str__(self) -> str:
        return self.email


class Mentorship(models.Model):
    """unique_together (mentee, mentor); the database's index is (mentor_id, mentee_id)."""

    mentor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="mentorships_given",
    )
    mentee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentorships_received"
    )
    topic = models.CharField(max_length=100)

    class Meta:
        unique_together = [("mentee", "mentor")]

    def __str__(self) -> str:
        return self.topic


class Account(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    plan = models.CharField(max_length=20)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.plan}"


class Membership(models.Model):
    """A code is unique among active memberships only (a partial index)."""

    code = models.CharField(max_length=20)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=Q(active=True), name="crm_membership_active_code_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.code


class Device(models.Model):
    """NULLS NOT DISTINCT: two devices of no known vendor cannot share a serial."""

    # NULL is "vendor unknown": the story needs NULLs in the rule.
    vendor = models.CharField(max_length=50, null=True, blank=True)  # noqa: DJ001
    serial = models.CharField(max_length=50)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["vendor", "serial"], nulls_distinct=False, name="crm_device_vendor_serial_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.serial


class Subscriber(models.Model):
    """Migration 0004 declares the rule in the state only: the index was to be built by hand."""

    email = models.CharField(max_length=254)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email"], name="crm_subscriber_email_uniq")]

    def __str__(self) -> str:
        return self.email


class LegacyContact(models.Model):
    """A table of an older system (made by migration 0001's SQL): no unique index at all."""

    email = models.CharField(max_length=254, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        managed = False
        db_table = "legacy_contact"

    def __str__(self) -> str:
        return self.email
