"""What every admin page shares: the table-less ``PageAdmin``, its route binding, and the answers to bad requests.

Views are plain functions taking the ``PageAdmin`` first; ``PageAdmin.route``
binds one to a URL the way ``ModelAdmin.get_urls`` binds its own views
(``admin_site.admin_view``, ``update_wrapper``, ``model_admin``). The helpers
below give those functions ``require_http_methods``, permission checks, the
page context, and ``refused``: the one renderer of a request the page turns
down (a 4xx with the reason, as a page or, for htmx, a fragment).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper, wraps
from typing import Any, TypeVar

from django import forms
from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django_htmx.http import reswap, retarget

__all__ = [
    "PageAdmin",
    "Refused",
    "FilterForm",
    "change_url",
    "row_change_url",
    "is_htmx",
    "methods",
    "page_context",
    "page_url",
    "refusal",
    "refused",
    "require",
    "text_field",
    "with_changes",
    "with_query",
]

View = TypeVar("View", bound=Callable[..., HttpResponse])


class PageAdmin(admin.ModelAdmin):
    """Base of table-less pages: no add, change or delete, only the views its ``get_urls`` routes.

    A subclass names the context variable that links back to its first page
    (``home_url_name``) and how a refused request is shown: the page template
    (each extends ``integrity/refused.html``), the htmx fragment, and where
    htmx swaps it (``refused_retarget``; by default the element that asked).
    """

    home_url_name = ""
    refused_template = "integrity/refused.html"
    refused_fragment_template = "integrity/messages.html"
    refused_retarget: str | None = None
    refused_title: Any = None  # by default from the status: "Not found", "Conflict", "Bad request"
    object_page = "change"  # the name of an object's own page (with the buttons that post to its addresses)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def route(self, suffix: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
        """``suffix`` → ``view(self, request, **kwargs)``, named ``<app>_<model>_<name>``, behind ``admin_view``."""

        def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # As ModelAdmin's own views do: {% url 'admin:…' %} then resolves
            # within this AdminSite instance, whatever its name.
            request.current_app = self.admin_site.name
            return view(self, request, *args, **kwargs)

        wrapper = update_wrapper(bound, view)
        wrapper.model_admin = self  # type: ignore[attr-defined]  # as ModelAdmin.get_urls' wrap() does
        # Not wrapped in ATOMIC_REQUESTS' transaction: each view's writes run in
        # their own (integrity.transactions.writing), which must be the outermost
        # one to be exact (isolation level, locks taken first, the merge's sweep
        # after its commit).
        wrapper._non_atomic_requests = set(connections)  # type: ignore[attr-defined]
        opts = self.model._meta
        return path(
            suffix, self.admin_site.admin_view(wrapper), name=f"{opts.app_label}_{opts.model_name}_{name}"
        )


def _form_page(admin: PageAdmin, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The link back to the page whose button posts to an object's address (a merge record's Undo: the record)."""
    if "object_id" not in kwargs:
        return {}  # the page's own refusal template links to its list
    opts = admin.model._meta
    try:
        url = reverse(
            f"{admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{admin.object_page}",
            args=[kwargs["object_id"]],
        )
    except NoReverseMatch:
        return {}
    return {"back_url": url, "back_label": _("Back to its page")}


def not_allowed(
    admin: PageAdmin, request: HttpRequest, allowed: tuple[str, ...], kwargs: dict[str, Any] | None = None
) -> HttpResponse:
    """405, as an admin page that says what to do (a bookmark or a refresh of a form's address lands here)."""
    if allowed == ("POST",):
        message = _(
            "This address only takes the form of its page (a POST): opened directly (a bookmark, a refresh) "
            "it does nothing, and nothing was changed. Go back to the page and use its button."
        )
    else:
        message = _("This address does not answer %(method)s requests; nothing was changed.") % {
            "method": request.method
        }
    response = refused(admin, request, Refused(message, 405), **_form_page(admin, kwargs or {}))
    response["Allow"] = ", ".join(allowed)
    return response


