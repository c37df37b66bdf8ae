"""Long operations as jobs on the project's task workers: the model's state, the task, the pages.

``service`` starts, reads and cancels jobs (no HTTP); ``tasks`` holds the
task the workers run; ``work`` what each kind of job does; ``views`` the
Jobs pages.
"""

from integrity.jobs import service
from integrity.jobs.service import (
    JobNotStarted,
    cancel,
    mark_stale,
    read,
    start,
    worker_backed,
)

__all__ = ["JobNotStarted", "service", "cancel", "mark_stale", "read", "start", "worker_backed"]
