"""Helpers shared by the admin views of every page (sequences, duplicates).

Views are plain functions bound to a ModelAdmin by ``PageAdmin._route``; these
helpers give them ``require_http_methods`` and permission checks in that form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import reverse

View = Callable[[Any, HttpRequest], HttpResponse]


def methods(*allowed: str) -> Callable[[View], View]:
    """Like ``require_http_methods``, for views bound to a ModelAdmin."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(admin: Any, request: HttpRequest) -> HttpResponse:
            if request.method not in allowed:
                return HttpResponseNotAllowed(allowed)
            return view(admin, request)

        return wrapper

    return decorate


def require(request: HttpRequest, perm: str) -> None:
    """Raise ``PermissionDenied`` (a 403) unless the user has ``perm``."""
    if not request.user.has_perm(perm):
        raise PermissionDenied


class Refused(Exception):
    """Bad input: the request is answered with ``status`` and this message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def page_url(admin: Any, name: str) -> str:
    """The URL of one of ``admin``'s routes (``PageAdmin._route`` names) on its AdminSite."""
    opts = admin.model._meta
    return reverse(f"{admin.admin_site.name}:{opts.app_label}_{opts.model_name}_{name}")


def page_context(admin: Any, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What every page's template needs from the admin (site context, ``opts``, app label), plus ``extra``."""
    return {
        **admin.admin_site.each_context(request),
        "opts": admin.model._meta,
        "app_label": admin.model._meta.app_label,
        **extra,
    }
