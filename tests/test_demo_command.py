"""The README's demo command, for real: ``python manage.py demo`` in a subprocess, on a fresh database.

It migrates an empty database, loads the broken data and serves the admin; the
test logs in over HTTP with the printed credentials and gets
``/admin/integrity/``. This is what a newcomer runs first, on every Python and
Django of the CI matrix.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATABASE = f"integrity_demo_command{os.environ.get('INTEGRITY_TEST_DB_SUFFIX', '')}"
# Migrating an empty database and loading the demo data, on a loaded 2-core machine.
START_TIMEOUT = 300


def server_url(name: str) -> str:
    """A libpq URL for database ``name`` on the server the tests use (TCP or a socket directory)."""
    db = settings.DATABASES["default"]
    user = urllib.parse.quote(db.get("USER") or "postgres")
    password = db.get("PASSWORD") or ""
    auth = f"{user}:{urllib.parse.quote(password)}" if password else user
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host") or "localhost"
    port = db.get("PORT") or ""
    if host.startswith("/"):
        # A socket directory travels as the host query parameter.
        suffix = f"?host={urllib.parse.quote(host)}" + (f"&port={port}" if port else "")
        return f"postgresql://{auth}@/{name}{suffix}"
    return f"postgresql://{auth}@{host}{':' + str(port) if port else ''}/{name}"


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(server_url("postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


@pytest.fixture
def fresh_database() -> Iterator[str]:
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
    _admin(drop)
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    yield server_url(DATABASE)
    _admin(drop)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Output:
    """The demo's combined output, read by a thread so the pipe never fills up."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def wait_for(predicate, timeout: float, proc: subprocess.Popen[str], output: Output) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode}:\n{output.text}")
        time.sleep(0.5)
    pytest.fail(f"the demo did not get there in {timeout} s:\n{output.text}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_the_readme_demo_command_serves_the_dashboard(fresh_database: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": fresh_database, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the demo's own settings, as the README runs it
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "demo", f"127.0.0.1:{port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/admin/login/"), START_TIMEOUT, proc, output)
        text = output.text
        assert "Admin login:  username 'admin'  password 'admin'" in text
        assert f"Open:         {base}/admin/integrity/" in text
        # The system checks that stopped the demo on Django 6.x, and the missing static/ directory.
        assert "postgres.E005" not in text
        assert "staticfiles.W004" not in text

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/admin/login/", timeout=30) as response:
            login_page = response.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page)
        assert token, login_page
        form = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": token.group(1),
                "username": "admin",
                "password": "admin",
                "next": "/admin/integrity/",
            }
        ).encode()
        with opener.open(f"{base}/admin/login/?next=/admin/integrity/", data=form, timeout=60) as response:
            assert response.status == 200
            assert response.url == f"{base}/admin/integrity/"
            page = response.read().decode()
        # The dashboard itself, under the demo site's own branding (templates/admin/base_site.html).
        assert "integrity demo" in page
        assert "Sequences" in page
        assert "behind" in page
        with opener.open(f"{base}/static/demo/demo.css", timeout=30) as response:
            assert response.status == 200
        with opener.open(f"{base}/static/integrity/integrity.css", timeout=30) as response:
            assert response.status == 200
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
