"""Overflow, legacy serial tables, custom schemas and a MINVALUE sequence."""

from __future__ import annotations

from django.db import models


class Reading(models.Model):
    """An int4 identity key far along towards 2,147,483,647."""

    id = models.AutoField(primary_key=True)
    value = models.FloatField()


class LegacyCounter(models.Model):
    """A table made by hand with a ``serial`` column (not by Django)."""

    name = models.CharField(max_length=50)

    class Meta:
        managed = False
        db_table = "legacy_counter"


class Entry(models.Model):
    """``public.entry``; a table of the same name lives in schema ``archive``."""

    note = models.CharField(max_length=50)

    class Meta:
        db_table = "entry"


class ArchivedEntry(models.Model):
    """``archive.entry``: same table name as ``Entry``, another schema."""

    note = models.CharField(max_length=50)

    class Meta:
        db_table = '"archive"."entry"'


class Invoice(models.Model):
    """Invoice numbers start at 1000: the key's sequence has MINVALUE 1000."""

    amount = models.DecimalField(max_digits=10, decimal_places=2)