def methods(*allowed: str) -> Callable[[View], View]:
    """Like ``require_http_methods``, for views bound to a ``PageAdmin`` (URL arguments are passed on)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(admin: PageAdmin, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                return not_allowed(admin, request, allowed, kwargs)
            return view(admin, request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def require(request: HttpRequest, *perms: str) -> None:
    """Raise ``PermissionDenied`` (a 403) unless the user has every one of ``perms``; it names those missing."""
    missing = [perm for perm in perms if not request.user.has_perm(perm)]
    if missing:
        message = _("This page needs the permission %(perms)s, which your account does not have.")
        raise PermissionDenied(message % {"perms": ", ".join(f"“{p}”" for p in missing)})


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx made the request (``HtmxMiddleware``'s ``request.htmx``; check E002 requires it)."""
    return bool(getattr(request, "htmx", False))


class Refused(Exception):
    """Bad input: the request is answered with ``status`` and this message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def refusal(form: forms.Form) -> Refused:
    """A form's first error as the ``Refused`` it means: the error's ``code`` is the status (400 when none)."""
    for errors in form.errors.as_data().values():
        for error in errors:
            code = str(error.code or "")
            return Refused(" ".join(error.messages), int(code) if code.isdigit() else 400)
    return Refused(_("Bad request"), 400)


def text_field() -> forms.CharField:
    """An optional text input, taken as typed: a value with a stray space matches nothing, not something else."""
    return forms.CharField(required=False, strip=False)


class FilterForm(forms.Form):
    """A page's filters, from the query string: each an optional ``text_field``, checked by ``clean``."""

    def values(self) -> dict[str, str]:
        """Every filter's value ("" when not given); ``Refused`` (from the form's errors) when one is not valid."""
        if not self.is_valid():
            raise refusal(self)
        return {name: self.cleaned_data[name] for name in self.fields}


def with_query(url: str, **params: Any) -> str:
    """``url?params``, the values encoded."""
    return f"{url}?{urlencode(params)}"


def with_changes(query: QueryDict, **changes: str) -> str:
    """``query`` encoded with ``changes`` (an empty value drops the parameter), and back on the first page.

    The links of a list that keep its other filters: "Show all", "Only those that need action".
    """
    changed = query.copy()
    for name, value in changes.items():
        changed.pop(name, None)
        if value:
            changed[name] = value
    for name in [n for n in changed if n == "page" or n.endswith("-page")]:
        changed.pop(name)
    return changed.urlencode()


def page_url(admin: PageAdmin, name: str) -> str:
    """The URL of one of ``admin``'s routes (``PageAdmin.route`` names) on its AdminSite."""
    opts = admin.model._meta
    return reverse(f"{admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}")


def page_context(admin: PageAdmin, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What every page's template needs (site context, ``opts``, app label, the link home), plus ``extra``."""
    home = {admin.home_url_name: page_url(admin, "changelist")} if admin.home_url_name else {}
    return {
        **admin.admin_site.each_context(request),
        "opts": admin.model._meta,
        "app_label": admin.model._meta.app_label,
        **home,
        **extra,
    }


def refused(admin: PageAdmin, request: HttpRequest, exc: Refused, **extra: Any) -> HttpResponse:
    """The 4xx page (for htmx, the message as a fragment) that says what was wrong with the request."""
    if is_htmx(request):
        fragment = render_to_string(admin.refused_fragment_template, {"error": str(exc)}, request=request)
        response = HttpResponse(fragment, status=exc.status)
        if admin.refused_retarget:
            retarget(response, admin.refused_retarget)
            reswap(response, "innerHTML")
        return response
    title = admin.refused_title or {
        404: _("Not found"),
        405: _("Use the page's form"),
        409: _("Conflict"),
    }.get(exc.status, _("Bad request"))
    context = page_context(admin, request, title=title, error=str(exc), **extra)
    return render(request, admin.refused_template, context, status=exc.status)


def change_url(admin: PageAdmin, request: HttpRequest, obj: Model) -> str | None:
    """``obj``'s change page on this AdminSite, when its model is registered there and the user may see it."""
    try:
        model_admin = admin.admin_site.get_model_admin(type(obj))
    except NotRegistered:
        return None
    if not model_admin.has_view_or_change_permission(request, obj):
        return None
    return row_change_url(admin, type(obj), obj.pk)


def row_change_url(admin: PageAdmin, model: type[Model], pk: Any) -> str | None:
    """The change page's address of ``model``'s row ``pk`` on this AdminSite (no permission checked)."""
    opts = model._meta
    try:
        return reverse(
            f"{admin.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=[quote(pk)],
            current_app=admin.admin_site.name,
        )
    except NoReverseMatch:
        return None
