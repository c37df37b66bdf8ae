"""What the service and the runner share about a job's row: when it is stale, how it ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from integrity.conf import settings
from integrity.models import Job


def cutoff() -> Any:
    """Heartbeats before this are stale: the worker stopped (``INTEGRITY_JOB_STALE_SECONDS`` ago)."""
    return timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)


def end(pk: int, status: str, **changes: Any) -> int:
    """Set the job's final ``status`` (and ``changes``), now."""
    now = timezone.now()
    return Job.objects.filter(pk=pk).update(status=status, finished_at=now, updated_at=now, **changes)
