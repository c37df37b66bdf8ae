"""Tables whose constraints the violation pages break: one per kind of IntegrityError."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models
from django.db.models import Max, Q

from demo.helpdesk.models import Ticket


class Member(models.Model):
    """A sign-up: a unique email (unique violations) and a NOT NULL nickname."""

    email = models.EmailField(unique=True)
    nickname = models.CharField(max_length=50, default="")

    def __str__(self) -> str:
        return self.email


class Account(models.Model):
    """A balance that a CHECK keeps from going below zero."""

    name = models.CharField(max_length=50)
    balance = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="violations_account_balance_gte_0")
        ]

    def __str__(self) -> str:
        return self.name


class Booking(models.Model):
    """A room's bookings may not overlap (an exclusion constraint on a range; no extension needed)."""

    during = DateTimeRangeField()

    class Meta:
        constraints = [
            ExclusionConstraint(
                name="violations_booking_no_overlap", expressions=[("during", RangeOperators.OVERLAPS)]
            )
        ]

    def __str__(self) -> str:
        return str(self.during)


class Invoice(models.Model):
    """Points at a member: Django's foreign keys are checked at COMMIT (DEFERRABLE INITIALLY DEFERRED)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE)
    total = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    def __str__(self) -> str:
        return f"Invoice {self.pk}"


class Coupon(models.Model):
    """An ``integer`` identity key: the "sequence at its maximum" page sets its sequence to 2147483647."""

    id = models.AutoField(primary_key=True)
    code = models.CharField(max_length=20, default="")

    def __str__(self) -> str:
        return self.code


class NumberedTicket(Ticket):
    """The ticket story's first numbering, kept to show its race: ``save()`` gives a new ticket MAX(number) + 1.

    Two saves in the gap between reading MAX and the INSERT compute the same
    number; the second INSERT breaks ``helpdesk_ticket_number_key``. ``gap``
    is the seconds between the two (a busy server has that gap by itself;
    the demo widens it so two clicks are enough).
    """

    gap = 0.0

    class Meta:
        proxy = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding:  # a new ticket: its number (else the sequence's, db_default) is MAX + 1
            self.number = (Ticket.objects.aggregate(m=Max("number"))["m"] or 0) + 1
            time.sleep(self.gap)
        # The INSERT, which fails when another save took the same number meanwhile.
        super().save(*args, **kwargs)
