"""Browser tests skip, saying what to install, where Chromium is missing; under CI they fail instead."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A test run of its own: the shared browser helper, pointed at a Chromium that does not exist.
PROBE = textwrap.dedent(
    """
    import tests.helpers as helpers

    def test_needs_a_browser():
        helpers.CHROMIUM = "/nonexistent/chromium"
        with helpers.browser_page():
            pass
    """
)


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(probe),
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            "--no-migrations",
            "--reuse-db",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_with_what_to_install_outside_ci(tmp_path: Path, ci: str | None) -> None:
    result = run_probe(tmp_path, ci)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "no Chromium at /nonexistent/chromium: install it with `apt-get install chromium`" in result.stdout


def test_fails_under_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, "true")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    assert "CI=true: the browser tests must run" in result.stdout
