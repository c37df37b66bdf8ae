"""The task the workers run: one for every kind of job (the job's row says which and with what).

Each room owns the work of its kinds (``<room>/jobs.py``); they are named here
by path, so that the jobs plumbing, which every room may use to start a job,
imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from integrity.jobs import runner
from integrity.jobs.compat import task
from integrity.models import Job

WORK = {
    Job.SCAN: "integrity.duplicates.jobs.scan",
    Job.SCAN_ALL: "integrity.duplicates.jobs.scan_all",
    Job.MERGE_ALL: "integrity.merge.jobs.merge_all",
    Job.ENFORCE: "integrity.duplicates.jobs.enforce_rule",
    Job.RESYNC_ALL: "integrity.sequences.jobs.resync_all",
    Job.PRUNE: "integrity.events.jobs.prune",
}
# What a job's page adds once it has a result: (admin, request, job) -> template context.
RESULTS = {
    Job.SCAN: "integrity.duplicates.jobs.scan_result",
    Job.MERGE_ALL: "integrity.merge.jobs.merge_result",
}


class Work(dict[str, Callable[..., dict[str, Any]]]):
    """``WORK``'s functions, imported when a job of their kind runs."""

    def __missing__(self, kind: str) -> Callable[..., dict[str, Any]]:
        found = self[kind] = import_string(WORK[kind])
        return found


@task()
def run_job(job_id: int) -> str:
    """Run job ``job_id`` (its kind's function in ``WORK``); its final status."""
    return runner.execute(int(job_id), Work())


def result_context(kind: str) -> Callable[..., dict[str, Any]] | None:
    path = RESULTS.get(kind)
    return None if path is None else import_string(path)
