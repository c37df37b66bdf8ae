"""The task the workers run: one for every kind of job (the job's row says which and with what)."""

from __future__ import annotations

from integrity.jobs import runner
from integrity.jobs.compat import task


@task()
def run_job(job_id: int) -> str:
    """Run job ``job_id`` (``integrity.jobs.work``); its final status."""
    from integrity.jobs.work import WORK

    return runner.execute(int(job_id), WORK)
