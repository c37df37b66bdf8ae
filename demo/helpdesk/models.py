"""The ticket story: ticket numbers from a database sequence on a non-key column."""

from __future__ import annotations

from django.db import models
from django.db.models import Func, Value


class Ticket(models.Model):
    # DEFAULT nextval('ticket_sequence') (made in migration 0002): a plain
    # CREATE SEQUENCE is bigint, the column integer (a type mismatch).
    number = models.IntegerField(
        unique=True, null=True, blank=True, db_default=Func(Value("ticket_sequence"), function="nextval")
    )
    subject = models.CharField(max_length=200)

    def __str__(self) -> str:
        return f"#{self.number} {self.subject}"


class Comment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)
    body = models.TextField()
