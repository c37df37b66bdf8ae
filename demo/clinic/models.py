"""The hidden-row story: a base manager that filters rows turns save() into an INSERT."""

from __future__ import annotations

import contextvars

from django.db import models

current_locale: contextvars.ContextVar[str] = contextvars.ContextVar("current_locale", default="en")


class LocaleManager(models.Manager["Doctor"]):
    """Shows only the doctors of the current locale (the bug's ingredient)."""

    def get_queryset(self) -> models.QuerySet[Doctor]:
        return super().get_queryset().filter(locale=current_locale.get())


class Doctor(models.Model):
    name = models.CharField(max_length=100)
    locale = models.CharField(max_length=5, default="en")

    objects = LocaleManager()
    everyone = models.Manager()

    class Meta:
        # The bug: save() asks the base manager whether the row exists.
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.name
