"""Settings of the demo project (also the base of the test settings).

With no ``DATABASE_URL`` the embedded PostgreSQL in ``.pgdata/`` is started;
``DATABASE_URL`` points at any other PostgreSQL instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from demo import embedded

    return embedded.start()


DATABASES = {"default": dj_database_url.parse(_database_url(), conn_max_age=0)}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # The demo's violations app declares an ExclusionConstraint (Django 6.x checks this).
    "django.contrib.postgres",
    "django_htmx",
    "django_tables2",
    # The task queue of the demo's long operations (scans, merge every group): `demo` runs its worker.
    "django_tasks_db",
    "integrity",
    "demo",
    "demo.clinic.apps.ClinicConfig",
    "demo.shop.apps.ShopConfig",
    "demo.helpdesk.apps.HelpdeskConfig",
    "demo.metrics.apps.MetricsConfig",
    "demo.crm.apps.CrmConfig",
    "demo.sales.apps.SalesConfig",
    "demo.violations.apps.ViolationsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Every IntegrityError that escapes a view becomes an event in the admin.
    "integrity.middleware.IntegrityErrorMiddleware",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
LOGIN_URL = "admin:login"

# The demo's "handled" violation (an IntegrityError the view catches) is recorded too, marked handled.
INTEGRITY_CAPTURE_HANDLED = True

# Rules the demo's project wants but has not declared unique yet (the unique-rules story:
# find the duplicates before adding the constraint).
INTEGRITY_DUPLICATE_RULES = [
    {
        "model": "crm.Customer",
        "fields": ["name"],
        "case_insensitive": True,
        "trim": True,
        "name": "customer_name_ci",
    },
]

# Long operations (scans, merge every group, Enforce builds) are jobs on this backend; the demo
# command runs its worker (`manage.py db_worker`) beside the web server.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
