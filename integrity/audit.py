"""Django admin LogEntries for the changes the app makes, as ``ModelAdmin.log_deletion`` writes them."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry
from django.db.models import Model

__all__ = ["log_entry"]


def log_entry(user: Any, obj: Model, action: int, message: str) -> None:
    """One LogEntry on ``obj`` (``ADDITION``, ``CHANGE`` or ``DELETION``), when a user made the change."""
    if getattr(user, "pk", None) is not None:
        LogEntry.objects.log_actions(user.pk, [obj], action, change_message=message, single_object=True)
