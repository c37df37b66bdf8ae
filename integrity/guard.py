"""What every page of the app gets from its ModelAdmin: bounded reads, no NUL bytes, 403 on the dashboard.

``guarded(admin, view)`` wraps each route (``PageAdmin.urls``): a request
whose path or parameters hold a NUL character (no PostgreSQL text can hold
one) is a 400 that says so; a GET runs, and renders, inside
``reads.bounded_all()`` so that no read waits for a lock or runs without a
limit, and a read that could not finish in time is a page that says so
(HTTP 200, with a link to try again), never a hang or a 500; a change (POST)
whose bounded reads could not finish is that page too, with 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import URLPattern
from django.utils.translation import gettext as _

from integrity import permissions, reads
from integrity.models import Sequence
from integrity.pages import PageAdmin, page_context

READS = ("GET", "HEAD")


def _values(request: HttpRequest, args: Iterable[Any], kwargs: dict[str, Any]) -> Iterable[str]:
    yield request.path
    yield from (str(a) for a in args)
    yield from (str(v) for v in kwargs.values())
    for data in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
        for key, values in data.lists():
            yield key
            yield from values


def has_nul(request: HttpRequest, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None) -> bool:
    """Does any part of the request the views read (path, parameters) hold a NUL character?"""
    return any("\x00" in value for value in _values(request, args, kwargs or {}))


def _answer(admin: Any, request: HttpRequest, message: str, status: int) -> HttpResponse:
    if getattr(request, "htmx", False):
        fragment = render_to_string("integrity/messages.html", {"error": message})
        return HttpResponse(fragment, status=status)
    # A POST is not repeated by a link: its form is on the page the user came from.
    retry = request.get_full_path() if request.method in READS else request.META.get("HTTP_REFERER")
    context = page_context(admin, request, title=_("Try again"), error=message, retry_url=retry)
    return render(request, "integrity/busy.html", context, status=status)


def _needed(admin: Any, route: str) -> str:
    """What a 403 of Django's own views of ``admin`` (a log's list, change, history, add, delete) lacks, in words.

    Those raise ``PermissionDenied`` without a message; the app's views name
    their permissions themselves (``pages.require``).
    """
    opts = admin.model._meta
    if route.rsplit("_", 1)[-1] in ("add", "delete"):
        return _("The app writes the %(log)s itself: nothing can be added or deleted here.") % {
            "log": opts.verbose_name_plural
        }
    message = _("This page needs the permission %(perms)s, which your account does not have.")
    return message % {"perms": f"“{opts.app_label}.view_{opts.model_name}”"}


def _denied(admin: Any, request: HttpRequest, exc: PermissionDenied, route: str = "") -> HttpResponse:
    """403 as an admin page naming the missing permission (Django's own 403 page says only "Forbidden")."""
    message = str(exc) or _needed(admin, route)
    if getattr(request, "htmx", False):
        return HttpResponse(render_to_string("integrity/messages.html", {"error": message}), status=403)
    context = page_context(admin, request, title=_("Permission needed"), error=message)
    return render(request, "integrity/refused.html", context, status=403)


def _dashboard_denied(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """403 as an admin page naming what the dashboard needs: any one of the app's permissions to see a page."""
    perms = ", ".join(f"“{p}”" for p in permissions.VIEWS)
    message = _(
        "The data integrity dashboard needs at least one of the permissions %(perms)s, which your account "
        "does not have."
    ) % {"perms": perms}
    context = {**site.each_context(request), "title": _("Permission needed"), "error": message}
    # Sequence's opts: the breadcrumbs name the app by its verbose name.
    return render(request, "integrity/refused.html", {**context, "opts": Sequence._meta}, status=403)


def busy_message(exc: reads.ReadBusy) -> str:
    return _("The page could not be read in time: %(reason)s.") % {"reason": exc.reason}


def busy_write_message(exc: reads.ReadBusy) -> str:
    return _(
        "This could not be done in time: %(reason)s. The step that waited changed nothing; "
        "anything finished before it is kept. Try again."
    ) % {"reason": exc.reason}


def bounded_render(call: Callable[[], HttpResponse]) -> HttpResponse:
    """``call()`` and the rendering of its response inside ``reads.bounded_all()``.

    A TemplateResponse reads its querysets while rendering: that must happen
    in here too, or those reads run unbounded. Raises ``reads.ReadBusy``.
    """
    with reads.bounded_all():
        response = call()
        render_now = getattr(response, "render", None)
        if callable(render_now) and not getattr(response, "is_rendered", True):
            render_now()
    return response


def guarded(admin: Any, view: Callable[..., HttpResponse], route: str = "") -> Callable[..., HttpResponse]:
    """``view`` with NUL bytes refused (400) and, for reads, every query bounded (see the module).

    ``route``: the URL pattern's name, for a 403 that must say what it lacks.
    """

    @wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if has_nul(request, args, kwargs):
            message = _("The request holds a NUL character, which no database text can hold.")
            return _answer(admin, request, message, 400)
        try:
            if request.method not in READS:
                return view(request, *args, **kwargs)
        except PermissionDenied as exc:
            return _denied(admin, request, exc, route)
        except reads.ReadBusy as exc:
            # A change's own reads are bounded too (a scan, a plan): each change
            # commits in its own transactions, so the one that waited changed nothing.
            return _answer(admin, request, busy_write_message(exc), 503)
        try:
            response = bounded_render(lambda: view(request, *args, **kwargs))
        except reads.ReadBusy as exc:
            return _answer(admin, request, busy_message(exc), 200)
        except PermissionDenied as exc:
            return _denied(admin, request, exc, route)
        return response

    return inner


def guard_patterns(admin: Any, patterns: list[Any]) -> list[Any]:
    """Every route of ``admin`` guarded."""
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = guarded(admin, pattern.callback, pattern.name or "")
    return patterns


def guard_app_index(site: AdminSite, label: str) -> None:
    """``/admin/<label>/`` (the dashboard): 403 for staff without any of the app's permissions, reads bounded.

    The admin answers 404 when a user may see none of an app's models; the
    dashboard promises 403. Wrapped once per AdminSite instance, before its
    URLs are built (ModelAdmins are registered first).
    """
    if getattr(site, "_integrity_guarded", False):
        return
    original = site.app_index

    def app_index(request: HttpRequest, app_label: str, extra_context: Any = None) -> HttpResponse:
        if app_label != label:
            return original(request, app_label, extra_context)
        if not request.user.has_module_perms(label):
            return _dashboard_denied(site, request)
        try:
            response = bounded_render(lambda: original(request, app_label, extra_context))
        except reads.ReadBusy as exc:  # each card says so itself; this is for anything else that waited
            context = {**site.each_context(request), "title": _("Try again"), "error": busy_message(exc)}
            return render(request, "integrity/busy.html", {**context, "retry_url": request.get_full_path()})
        return response

    site.app_index = app_index  # type: ignore[method-assign,assignment]
    site._integrity_guarded = True  # type: ignore[attr-defined]


class GuardedPageAdmin(PageAdmin):
    """A ``PageAdmin`` whose every route is guarded (see the module), and the app index with it."""

    def __init__(self, model: Any, admin_site: Any) -> None:
        super().__init__(model, admin_site)
        guard_app_index(admin_site, model._meta.app_label)

    @property
    def urls(self) -> list[URLPattern]:
        return guard_patterns(self, self.get_urls())
