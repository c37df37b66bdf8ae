"""Test settings: the demo project, plus a second PostgreSQL database and a SQLite one.

``other`` is another database on the same PostgreSQL server; only the
``tests.routers`` router sends anything there, which is how router-awareness
is tested. ``legacy`` is SQLite, where the sequence check is not available.
"""

import os
from importlib.util import find_spec

from demo.settings import *  # noqa: F403
from demo.settings import DATABASES, INSTALLED_APPS

DATABASES["other"] = {**DATABASES["default"], "NAME": f"{DATABASES['default']['NAME']}_other"}
DATABASES["other"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_other"}
DATABASES["legacy"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
DATABASE_ROUTERS = ["tests.routers.OtherDatabaseRouter"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Parallel runs on one server (e.g. two checkouts) each get their own test databases.
_SUFFIX = os.environ.get("INTEGRITY_TEST_DB_SUFFIX", "")
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{_SUFFIX}"}
DATABASES["other"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_other{_SUFFIX}"}
ROOT_URLCONF = "tests.urls"
# Models with every kind of relation a merge must carry over (tests only).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.merging.apps.MergingConfig"]
INTEGRITY_CAPTURE_HANDLED = False  # the app's default, which the tests assume; the demo turns it on
INSTALLED_APPS += ["tests.shapes.apps.ShapesConfig"]  # schemas _meta does not fully describe
INSTALLED_APPS += ["tests.keys.apps.KeysConfig"]  # typed keys, generic keys of every type, odd names
INSTALLED_APPS += [
    "tests.formerrors.apps.FormErrorsConfig"
]  # every way to declare a unique rule (field_errors)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Jobs: the immediate backend by default (long operations in the request, as the other tests
# expect); "db" is django-tasks-db, whose worker the jobs tests start as a real process.
_TASKS_MODULE = "django.tasks" if find_spec("django.tasks") else "django_tasks"
TASKS = {
    "default": {"BACKEND": f"{_TASKS_MODULE}.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}

# RQ (django-tasks-rq) on a redis-server the jobs tests start on this loopback port (a worker
# process started by a test inherits the environment, so it finds the same one).
_REDIS_PORT = int(os.environ.setdefault("INTEGRITY_TEST_REDIS_PORT", str(_free_port())))
INSTALLED_APPS += ["django_rq"]  # django_tasks_db comes with the demo settings
RQ_QUEUES = {"default": {"HOST": "127.0.0.1", "PORT": _REDIS_PORT, "DB": 0, "DEFAULT_TIMEOUT": 600}}
TASKS["rq"] = {"BACKEND": "django_tasks_rq.RQBackend"}
