"""Jobs: long operations enqueued on the project's task backend, their state kept in ``integrity.models.Job``.

``start`` records the job and enqueues the one task (``integrity.jobs.tasks.run_job``)
that runs it; the task's progress, result or error land in the job's row, so
any web process shows it. ``worker_backed`` decides, in one place, whether the
configured backend has workers; without them (Django's immediate or dummy
backend) the pages keep doing the work in the request, as they always did. A
job whose worker stopped (killed, out of memory, machine gone) stops beating:
``read`` and ``mark_stale`` mark it failed rather than show it running forever.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from integrity import permissions
from integrity.conf import settings
from integrity.jobs.compat import NO_WORKER, InvalidTaskBackend, task_backends
from integrity.jobs.state import cutoff, end
from integrity.models import Job

# What a user needs to start, see or cancel a job: the permissions of the operation it runs.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    Job.SCAN: (permissions.VIEW_DUPLICATES,),
    Job.SCAN_ALL: (permissions.VIEW_DUPLICATES,),
    Job.MERGE_ALL: (permissions.VIEW_DUPLICATES, permissions.MERGE_DUPLICATES),
    Job.ENFORCE: (permissions.VIEW_DUPLICATES, permissions.ENFORCE_DUPLICATES),
    Job.RESYNC_ALL: (permissions.VIEW_SEQUENCES, permissions.RESYNC_SEQUENCE),
    Job.PRUNE: (permissions.VIEW_EVENTS, permissions.DELETE_EVENTS),
}
WORKER_STOPPED = gettext_lazy(
    "The worker stopped: no sign of it for %(seconds)s seconds (INTEGRITY_JOB_STALE_SECONDS). "
    "Whatever it finished is complete; nothing else was changed. Start the job again to go on."
)


class JobNotStarted(Exception):
    """The backend refused the task (a broker down, a backend misconfigured); the job is marked failed."""


def backend_alias() -> str:
    return settings.TASK_BACKEND


def backend_error() -> str | None:
    """Why ``INTEGRITY_TASK_BACKEND`` names no usable backend (the system check's message), or None."""
    alias = backend_alias()
    configured = getattr(django_settings, "TASKS", None)
    if configured is not None and alias not in configured:
        return (
            f"INTEGRITY_TASK_BACKEND is {alias!r}, which is not a backend in TASKS ({', '.join(configured)})."
        )
    try:
        task_backends[alias]
    except (InvalidTaskBackend, KeyError, ImportError) as exc:
        return f"INTEGRITY_TASK_BACKEND {alias!r} cannot be loaded: {exc}"
    return None


def worker_backed() -> bool:
    """Whether long operations go to workers: the configured backend is neither immediate nor dummy.

    The one place that decides it; every page that starts a long operation asks here.
    """
    if backend_error() is not None:
        return False
    return not isinstance(task_backends[backend_alias()], NO_WORKER)


def allowed(user: Any, kind: str) -> bool:
    return all(user.has_perm(perm) for perm in PERMISSIONS[kind])


def visible_kinds(user: Any) -> list[str]:
    """The kinds of job ``user`` may see (the others are not listed to them)."""
    return [kind for kind in PERMISSIONS if allowed(user, kind)]


def start(kind: str, what: str, params: dict[str, Any], user: Any = None) -> Job:
    """Record a job and enqueue its task; the job (already finished, with the immediate backend).

    Raises ``JobNotStarted`` (the job then failed, saying why) when the backend refuses it.
    """
    from integrity.jobs.tasks import run_job

    alias = backend_alias()
    user = user if getattr(user, "pk", None) else None
    job = Job.objects.create(kind=kind, what=what[:500], params=params, user=user, backend=alias)
    try:
        result = run_job.using(backend=alias).enqueue(job.pk)
    except Exception as exc:  # noqa: BLE001 - any broker error: the job says it, the page does not 500
        end(job.pk, Job.FAILED, error=_("The task backend did not take the job: %(error)s") % {"error": exc})
        job.refresh_from_db()
        raise JobNotStarted(job.error) from exc
    Job.objects.filter(pk=job.pk).update(task_id=str(result.id)[:200])
    job.refresh_from_db()
    return job


def mark_stale(jobs: QuerySet[Job] | None = None) -> int:
    """Mark failed every running job whose heartbeat is older than ``INTEGRITY_JOB_STALE_SECONDS``: one UPDATE."""
    qs = Job.objects.all() if jobs is None else jobs
    now = timezone.now()
    error = str(WORKER_STOPPED % {"seconds": settings.JOB_STALE_SECONDS})
    return qs.filter(status=Job.RUNNING, updated_at__lt=cutoff()).update(
        status=Job.FAILED, error=error, finished_at=now, updated_at=now
    )


def read(pk: int) -> Job | None:
    """The job, marked failed first if its worker stopped beating; None when there is none."""
    mark_stale(Job.objects.filter(pk=pk))
    return Job.objects.filter(pk=pk).select_related("user").first()


def waiting_long(job: Job) -> bool:
    """Queued for longer than a worker would take to pick it up: is a worker running?"""
    return job.status == Job.QUEUED and job.created_at < cutoff()


def cancel(job: Job) -> Job:
    """Ask the job to stop: a queued one is cancelled at once; a running one stops after its current unit."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk, status=Job.QUEUED).update(
        status=Job.CANCELLED, cancel_requested=True, finished_at=now, updated_at=now
    )
    Job.objects.filter(pk=job.pk, status=Job.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def worker_command() -> str:
    """The command that runs a worker for the configured backend, as the pages suggest it."""
    if not worker_backed():
        return ""
    name = type(task_backends[backend_alias()]).__module__
    if name.startswith("django_tasks_rq"):
        return "python manage.py rqworker --with-scheduler"
    return f"python manage.py db_worker --backend {backend_alias()}"


def active_for(kind: str, rule: str | None) -> Job | None:
    """A queued or running job of ``kind`` on ``rule`` (any, when None): a second one would only race it."""
    jobs = Job.objects.filter(kind=kind) if rule is None else Job.objects.filter(kind=kind, params__rule=rule)
    mark_stale(jobs)
    return jobs.filter(status__in=(Job.QUEUED, Job.RUNNING)).first()


def start_once(kind: str, what: str, params: dict[str, Any], user: Any = None) -> Job:
    """The active job of ``kind`` on ``params["rule"]`` (of ``kind``, without one) if any, else a new one."""
    return active_for(kind, params.get("rule")) or start(kind, what, params, user)
