"""The command's colours: on a terminal (a pseudo-terminal here), none when piped, and --no-color / --force-color."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from demo.live import server_url, with_database
from demo.metrics.models import Reading
from demo.shop.models import Product
from tests.helpers import fill, make_behind, set_next

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ARGS = ["integrity", "sequences", "--database", "default", "--model", "shop.Product", "metrics.Reading"]


@pytest.fixture
def env() -> dict[str, str]:
    """The subprocess reads the test database, where shop.Product is behind and metrics.Reading near overflow."""
    make_behind(Product, 8)
    fill(Reading, range(1, 3))
    set_next(Reading, 2_000_000_000)
    url = with_database(server_url(connection.settings_dict), connection.settings_dict["NAME"])
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_COLORS", "NO_COLOR", "TERM")}
    return {**clean, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "demo.settings", "TERM": "xterm"}


def on_a_terminal(env: dict[str, str], *extra: str) -> tuple[int, str]:
    """Run the command with its stdout and stderr on a pseudo-terminal; (exit status, what the terminal got)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", *ARGS, *extra],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the follower side closed: the command ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode()


def piped(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *ARGS, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _line(output: str, model: str) -> str:
    return next(line for line in output.splitlines() if f" {model} " in ANSI.sub("", line))


def test_colour_on_a_terminal(env: dict[str, str]) -> None:
    code, out = on_a_terminal(env)

    assert code == 1  # a sequence is behind
    assert ANSI.search(out), out
    product = _line(out, "shop.Product")
    assert "\x1b[" in product and "behind" in ANSI.sub("", product)
    reading = ANSI.sub("", _line(out, "metrics.Reading"))
    assert "critical" in reading and "93.1% critical" in reading  # capacity past the threshold is marked
    assert "ALTER TABLE" in ANSI.sub("", out)  # and its fix follows the table


def test_no_colour_when_piped(env: dict[str, str]) -> None:
    result = piped(env)

    assert result.returncode == 1
    assert not ANSI.search(result.stdout) and not ANSI.search(result.stderr)
    assert "93.1% critical" in result.stdout
    assert re.search(r"^2 sequences, 1 behind, 0 fixed\.$", result.stdout, re.M)


def test_no_color_on_a_terminal_and_force_color_when_piped(env: dict[str, str]) -> None:
    code, out = on_a_terminal(env, "--no-color")  # after the sub-command, as a user types it
    assert code == 1 and not ANSI.search(out) and "behind" in out

    forced = piped(env, "--force-color")
    assert forced.returncode == 1 and ANSI.search(forced.stdout)


def test_numbers_are_right_aligned_with_separators(env: dict[str, str]) -> None:
    out = piped(env).stdout
    lines = out.splitlines()
    header = lines[0]
    reading = _line(out, "metrics.Reading")
    product = _line(out, "shop.Product")
    end = header.index("NEXT") + len("NEXT")  # numbers and their header end at the same column
    assert reading[end - len("2,000,000,000") : end] == "2,000,000,000"
    assert product[end - 2 : end + 1] == " 1 "
