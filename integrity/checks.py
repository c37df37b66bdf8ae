"""System checks: configuration errors (E0xx), settings (E003, E004), the events middleware (W002, W003),
notifications with nobody to mail (W004) or through SMTP without a timeout (W005), and a base manager that filters rows (W001)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from integrity.db import filtering_base_manager

REQUIRED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django_htmx",
    "django_tables2",
]
HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"
EVENTS_MIDDLEWARE = "integrity.middleware.IntegrityErrorMiddleware"
AUTHENTICATION_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@register(Tags.compatibility)
def check_configuration(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """The apps and middleware the pages need are installed, in a working order."""
    errors: list[CheckMessage] = []
    for app in REQUIRED_APPS:
        if not apps.is_installed(app):
            errors.append(
                Error(
                    f"'{app}' must be in INSTALLED_APPS to use integrity.",
                    hint=f"Add '{app}' to INSTALLED_APPS.",
                    id="integrity.E001",
                )
            )
    middleware = list(settings.MIDDLEWARE)
    if HTMX_MIDDLEWARE not in middleware:
        errors.append(
            Error(
                f"'{HTMX_MIDDLEWARE}' must be in MIDDLEWARE.",
                hint="The integrity pages use request.htmx to answer htmx requests with partials.",
                id="integrity.E002",
            )
        )
    return errors


@register(Tags.compatibility)
def check_settings(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """The ``INTEGRITY_*`` values can be read: at check time, rather than as a 500 (or a silent default) later."""
    from integrity.conf import invalid_values
    from integrity.duplicates.rules import configured_rule_errors

    errors: list[CheckMessage] = [
        Error(message, hint="See the README's Settings section.", id="integrity.E004")
        for message in invalid_values()
    ]
    if not errors:  # a DUPLICATE_RULES that is not a list is E004 already
        errors += [
            Error(
                message,
                hint="Each rule: {'model': 'app_label.Model', 'fields': ['name', ...]} and, optionally, "
                "'case_insensitive', 'trim', 'nulls_equal', 'name'.",
                id="integrity.E003",
            )
            for message in configured_rule_errors()
        ]
    return errors


@register(Tags.compatibility)
def check_events_middleware(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``IntegrityErrorMiddleware`` is installed, after the authentication middleware (whose user it records)."""
    middleware = list(settings.MIDDLEWARE)
    if EVENTS_MIDDLEWARE not in middleware:
        return [
            Warning(
                f"'{EVENTS_MIDDLEWARE}' is not in MIDDLEWARE: the events page stays empty.",
                hint="Add it to MIDDLEWARE (after AuthenticationMiddleware) to record the IntegrityErrors "
                "that escape views; integrity.capture() still records errors outside requests.",
                id="integrity.W002",
            )
        ]
    if AUTHENTICATION_MIDDLEWARE in middleware and middleware.index(EVENTS_MIDDLEWARE) < middleware.index(
        AUTHENTICATION_MIDDLEWARE
    ):
        return [
            Warning(
                f"'{EVENTS_MIDDLEWARE}' comes before '{AUTHENTICATION_MIDDLEWARE}' in MIDDLEWARE.",
                hint="Move it after AuthenticationMiddleware (the end of the list is best), where it sees "
                "the request as the view saw it, its user included.",
                id="integrity.W003",
            )
        ]
    return []


@register(Tags.models)
def check_base_managers(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """A base manager that filters rows makes save() INSERT existing ids."""
    configs = app_configs if app_configs is not None else apps.get_app_configs()
    warnings: list[CheckMessage] = []
    for config in configs:
        for model in config.get_models():
            name = filtering_base_manager(model)
            if name is None:
                continue
            warnings.append(
                Warning(
                    f"{model._meta.label}'s base manager '{name}' filters rows.",
                    hint=(
                        "Model.save() asks the base manager whether the row exists; for a row "
                        "that manager hides, the UPDATE matches nothing and save() falls through "
                        "to an INSERT with the existing primary key: 'duplicate key value violates "
                        "unique constraint'. Use an unfiltered manager as Meta.base_manager_name "
                        "(remove the setting to get models.Manager())."
                    ),
                    obj=model,
                    id="integrity.W001",
                )
            )
    return warnings


def _smtp_without_timeout() -> bool:
    """Whether the project's e-mail goes through SMTP with no timeout (Django's default: wait for ever)."""
    mailers = getattr(settings, "MAILERS", None)
    if isinstance(mailers, dict):  # Django 6.1's mailers
        default = mailers.get("default") or {}
        backend, timeout = default.get("BACKEND", ""), (default.get("OPTIONS") or {}).get("timeout")
    else:
        with warnings.catch_warnings():  # Django 6.1 deprecates reading EMAIL_*; this is a check, not a use
            warnings.simplefilter("ignore")
            backend, timeout = (
                getattr(settings, "EMAIL_BACKEND", ""),
                getattr(settings, "EMAIL_TIMEOUT", None),
            )
    return "smtp" in str(backend).lower() and timeout is None


@register(Tags.compatibility)
def check_notify_email(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRITY_NOTIFY_EMAIL`` on needs someone to mail (``ADMINS``) and a mail server that cannot hold a request."""
    if getattr(settings, "INTEGRITY_NOTIFY_EMAIL", False) is not True:
        return []
    found: list[CheckMessage] = []
    if not settings.ADMINS:
        found.append(
            Warning(
                "INTEGRITY_NOTIFY_EMAIL is on but ADMINS is empty: no e-mail about new or regressed "
                "IntegrityError groups can be sent.",
                hint="Set ADMINS (and the EMAIL_* settings), or turn INTEGRITY_NOTIFY_EMAIL off.",
                id="integrity.W004",
            )
        )
    if _smtp_without_timeout():
        found.append(
            Warning(
                "INTEGRITY_NOTIFY_EMAIL is on and e-mail goes through SMTP without a timeout: the e-mail is sent "
                "by the request that failed, which a mail server that does not answer would hold for ever.",
                hint="Set EMAIL_TIMEOUT (or the default mailer's OPTIONS timeout), e.g. 10 seconds.",
                id="integrity.W005",
            )
        )
    return found


@register(Tags.compatibility)
def check_task_backend(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRITY_TASK_BACKEND`` names a backend of ``TASKS`` that loads: else jobs would fail when started."""
    from integrity.jobs.service import backend_error

    message = backend_error()
    if message is None:
        return []
    return [
        Error(
            message,
            hint="Set INTEGRITY_TASK_BACKEND to an alias of TASKS (default 'default'); see the README's Jobs section.",
            id="integrity.E005",
        )
    ]
