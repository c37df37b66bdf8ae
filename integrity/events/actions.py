"""The events pages' one changing view: resolve, ignore or reopen groups (one from its page, or many from the list).

POST only, with CSRF (the admin's), and ``integrity.resolve_eventgroup``
besides ``integrity.view_eventgroup``. The form names the groups (``ids``),
the ``action`` and, to ignore, either a date (``until``) or a number of
further occurrences (``more``); anything else is a 400 that says what was
wrong, and nothing is changed. Done, it redirects back (``next``, when it
is on this site) with a message.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from integrity import permissions
from integrity.events import lifecycle
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
