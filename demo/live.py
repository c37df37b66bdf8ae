"""The README's demo command, run for real on a database of its own: for the demo test and the screenshots.

``fresh_database`` creates an empty database on a PostgreSQL server (and drops
it afterwards); ``demo_server`` runs ``python manage.py demo`` on it in a
subprocess until the block ends and yields its base URL and output.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Migrating an empty database and loading the demo data, on a loaded 2-core machine.
START_TIMEOUT_S = 300


def with_database(url: str, name: str) -> str:
    """``url`` (a libpq URL) pointing at database ``name`` of the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _drop(admin_url: str, name: str, create: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """An empty database ``name`` on the server of ``server_url`` (dropped first and afterwards); its URL."""
    admin_url = with_database(server_url, "postgres")
    _drop(admin_url, name, create=True)
    try:
        yield with_database(server_url, name)
    finally:
        _drop(admin_url, name, create=False)


def server_url(db: Mapping[str, Any]) -> str:
    """A libpq URL of the server of a Django ``DATABASES`` entry (TCP, or a socket directory as the host parameter)."""
    user = quote(db.get("USER") or "postgres")
    password = db.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}" if password else user
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    if host.startswith("/"):
        return f"postgresql://{auth}@/postgres?host={quote(host)}" + port.replace(":", "&port=")
    return f"postgresql://{auth}@{host}{port}/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Demo:
    base: str  # http://127.0.0.1:PORT
    log: IO[str]

    @property
    def output(self) -> str:
        """What the demo printed so far (stdout and stderr)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def _default_sigint() -> None:
    # A script run in the background has SIGINT ignored, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def demo_server(database_url: str, timeout: float = START_TIMEOUT_S) -> Iterator[Demo]:
    """Run ``python manage.py demo 127.0.0.1:PORT`` on ``database_url`` until the block ends.

    Yields once ``/admin/login/`` answers. Raises ``RuntimeError`` (with the
    demo's output) when the demo exits or does not answer in ``timeout`` s.
    """
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the demo's own settings, as the README runs it
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo", f"127.0.0.1:{port}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
        demo = Demo(f"http://127.0.0.1:{port}", log)
        try:
            _wait_until_up(f"{demo.base}/admin/login/", proc, timeout, demo)
            yield demo
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=20)


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float, demo: Demo) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the demo exited with status {proc.returncode}:\n{demo.output}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the demo did not answer {url} within {timeout:.0f} s:\n{demo.output}")
