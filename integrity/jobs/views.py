"""The Jobs pages: the list (newest first), one job (progress, polled while it runs; result; Cancel).

A job is shown to whoever holds the permissions of the operation it runs
(``service.PERMISSIONS``); Cancel is a POST with CSRF. Reading a job marks it
failed when its worker stopped beating, so no page shows it running forever.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRefresh
from django_tables2 import RequestConfig

from integrity.conf import settings
from integrity.jobs import service
from integrity.jobs.tables import JobTable, badge_html, progress_html
from integrity.jobs.tasks import result_context
from integrity.models import Job
from integrity.pages import PageAdmin, is_htmx, methods, page_context, page_url, require

POLL_SECONDS = 1


def job_url(admin: PageAdmin, pk: int) -> str:
    opts = admin.model._meta
    return reverse(f"{admin.admin_site.name}:{opts.app_label}_{opts.model_name}_job", args=[pk])


def _visible(request: HttpRequest) -> list[str]:
    kinds = service.visible_kinds(request.user)
    if not kinds:
        message = _(
            "The Jobs page needs the permissions of at least one kind of job, such as %(perm)s (to see scans)."
        )
        raise PermissionDenied(message % {"perm": f"“{service.PERMISSIONS[Job.SCAN][0]}”"})
    return kinds


@methods("GET", "HEAD")
def job_list(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Every job the user may see, newest first, with its status and progress."""
    kinds = _visible(request)
    service.mark_stale()
    jobs = Job.objects.filter(kind__in=kinds).select_related("user").order_by("-created_at", "-id")
    table = JobTable(jobs, job_url=lambda pk: job_url(admin, pk))
    RequestConfig(request, paginate={"per_page": JobTable._meta.per_page}).configure(table)
    context = page_context(
        admin, request, title=_("Jobs"), table=table, worker_backed=service.worker_backed()
    )
    return render(request, "integrity/jobs.html", context)


def _job(request: HttpRequest, object_id: str) -> Job:
    if not (str(object_id).isascii() and str(object_id).isdigit()) or len(str(object_id)) > 18:
        raise Http404(_("There is no job %(id)r.") % {"id": object_id})
    job = service.read(int(object_id))
    if job is None:
        raise Http404(_("There is no job %(id)r.") % {"id": object_id})
    require(request, *service.PERMISSIONS[job.kind])
    return job


def _context(admin: PageAdmin, request: HttpRequest, job: Job) -> dict[str, Any]:
    return page_context(
        admin,
        request,
        title=f"{job.get_kind_display()}: {job.what}",
        job=job,
        badge=badge_html(job),
        progress=progress_html(job),
        poll_url=job_url(admin, job.pk),
        poll_seconds=POLL_SECONDS,
        cancel_url=reverse(
            f"{admin.admin_site.name}:integrity_job_cancel", args=[job.pk], current_app=admin.admin_site.name
        ),
        jobs_url=page_url(admin, "changelist"),
        waiting_long=service.waiting_long(job),
        worker_command=service.worker_command(),
        stale_seconds=settings.JOB_STALE_SECONDS,
    )


@methods("GET", "HEAD")
def job_detail(admin: PageAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """One job: its progress (htmx asks for the status fragment while it runs), then its result or error."""
    job = _job(request, object_id)
    context = _context(admin, request, job)
    if is_htmx(request):
        if not job.active:  # it ended since the last poll: the whole page, with its result
            return HttpResponseClientRefresh()
        return render(request, "integrity/job_status.html", context)
    result = result_context(job.kind)
    if result is not None and job.status != Job.QUEUED:
        context.update(result(admin, request, job))
    return render(request, "integrity/job.html", context)


@methods("POST")
def job_cancel(admin: PageAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """Ask the job to stop after its current unit (a queued job is cancelled at once)."""
    job = service.cancel(_job(request, object_id))
    if is_htmx(request):
        return render(request, "integrity/job_status.html", _context(admin, request, job))
    return HttpResponseRedirect(job_url(admin, job.pk), status=303)
