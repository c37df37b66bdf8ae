"""Running one job in a worker: claim it, beat, report each unit, end it finished, failed or cancelled.

A heartbeat thread (with its own connection) touches the job's ``updated_at``
while the work runs, however long one unit takes (a scan is one statement);
when the worker dies the beat stops and the job goes stale
(``integrity.jobs.service.mark_stale``). A task that runs again for a stale job (a backend
that re-runs lost tasks) resumes it: every kind of work starts from what the
database holds now, so what was finished is not done twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.db import connections
from django.db.models import F, Q
from django.utils import timezone

from integrity.conf import settings
from integrity.jobs.state import cutoff, end
from integrity.models import Job

logger = logging.getLogger("integrity.jobs")


class Cancelled(Exception):
    """The job was asked to stop; raised between two units of work."""


class Unit:
    """What a job's work is given: where to report progress, and whether to stop."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.cancelled = False

    def progress(self, done: int, total: int | None = None, *, check: bool = True, **result: Any) -> None:
        """Record ``done``/``total`` (and a partial result) after a unit; ``Cancelled`` if a stop was asked.

        ``check=False`` only records: for work that stops itself (it is given ``should_stop``).
        """
        changes: dict[str, Any] = {"done": max(int(done), 0), "updated_at": timezone.now()}
        if total is not None:
            changes["total"] = max(int(total), 0)
        if result:
            self.job.result = {**self.job.result, **result}
            changes["result"] = self.job.result
        Job.objects.filter(pk=self.job.pk).update(**changes)
        if check and self.should_stop():
            raise Cancelled

    def should_stop(self) -> bool:
        """Whether a cancel was asked (one small query; ask once per unit)."""
        if not self.cancelled:
            self.cancelled = Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()
        return self.cancelled


def _claim(pk: int) -> Job | None:
    """Move a queued (or stale running) job to running; None when another worker has it or it is over."""
    now = timezone.now()
    fresh = Q(status=Job.QUEUED, cancel_requested=False) | Q(status=Job.RUNNING, updated_at__lt=cutoff())
    if not Job.objects.filter(fresh, pk=pk).update(status=Job.RUNNING, started_at=now, updated_at=now):
        return None
    return Job.objects.select_related("user").get(pk=pk)


def _beat(pk: int, stop: threading.Event, every: float) -> None:
    try:
        while not stop.wait(every):
            Job.objects.filter(pk=pk, status=Job.RUNNING).update(updated_at=timezone.now())
    except Exception:  # noqa: BLE001 - a missed beat only makes the job look stale sooner
        logger.exception("Heartbeat of job %s failed", pk)
    finally:
        connections.close_all()


def execute(pk: int, work: Mapping[str, Callable[[Job, Unit], dict[str, Any]]]) -> str:
    """Run job ``pk`` with the function its kind names in ``work``; its final status."""
    job = _claim(pk)
    if job is None:
        found = Job.objects.filter(pk=pk).values_list("status", flat=True).first()
        return found or "missing"
    stop = threading.Event()
    every = max(min(settings.JOB_STALE_SECONDS / 4, 5.0), 0.2)
    beat = threading.Thread(target=_beat, args=(pk, stop, every), name=f"integrity-job-{pk}", daemon=True)
    beat.start()
    unit = Unit(job)
    try:
        result = work[job.kind](job, unit)
    except Cancelled:
        status, changes = Job.CANCELLED, {"result": unit.job.result}
    except Exception as exc:  # noqa: BLE001 - whatever happened, the job must not stay "running"
        logger.exception("Job %s (%s) failed", pk, job.kind)
        message = str(exc).strip() or type(exc).__name__
        status, changes = Job.FAILED, {"error": message, "result": unit.job.result}
    else:
        status, changes = Job.FINISHED, {"result": result, "error": ""}
    finally:
        stop.set()
        beat.join(timeout=10)
    # Ended even if it was marked stale meanwhile (a beat missed under load): the work did end, so.
    end(pk, status, **changes)
    Job.objects.filter(pk=pk, total__isnull=True).update(total=F("done"))
    return status
