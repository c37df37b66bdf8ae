"""The Enforce action's pages: the confirmation (GET: exactly the SQL it will run), the start (POST, CSRF),
and the run's progress (polled by htmx every second while the build runs).

Every page needs ``integrity.view_duplicaterule`` and
``integrity.enforce_duplicaterule``. The confirmation scans the rule first:
with duplicate groups there is nothing to enforce yet, and the page links to
them. A POST whose plan is no longer the one the page showed is refused (409).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import DatabaseError, router
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity import jobs, permissions, reads
from integrity.conf import settings
from integrity.duplicates import build, enforce, enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.forms import EnforceForm, EnforceRunForm, rule_from
from integrity.duplicates.rules import Rule
from integrity.models import EnforceRun, Job
from integrity.pages import (
    PageAdmin,
    Refused,
    is_htmx,
    methods,
    page_context,
    page_url,
    refusal,
    refused,
    require,
)
from integrity.pages import with_query as query

SAMPLE_GROUPS = 10
STARTING_SECONDS = 60  # a run without a backend pid after this long never started (its process died)


def _scan(rule: Rule) -> dict[str, Any]:
    """The rule's groups (first ones), or why they could not be counted."""
    try:
        return {"result": duplicates.scan(rule, limit=SAMPLE_GROUPS)}
    except duplicates.ScanTimedOut:
        return {"timed_out": True, "timeout_ms": settings.SCAN_TIMEOUT_MS}
    except DatabaseError as exc:
        return {"error": str(exc).strip()}


@methods("GET", "POST")
def enforce_view(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """GET: what Enforce would do for the rule (the SQL, the command or the Meta code). POST: start the build."""
    require(request, permissions.VIEW_DUPLICATES, permissions.ENFORCE_DUPLICATES)
    try:
        if request.method == "POST":
            return _start(admin, request)
        rule = rule_from(request.GET.get("rule", ""))
    except reads.ReadBusy as exc:
        return refused(admin, request, Refused(f"{exc.reason}. {_('Nothing was changed.')}", 409))
    except Refused as exc:
        return refused(admin, request, exc)
    plan = enforce.plan_for(rule)
    context = _context(
        admin,
        request,
        rule,
        title=_("Enforce %(rule)s") % {"rule": rule.description},
        plan=plan,
        lock_timeout_ms=build.lock_timeout_ms(),
    )
    if plan.action in (enforce.BUILD, enforce.MIGRATE, enforce.CONFIGURE):
        context.update(_scan(rule))
    return render(request, "integrity/enforce.html", context)


def _context(admin: PageAdmin, request: HttpRequest, rule: Rule, **extra: Any) -> dict[str, Any]:
    return page_context(
        admin,
        request,
        rule=rule,
        db_table=rule.model._meta.db_table,
        rule_url=query(page_url(admin, "rule"), rule=rule.key),
        enforce_url=page_url(admin, "enforce"),
        **extra,
    )


def _start(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    form = EnforceForm(request.POST)
    if not form.is_valid():
        raise refusal(form)
    rule = form.cleaned_data["rule"]
    plan = enforce.plan_for(rule)
    if plan.action != enforce.BUILD:
        message = _("There is no index to build for this rule: %(reason)s Nothing was changed.")
        raise Refused(message % {"reason": plan.reason or plan.enforcement.reason}, 409)
    if form.cleaned_data["token"] != plan.token:
        message = _(
            "The rule's state changed since the confirmation was shown: nothing was changed. Look again."
        )
        raise Refused(message, 409)
    run = _running(rule) or _build(plan, request.user)
    return HttpResponseRedirect(query(page_url(admin, "enforce_run"), run=run.pk), status=303)


def _build(plan: enforce.Plan, user: Any) -> EnforceRun:
    """The build: a job on the task workers when there are some, else a thread of this process."""
    if not jobs.worker_backed():
        return build.start(plan, user)
    run = build.new_run(plan, user)
    params = {"rule": plan.rule.key, "run": run.pk, "token": plan.token}
    try:
        jobs.start(Job.ENFORCE, f"{plan.rule.label}: {plan.rule.description}", params, user)
    except jobs.JobNotStarted as exc:
        build.record(run, status=EnforceRun.FAILED, message=str(exc))
    return run


def _running(rule: Rule) -> EnforceRun | None:
    """A build of this rule that is still going (its backend connected, or just started), if any.

    A run whose process died stays ``pending`` or ``running`` in the table: it
    does not count (its backend is gone, or it never got one within a minute).
    """
    runs = EnforceRun.objects.using(router.db_for_read(EnforceRun))
    recent = timezone.now() - timedelta(seconds=STARTING_SECONDS)
    for run in runs.filter(rule=rule.key, status__in=(EnforceRun.PENDING, EnforceRun.RUNNING))[:5]:
        if (run.pid is None and run.created_at > recent) or (
            run.pid is not None and build.live_progress(run)[1]
        ):
            return run
    return None


@methods("GET")
def enforce_run_view(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """One Enforce run: its step and PostgreSQL's progress while it builds; the outcome when it is over."""
    require(request, permissions.VIEW_DUPLICATES, permissions.ENFORCE_DUPLICATES)
    form = EnforceRunForm(request.GET)
    try:
        if not form.is_valid():
            raise refusal(form)
        run = (
            EnforceRun.objects.using(router.db_for_read(EnforceRun))
            .filter(pk=form.cleaned_data["run"])
            .first()
        )
        if run is None:
            raise Refused(_("There is no Enforce run %(run)s.") % {"run": form.cleaned_data["run"]}, 404)
        rule = rule_from(run.rule)
    except Refused as exc:
        return refused(admin, request, exc)
    progress, alive = build.live_progress(run)
    context = _context(
        admin,
        request,
        rule,
        title=_("Enforce %(rule)s") % {"rule": rule.description},
        run=run,
        progress=progress,
        interrupted=not alive,
        poll_url=query(page_url(admin, "enforce_run"), run=run.pk),
        lock_timeout_ms=build.lock_timeout_ms(),
    )
    if run.status == EnforceRun.DONE:
        context["enforcement"] = enforcement.classify([rule])[rule.key]
    elif run.duplicates:
        context.update(_scan(rule))
    template = "integrity/enforce_status.html" if is_htmx(request) else "integrity/enforce_run.html"
    return render(request, template, context)
