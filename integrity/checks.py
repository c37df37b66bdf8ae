"""System checks: configuration errors (E0xx) and seed 000's bug (W001)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db.models import Model

REQUIRED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django_htmx",
    "django_tables2",
]
HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"


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


def _filtering_base_manager(model: type[Model]) -> str | None:
    """Return the base manager's name when its ``get_queryset`` narrows rows."""
    if not model._meta.base_manager_name:
        return None
    try:
        query = model._base_manager.get_queryset().query
    except Exception:  # noqa: BLE001 - a manager that needs a request context
        return model._meta.base_manager_name
    narrowed = bool(query.where) or query.is_sliced or query.distinct
    return model._meta.base_manager_name if narrowed else None


@register(Tags.models)
def check_base_managers(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Seed 000: a base manager that filters rows makes save() INSERT existing ids."""
    configs = app_configs if app_configs is not None else apps.get_app_configs()
    warnings: list[CheckMessage] = []
    for config in configs:
        for model in config.get_models():
            name = _filtering_base_manager(model)
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


@register(Tags.compatibility)
def check_after_migrate(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``INTEGRITY_AFTER_MIGRATE`` is one of the values it documents (a typo would silently mean "warn")."""
    from integrity.sequences.after_migrate import MODES

    value = getattr(settings, "INTEGRITY_AFTER_MIGRATE", "warn")
    if value in MODES:
        return []
    return [
        Error(
            f"INTEGRITY_AFTER_MIGRATE is {value!r}; it must be one of {', '.join(map(repr, MODES))}.",
            hint="What migrate does about a sequence it leaves behind its data; the default is 'warn'.",
            id="integrity.E003",
        )
    ]
