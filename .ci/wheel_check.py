"""Install check of the built wheel: a minimal project of a few lines, the app from the wheel alone.

Run with the Python of a fresh virtualenv into which only the wheel (and its
dependencies) was installed: ``python .ci/wheel_check.py``. The database comes
from libpq's environment (``PGHOST``, ``PGPORT``, ``PGUSER``); the script
creates and drops its own database. It runs ``migrate`` and ``check``,
``collectstatic``, then serves the project with ``runserver`` and, logged in
as a superuser over HTTP, GETs ``/admin/integrity/`` and the app's pages and
stylesheet: templates, static files and migrations must all be in the wheel.
Exit status 0 when everything answered, 1 otherwise.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DATABASE = "integrity_wheel_check"

SETTINGS = f'''
SECRET_KEY = "wheel-check"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "urls"
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
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "integrity.middleware.IntegrityErrorMiddleware",
]
TEMPLATES = [
    {{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {{
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        }},
    }}
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": "{DATABASE}"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = "static-root"
'''

URLS = """
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
"""

PAGES = [
    "/admin/integrity/",
    "/admin/integrity/sequence/",
    "/admin/integrity/duplicaterule/",
    "/admin/integrity/eventgroup/",
    "/admin/integrity/mergerecord/",
    "/admin/integrity/sequenceresync/",
]


def step(title: str) -> None:
    print(f"-- {title}", flush=True)


def django(project: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=project,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "settings", "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode:
        raise SystemExit(
            f"django-admin {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout + result.stderr


def psql_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_get(project: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=project,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "settings", "PYTHONPATH": str(project)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        deadline = time.monotonic() + 120
        while True:
            try:
                with opener.open(f"{base}/admin/login/", timeout=10) as response:
                    login_page = response.read().decode()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("runserver did not answer") from None
                time.sleep(0.5)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page)
        assert token, login_page
        form = {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": "wheel-check-pw"}
        with opener.open(
            f"{base}/admin/login/?next=/admin/integrity/",
            data=urllib.parse.urlencode(form).encode(),
            timeout=60,
        ) as response:
            if response.url != f"{base}/admin/integrity/":
                raise SystemExit(f"login did not lead to the dashboard: {response.url}")
        for page in PAGES:
            with opener.open(f"{base}{page}", timeout=60) as response:
                body = response.read().decode()
                print(f"   GET {page}: {response.status}, {len(body):,} bytes")
        with opener.open(f"{base}/admin/integrity/", timeout=60) as response:
            dashboard = response.read().decode()
        for expected in ("Sequences", "Duplicates", "integrity/integrity.css"):
            if expected not in dashboard:
                raise SystemExit(f"the dashboard lacks {expected!r}")
        with opener.open(f"{base}/static/integrity/integrity.css", timeout=60) as response:
            print(f"   GET /static/integrity/integrity.css: {response.status}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    import integrity

    location = Path(integrity.__file__).resolve()
    step(f"integrity {integrity.__version__} imported from {location}")
    if "site-packages" not in location.parts:
        raise SystemExit("integrity was not imported from the installed wheel")
    psql_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    psql_admin(f'CREATE DATABASE "{DATABASE}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            (project / "settings.py").write_text(SETTINGS)
            (project / "urls.py").write_text(URLS)
            step("migrate")
            out = django(project, "migrate", "--noinput")
            if "integrity" not in out:
                raise SystemExit(f"the app's migrations did not run:\n{out}")
            step("check")
            print("   " + django(project, "check").strip())
            step("collectstatic")
            django(project, "collectstatic", "--noinput")
            if not (project / "static-root" / "integrity" / "integrity.css").is_file():
                raise SystemExit("the app's stylesheet is not in the wheel")
            step("superuser")
            django(
                project,
                "shell",
                "-c",
                "from django.contrib.auth.models import User; "
                "User.objects.create_superuser('admin', 'admin@example.com', 'wheel-check-pw')",
            )
            step("runserver + GET the pages as the superuser")
            serve_and_get(project)
    finally:
        psql_admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    step("wheel install check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
