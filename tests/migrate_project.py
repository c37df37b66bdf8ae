"""Settings of a small project for the tests that run ``migrate`` (and Django's test runner) in a subprocess.

The environment chooses: ``DATABASE_URL`` (a fresh database of the test
server), ``INTEGRITY_AFTER_MIGRATE`` (unset: the default) and
``DEDUPE_MIGRATIONS`` (another migrations module for the dedupe app). Only
the apps the stories need, so that each subprocess migrates in seconds.
"""

import os
from importlib.util import find_spec

from demo.settings import *  # noqa: F403
from demo.settings import DATABASES

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tables2",
    "integrity",
    "tests.explicit_ids.apps.ExplicitIdsConfig",
    "tests.dedupe.apps.DedupeConfig",
]
ROOT_URLCONF = "tests.migrate_urls"
# Django's default (no worker): the demo's database task backend needs its app, not installed here.
_TASKS_MODULE = "django.tasks" if find_spec("django.tasks") else "django_tasks"
TASKS = {"default": {"BACKEND": f"{_TASKS_MODULE}.backends.immediate.ImmediateBackend"}}
INTEGRITY_DUPLICATE_RULES = []  # the demo's rule names a demo model
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if "INTEGRITY_AFTER_MIGRATE" in os.environ:
    INTEGRITY_AFTER_MIGRATE = os.environ["INTEGRITY_AFTER_MIGRATE"]
if "DEDUPE_MIGRATIONS" in os.environ:
    MIGRATION_MODULES = {"dedupe": os.environ["DEDUPE_MIGRATIONS"]}
if "TEST_DATABASE_NAME" in os.environ:
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
