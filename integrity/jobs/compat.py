"""Django's Tasks framework, from the one place that picks it.

Django 6.x ships it as ``django.tasks``; on 5.2 the ``django-tasks`` backport
has the same API as ``django_tasks``. Everything else imports ``task`` and
``task_backends`` from here, so the choice is made once.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any

# Django 6.x first; the backport only where Django has no Tasks framework.
BASE = "django.tasks" if find_spec("django.tasks") else "django_tasks"
_tasks: Any = import_module(BASE)
task: Any = _tasks.task
task_backends: Any = _tasks.task_backends
_exceptions: Any = import_module(f"{BASE}.exceptions")
InvalidTaskBackend: type[Exception] = getattr(
    _exceptions, "InvalidTaskBackend", getattr(_exceptions, "InvalidTaskBackendError", Exception)
)


def _no_worker_classes() -> tuple[type[Any], ...]:
    """The backends that run a task in the enqueuing process (immediate) or not at all (dummy).

    Both modules' when both are installed: a project on Django 6 may still name
    the backport's classes in ``TASKS``.
    """
    found: list[type[Any]] = []
    for base in dict.fromkeys((BASE, "django_tasks")):
        if find_spec(base) is None:
            continue
        found.append(import_module(f"{base}.backends.immediate").ImmediateBackend)
        found.append(import_module(f"{base}.backends.dummy").DummyBackend)
    return tuple(found)


NO_WORKER = _no_worker_classes()

__all__ = ["NO_WORKER", "InvalidTaskBackend", "task", "task_backends"]
