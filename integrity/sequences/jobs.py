"""The sequences room's job: resync every sequence named, one per unit (``integrity.jobs``)."""

from __future__ import annotations

from typing import Any

from integrity.jobs.runner import Unit
from integrity.models import Job
from integrity.sequences import service as sequences
from integrity.sequences.backend import ResyncRefused
from integrity.sequences.service import SequenceNotFound

LISTED = 100  # failures listed in the result at most


def resync_all(job: Job, unit: Unit) -> dict[str, Any]:
    """Each sequence named moved past its data, one per unit (each its own transaction)."""
    keys = list(job.params["keys"])
    changed, failed = 0, []
    unit.progress(0, len(keys))
    for i, key in enumerate(keys, start=1):
        alias, label, column = sequences.parse_key(key)
        try:
            changed += int(sequences.resync(alias, label, column, user=job.user).changed)
        except (SequenceNotFound, ResyncRefused) as exc:
            failed.append(f"{label}.{column} ({alias}): {exc}")
        unit.progress(i, len(keys), changed=changed, failed=failed[:LISTED])
    return {"changed": changed, "failed": failed[:LISTED]}
