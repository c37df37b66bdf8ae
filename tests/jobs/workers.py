"""Real task workers for the jobs tests: ``db_worker`` (django-tasks-db) and ``rqworker`` on a redis-server.

Each runs as its own process, on the test databases (``tests.worker_settings``),
with the settings the test overrides passed along; the test ends it (or kills it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from integrity.models import Job
from tests.conftest import RULES

ROOT = Path(__file__).resolve().parent.parent.parent
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def _env(extra_settings: dict[str, Any]) -> dict[str, str]:
    names = {alias: connections[alias].settings_dict["NAME"] for alias in ("default", "other")}
    wanted = {"INTEGRITY_DUPLICATE_RULES": RULES, **extra_settings}
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "INTEGRITY_WORKER_DB_NAMES": json.dumps(names),
        "INTEGRITY_WORKER_SETTINGS": json.dumps(wanted),
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def worker(command: list[str], **extra_settings: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process running ``manage.py <command>``; stopped (SIGTERM, then SIGKILL) at the end."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", *command], cwd=ROOT, env=_env(extra_settings), stdout=log, stderr=log
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
        if output.strip():
            print(f"--- worker {' '.join(command)} ---\n{output[-4000:]}")  # shown when the test fails


def db_worker(**extra_settings: Any) -> Any:
    command = ["db_worker", "--backend", "db", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
    return worker(command, **extra_settings)


def rq_worker(**extra_settings: Any) -> Any:
    command = ["rqworker", "default", "--job-class", "django_tasks_rq.backend.Job"]
    return worker([*command, "--worker-class", "rq.worker.SimpleWorker"], **extra_settings)


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    """Poll ``condition`` every 0.1 s; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")


def job_status(pk: int) -> Job:
    return Job.objects.get(pk=pk)


@contextmanager
def redis_server() -> Iterator[int]:
    """A redis-server of our own on the loopback port the test settings use, no persistence; stopped after."""
    if not os.path.exists(REDIS):
        if os.environ.get("CI") == "true":  # as the browser tests: CI must run them, not skip them
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = int(os.environ["INTEGRITY_TEST_REDIS_PORT"])
    workdir = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [
            REDIS,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
