"""integrity.checks: E001 (apps), E002 (htmx middleware), W001 (a base manager that filters)."""

from __future__ import annotations

import io

import pytest
from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test import modify_settings, override_settings
from django.test.utils import isolate_apps

from demo.clinic.models import Doctor
from integrity.checks import HTMX_MIDDLEWARE, REQUIRED_APPS, check_base_managers, check_configuration


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_the_demo_configuration_passes():
    assert check_configuration() == []


@pytest.mark.parametrize("app", REQUIRED_APPS)
def test_e001_names_each_missing_app(app):
    with modify_settings(INSTALLED_APPS={"remove": [app]}):
        assert app not in settings.INSTALLED_APPS
        errors = check_configuration()
    assert errors == [
        Error(
            f"'{app}' must be in INSTALLED_APPS to use integrity.",
            hint=f"Add '{app}' to INSTALLED_APPS.",
            id="integrity.E001",
        )
    ]


def test_e001_for_apps_installed_by_their_app_config_path_is_not_raised():
    installed = [
        "django.contrib.messages.apps.MessagesConfig" if a == "django.contrib.messages" else a
        for a in settings.INSTALLED_APPS
    ]
    with override_settings(INSTALLED_APPS=installed):
        assert "django.contrib.messages" not in settings.INSTALLED_APPS
        assert check_configuration() == []


def test_e001_lists_every_missing_app():
    missing = ["django_htmx", "django_tables2"]
    with modify_settings(INSTALLED_APPS={"remove": missing}):
        errors = check_configuration()
    assert ids(errors) == ["integrity.E001", "integrity.E001"]
    assert [e.msg for e in errors] == [f"'{a}' must be in INSTALLED_APPS to use integrity." for a in missing]


def test_e002_when_the_htmx_middleware_is_missing():
    without = [m for m in settings.MIDDLEWARE if m != HTMX_MIDDLEWARE]
    with override_settings(MIDDLEWARE=without):
        errors = check_configuration()
    assert ids(errors) == ["integrity.E002"]
    assert errors[0].msg == f"'{HTMX_MIDDLEWARE}' must be in MIDDLEWARE."
    assert "request.htmx" in errors[0].hint


def test_manage_py_check_fails_on_e002():
    without = [m for m in settings.MIDDLEWARE if m != HTMX_MIDDLEWARE]
    with override_settings(MIDDLEWARE=without), pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    assert "(integrity.E002)" in str(excinfo.value)
    assert HTMX_MIDDLEWARE in str(excinfo.value)


def test_w001_fires_for_the_demo_doctor_with_its_hint():
    warnings = check_base_managers([apps.get_app_config("clinic")])
    assert len(warnings) == 1
    [warning] = warnings
    assert isinstance(warning, Warning)
    assert warning.id == "integrity.W001"
    assert warning.obj is Doctor
    assert warning.msg == "clinic.Doctor's base manager 'objects' filters rows."
    assert "falls through to an INSERT with the existing primary key" in warning.hint
    assert "Meta.base_manager_name" in warning.hint


def test_w001_fires_only_for_the_doctor_among_all_installed_models():
    warnings = [m for m in run_checks(include_deployment_checks=False) if m.id == "integrity.W001"]
    assert [w.obj for w in warnings] == [Doctor]


def test_manage_py_check_shows_w001_without_failing():
    err = io.StringIO()
    call_command("check", "clinic", "shop", stdout=io.StringIO(), stderr=err)
    assert (
        "clinic.Doctor: (integrity.W001) clinic.Doctor's base manager 'objects' filters rows."
        in err.getvalue()
    )
    assert "HINT: Model.save() asks the base manager whether the row exists" in err.getvalue()


def _models_with_base_managers(registry):
    """Models in an isolated registry: three base managers narrow rows, the others do not."""

    class Filtering(models.Manager):
        def get_queryset(self):
            return super().get_queryset().filter(active=True)

    class Excluding(models.Manager):
        def get_queryset(self):
            return super().get_queryset().exclude(active=False)

    class Slicing(models.Manager):
        def get_queryset(self):
            return super().get_queryset()[:10]

    class Joining(models.Manager):
        """Changes how rows are fetched, not which: harmless."""

        def get_queryset(self):
            return super().get_queryset().defer("active").order_by("name")

    def make(name: str, manager: models.Manager | None) -> type[models.Model]:
        attrs = {
            "__module__": __name__,
            "name": models.CharField(max_length=10),
            "active": models.BooleanField(default=True),
        }
        meta = {"app_label": "tests"}
        if manager is not None:
            attrs["chosen"] = manager
            meta["base_manager_name"] = "chosen"
        attrs["Meta"] = type("Meta", (), meta)
        return type(name, (models.Model,), attrs)

    make("Plain", None)
    # Filtering default manager but no base_manager_name: save() uses a plain Manager.
    default_only = make("DefaultOnly", None)
    Filtering().contribute_to_class(default_only, "visible")
    make("PlainNamed", models.Manager())
    make("Joined", Joining())
    make("Filtered", Filtering())
    make("Excluded", Excluding())
    make("Sliced", Slicing())
    return registry.get_app_config("tests")


def test_w001_only_for_base_managers_that_narrow_rows():
    with isolate_apps("tests") as registry:
        warnings = check_base_managers([_models_with_base_managers(registry)])
    assert sorted(w.obj.__name__ for w in warnings) == ["Excluded", "Filtered", "Sliced"]
    assert set(ids(warnings)) == {"integrity.W001"}
