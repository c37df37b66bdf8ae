"""Running ``migrate`` (or Django's test runner) for real, in a subprocess, on a fresh database.

The small project of ``tests.migrate_project`` on a database of its own on
the test server, with the environment choosing ``INTEGRITY_AFTER_MIGRATE``
and the dedupe app's migrations module: what a CI job or a maintainer's
release sees, exit code and output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings

from demo import live

SUFFIX = os.environ.get("INTEGRITY_TEST_DB_SUFFIX", "")
TIMEOUT_S = 300  # a migrate of the small project takes seconds; the machine may be loaded


@dataclass
class Project:
    url: str  # the fresh database
    test_database: str  # the name Django's test runner builds, dropped afterwards too
    env: dict[str, str]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``python -m django ARGS`` with the project's settings on the fresh database."""
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=live.PROJECT_ROOT,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, connect_timeout=10) as conn:
            return conn.execute(statement, params).fetchall()


@contextmanager
def project(name: str, **env: str) -> Iterator[Project]:
    """A fresh database ``name`` (and its test database's name, both dropped afterwards) and the environment."""
    with ExitStack() as stack:
        url = stack.enter_context(
            live.fresh_database(live.server_url(settings.DATABASES["default"]), f"{name}{SUFFIX}")
        )
        test_name = f"test_{name}{SUFFIX}"
        stack.enter_context(live.fresh_database(live.server_url(settings.DATABASES["default"]), test_name))
        environ = {
            k: v for k, v in os.environ.items() if k not in ("INTEGRITY_AFTER_MIGRATE", "DEDUPE_MIGRATIONS")
        }
        environ.update(
            DATABASE_URL=url,
            DJANGO_SETTINGS_MODULE="tests.migrate_project",
            TEST_DATABASE_NAME=test_name,
            PYTHONPATH=os.pathsep.join([str(live.PROJECT_ROOT), environ.get("PYTHONPATH", "")]),
            PYTHONUNBUFFERED="1",
            **env,
        )
        yield Project(url, test_name, environ)
