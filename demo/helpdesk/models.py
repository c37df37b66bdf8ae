"""Seed 003: ticket numbers from a database sequence on a non-key column."""

from __future__ import annotations

from django.db import models


class Ticket(models.Model):
    # Migration 0002 gives the column DEFAULT nextval('ticket_sequence'):
    # a plain CREATE SEQUENCE is bigint, the column integer (a type mismatch).
    number = models.IntegerField(unique=True, null=True, blank=True)
    subject = models.CharField(max_length=200)

    def __str__(self) -> str:
        return f"#{self.number} {self.subject}"


class Comment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE)
    body = models.TextField()
