"""The events pages' changing views: resolve, ignore or reopen groups (one from its page, or many from the list),
and prune old samples (the list's form; ``integrity.delete_eventgroup``).

POST only, with CSRF (the admin's), and ``integrity.resolve_eventgroup``
besides ``integrity.view_eventgroup``. The form names the groups (``ids``),
the ``action`` and, to ignore, either a date (``until``) or a number of
further occurrences (``more``); anything else is a 400 that says what was
wrong, and nothing is changed. Done, it redirects back (``next``, when it
is on this site) with a message.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity import jobs, permissions
from integrity.events import lifecycle, retention
from integrity.models import Job
from integrity.pages import PageAdmin, Refused, methods, page_url, refusal, refused, require

ACTIONS = ("resolve", "reopen", "ignore")
MAX_IDS = 500


class StateForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    ids = forms.TypedMultipleChoiceField(coerce=int, required=True)
    until = forms.DateField(required=False)
    more = forms.IntegerField(required=False, min_value=1, max_value=10**12)

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        raw = data.getlist("ids") if hasattr(data, "getlist") else []
        valid = [r for r in raw[:MAX_IDS] if r.isascii() and r.isdigit() and len(r) <= 18]
        self.fields["ids"].choices = [(r, r) for r in valid]  # type: ignore[attr-defined]
        self.fields["ids"].error_messages = {
            "required": _("Choose at least one group."),
            "invalid_choice": _("%(value)s is not a valid event group id."),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "ignore" and not (data.get("until") is None) ^ (data.get("more") is None):
            raise forms.ValidationError(
                _("To ignore, give a date or a number of occurrences, one of the two.")
            )
        return data


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if target and safe else default


@methods("POST")
def group_state(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Resolve, reopen or ignore the groups posted; a redirect back with what was done."""
    require(request, permissions.VIEW_EVENTS, permissions.RESOLVE_EVENTS)
    form = StateForm(request.POST)
    try:
        if not form.is_valid():
            raise refusal(form)
        changed = _apply(form.cleaned_data, request.user)
    except lifecycle.LifecycleRefused as exc:
        status = 409 if isinstance(exc, lifecycle.LifecycleBusy) else 400
        return refused(admin, request, Refused(str(exc), status))
    except Refused as exc:
        return refused(admin, request, exc)
    messages.success(request, _message(form.cleaned_data["action"], changed))
    return HttpResponseRedirect(_back(request, page_url(admin, "changelist")))


def _apply(data: dict[str, Any], user: Any) -> int:
    ids, action = list(data["ids"]), data["action"]
    if action == "resolve":
        return lifecycle.resolve(ids, user)
    if action == "reopen":
        return lifecycle.reopen(ids, user)
    until = data.get("until")
    moment = timezone.make_aware(datetime.combine(until, time.min)) if until else None
    return lifecycle.ignore(ids, user, until=moment, more=data.get("more"))


def _message(action: str, n: int) -> str:
    texts = {
        "resolve": ngettext("%(n)d group resolved.", "%(n)d groups resolved.", n),
        "reopen": ngettext("%(n)d group reopened.", "%(n)d groups reopened.", n),
        "ignore": ngettext("%(n)d group ignored.", "%(n)d groups ignored.", n),
    }
    return texts[action] % {"n": n}


class PruneForm(forms.Form):
    days = forms.IntegerField(
        min_value=0,
        max_value=36_500,
        error_messages={"required": _("Say how many days of samples to keep.")},
    )


@methods("POST")
def prune(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Remove the samples older than ``days`` days and the groups left empty: a job with workers, else here."""
    require(request, *jobs.service.PERMISSIONS[Job.PRUNE])
    form = PruneForm(request.POST)
    if not form.is_valid():
        return refused(admin, request, refusal(form))
    days = int(form.cleaned_data["days"])
    what = ngettext("Samples older than %(n)d day", "Samples older than %(n)d days", days) % {"n": days}
    if jobs.worker_backed():
        try:
            job = jobs.service.start(Job.PRUNE, what, {"older_than_seconds": days * 86_400}, request.user)
        except jobs.JobNotStarted as exc:
            return refused(admin, request, Refused(f"{exc} {_('Nothing was changed.')}", 503))
        return HttpResponseRedirect(
            reverse(f"{admin.admin_site.name}:integrity_job_job", args=[job.pk]), status=303
        )
    try:  # three set-based statements, bounded by the write timeouts
        found = retention.prune(timedelta(days=days))
    except retention.PruneBusy as exc:
        return refused(admin, request, Refused(f"{exc} {_('Nothing was removed.')}", 409))
    removed = ngettext("%(n)d sample removed", "%(n)d samples removed", found.samples) % {"n": found.samples}
    groups = ngettext("%(n)d group removed", "%(n)d groups removed", found.groups) % {"n": found.groups}
    messages.success(request, f"{what}: {removed}, {groups}.")
    return HttpResponseRedirect(page_url(admin, "changelist"), status=303)
