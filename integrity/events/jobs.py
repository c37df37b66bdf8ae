"""The events room's job: prune old samples and the groups left empty (``integrity.jobs``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from integrity.events import retention
from integrity.jobs.runner import Unit
from integrity.models import Job


def prune(job: Job, unit: Unit) -> dict[str, Any]:
    unit.progress(0, 1)
    found = retention.prune(
        timedelta(seconds=int(job.params["older_than_seconds"])), dry_run=bool(job.params.get("dry_run"))
    )
    return {"samples": found.samples, "groups": found.groups, "reset": found.reset, "dry_run": found.dry_run}
