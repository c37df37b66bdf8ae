"""Where in the project's code an IntegrityError came from: the innermost frames of its traceback.

Read from the exception's own traceback when it is recorded, so it costs
nothing unless an error is recorded: no frame is looked at, no query made,
on the path that raises nothing. The traceback runs from where the error was
caught (Django's handler for the middleware, the ``capture()`` block, the
application's ``except``) down to the driver; in an async view it includes
the awaiting coroutines as well as the thread that ran the query.

A frame is the project's when its file is none of these: Django, an
installed package (``site-packages``, ``dist-packages``, the interpreter's
``sysconfig`` paths, which also hold the standard library), this app, or no
file at all (``<frozen …>``, ``<string>``). What is kept of each, innermost
first, at most ``INTEGRITY_EVENT_FRAMES``: the file (relative to the
project's ``BASE_DIR`` when under it), the line number, the function and the
line of source, each cut to a few hundred characters.
"""

from __future__ import annotations

import linecache
import os
import sysconfig
from functools import cache, lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import django
from django.conf import settings as django_settings

from integrity.conf import settings

FILE_CHARS = 300
FUNCTION_CHARS = 100
CODE_CHARS = 200
MAX_LOCATIONS = 20  # distinct innermost locations counted per group (its other keys are bounded the same way)
SAMPLES_READ = 50  # newest samples a group's page reads for the callers of its top locations
PACKAGE_DIRS = ("site-packages", "dist-packages")


def _cut(text: str, limit: int) -> str:
    # NUL cannot be stored in PostgreSQL text or jsonb (as recording.no_nul); "…" says where it was cut.
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cache
def _skipped_roots() -> tuple[str, ...]:
    """The directories whose files are not the project's: Django, this app, the interpreter's paths."""
    # This app's package: the directory above this room's.
    roots = {os.path.dirname(django.__file__), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            roots.add(path)
    return tuple(sorted(os.path.normcase(os.path.abspath(r)) + os.sep for r in roots))


@lru_cache(maxsize=4096)  # one entry per source file seen: bounded by the modules a process imports
def is_project_file(filename: str) -> bool:
    """Whether ``filename`` is the project's own code (not Django, an installed package, the stdlib or this app)."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.normcase(os.path.abspath(filename))
    if any(part in PACKAGE_DIRS for part in Path(path).parts):
        return False
    return not any(path.startswith(root) for root in _skipped_roots())


def _project_frame(filename: str, module: dict[str, Any]) -> bool:
    # A compiled extension's frames (Cython) name their source relative to the package
    # ("psycopg_binary/_psycopg/waiting.pyx"): its module's own file says where it is installed.
    if not os.path.isabs(filename):
        filename = str(module.get("__file__") or "")
    return is_project_file(filename)


def _shown_path(filename: str) -> str:
    """``filename`` relative to the project's ``BASE_DIR`` when under it, else as it is."""
    base = getattr(django_settings, "BASE_DIR", None)
    path = os.path.abspath(filename)
    if base:
        root = os.path.abspath(str(base))
        if path.startswith(root + os.sep):
            return os.path.relpath(path, root)
    return path


def frames(exc: BaseException, limit: int | None = None) -> list[dict[str, Any]]:
    """The innermost frames of the project's code in ``exc``'s traceback, innermost first, at most ``limit``.

    Each: ``{"file", "line", "function", "code"}``. ``limit`` defaults to
    ``INTEGRITY_EVENT_FRAMES``; 0 keeps none.
    """
    limit = settings.EVENT_FRAMES if limit is None else limit
    if limit <= 0:
        return []
    chain: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        chain.append(tb)
        tb = tb.tb_next
    kept: list[dict[str, Any]] = []
    for tb in reversed(chain):  # innermost first
        code = tb.tb_frame.f_code
        if not _project_frame(code.co_filename, tb.tb_frame.f_globals):
            continue
        kept.append(
            {
                "file": _cut(_shown_path(code.co_filename), FILE_CHARS),
                "line": tb.tb_lineno,
                "function": _cut(code.co_qualname, FUNCTION_CHARS),
                "code": _cut(linecache.getline(code.co_filename, tb.tb_lineno).strip(), CODE_CHARS),
            }
        )
        if len(kept) >= limit:
            break
    return kept


def key(frame: dict[str, Any]) -> str:
    """The group's counter key of a frame: ``file:line``."""
    return f"{frame['file']}:{frame['line']}"


def top(counter: Any, limit: int = MAX_LOCATIONS) -> list[dict[str, Any]]:
    """A group's ``locations`` counter as a list, busiest first: ``{"file", "line", "function", "code", "count"}``."""
    if not isinstance(counter, dict):
        return []
    found: list[dict[str, Any]] = []
    for name, entry in counter.items():
        if not isinstance(entry, dict):
            continue
        found.append(
            {
                "file": str(entry.get("file", name)),
                "line": int(entry.get("line") or 0),
                "function": str(entry.get("function", "")),
                "code": str(entry.get("code", "")),
                "count": int(entry.get("count") or 0),
            }
        )
    found.sort(key=lambda e: (-int(e["count"]), str(e["file"]), int(e["line"])))
    return found[:limit]
