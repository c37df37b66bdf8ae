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
from integrity.checks import (
    EVENTS_MIDDLEWARE,
    HTMX_MIDDLEWARE,
    REQUIRED_APPS,
    check_base_managers,
    check_configuration,
    check_events_middleware,
    check_settings,
)


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


# ---------------------------------------------------------------------------
# Settings (E003, E004) and the events middleware (W002, W003)
# ---------------------------------------------------------------------------


def test_the_demo_settings_and_middleware_pass():
    assert check_settings() == []
    assert check_events_middleware() == []


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "INTEGRITY_EVENT_VALUES",
            "key",
            "INTEGRITY_EVENT_VALUES must be one of 'keys', 'all', 'none', not 'key'.",
        ),
        ("INTEGRITY_LOCK_TIMEOUT_MS", "2s", "INTEGRITY_LOCK_TIMEOUT_MS must be a whole number, not '2s'."),
        ("INTEGRITY_MERGE_BATCH", None, "INTEGRITY_MERGE_BATCH must be a whole number, not None."),
        ("INTEGRITY_SCAN_CHUNK_ROWS", "1e6", "INTEGRITY_SCAN_CHUNK_ROWS must be a whole number, not '1e6'."),
        (
            "INTEGRITY_CAPACITY_WARNING",
            75,
            "INTEGRITY_CAPACITY_WARNING must be a fraction between 0 and 1, not 75.",
        ),
        (
            "INTEGRITY_DUPLICATE_RULES",
            {"model": "crm.Customer"},
            "INTEGRITY_DUPLICATE_RULES must be a list of rules",
        ),
    ],
)
def test_e004_names_a_setting_value_that_cannot_be_used(setting, value, message):
    with override_settings(**{setting: value}):
        errors = check_settings()
    assert ids(errors) == ["integrity.E004"]
    assert errors[0].msg.startswith(message)


def test_setting_values_that_can_be_read_pass():
    with override_settings(
        INTEGRITY_EVENT_VALUES="all", INTEGRITY_LOCK_TIMEOUT_MS="500", INTEGRITY_CAPACITY_CRITICAL=1
    ):
        assert check_settings() == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"model": "crm.Customer"}, "needs 'model' and a non-empty list of 'fields'"),
        ({"model": "crm.Customer", "fields": "email"}, "needs 'model' and a non-empty list of 'fields'"),
        (
            {"model": "crm.Customer", "fields": ["email"], "case_sensitive": True},
            "unknown key(s) case_sensitive",
        ),
        ({"model": "crm.Nobody", "fields": ["email"]}, "unknown model 'crm.Nobody'"),
        ({"model": "crm.Customer", "fields": ["emial"]}, "crm.Customer has no field 'emial'"),
    ],
)
def test_e003_for_each_malformed_duplicate_rule(rule, message):
    fine = {"model": "crm.Customer", "fields": ["email"], "name": "fine"}
    with override_settings(INTEGRITY_DUPLICATE_RULES=[fine, rule]):
        errors = check_settings()
    assert ids(errors) == ["integrity.E003"]
    assert message in errors[0].msg


def test_manage_py_check_fails_on_a_typo_in_a_setting():
    with override_settings(INTEGRITY_EVENT_VALUES="none "), pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    assert "(integrity.E004)" in str(excinfo.value)


def test_w002_when_the_events_middleware_is_missing():
    without = [m for m in settings.MIDDLEWARE if m != EVENTS_MIDDLEWARE]
    with override_settings(MIDDLEWARE=without):
        warnings = check_events_middleware()
    assert ids(warnings) == ["integrity.W002"]
    assert isinstance(warnings[0], Warning)
    assert EVENTS_MIDDLEWARE in warnings[0].msg


def test_w003_when_the_events_middleware_comes_before_authentication():
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    others = [m for m in settings.MIDDLEWARE if m != EVENTS_MIDDLEWARE]
    early = [*others[: others.index(auth)], EVENTS_MIDDLEWARE, *others[others.index(auth) :]]
    with override_settings(MIDDLEWARE=early):
        warnings = check_events_middleware()
    assert ids(warnings) == ["integrity.W003"]
    assert "AuthenticationMiddleware" in warnings[0].hint
    last = [*others, EVENTS_MIDDLEWARE]
    with override_settings(MIDDLEWARE=last):
        assert check_events_middleware() == []


@override_settings(INTEGRITY_TASK_BACKEND="workers")
def test_e005_when_the_task_backend_is_not_in_tasks():
    errors = [e for e in run_checks() if e.id == "integrity.E005"]
    assert len(errors) == 1
    assert "INTEGRITY_TASK_BACKEND is 'workers', which is not a backend in TASKS" in errors[0].msg


@override_settings(INTEGRITY_TASK_BACKEND="db")
def test_e005_is_quiet_for_a_backend_of_tasks():
    assert [e for e in run_checks() if e.id == "integrity.E005"] == []
