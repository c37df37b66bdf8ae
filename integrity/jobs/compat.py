"""Django's Tasks framework, from the one place that picks it.

Django 6.x ships it as ``django.tasks``; on 5.2 the ``django-tasks`` backport
has the same API as ``django_tasks``. Everything else imports ``task`` and
``task_backends`` from here, so the choice is made once.
"""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import task, task_backends  # type: ignore[import-not-found,unused-ignore]
    from django.tasks.backends.dummy import DummyBackend  # type: ignore[import-not-found,unused-ignore]
    from django.tasks.backends.immediate import ImmediateBackend  # type: ignore[import-not-found,unused-ignore]
    from django.tasks.exceptions import InvalidTaskBackend  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Django 5.2: the backport
    from django_tasks import task, task_backends  # type: ignore[no-redef,unused-ignore]
    from django_tasks.backends.dummy import DummyBackend  # type: ignore[no-redef,unused-ignore]
    from django_tasks.backends.immediate import ImmediateBackend  # type: ignore[no-redef,unused-ignore]
    from django_tasks.exceptions import (  # type: ignore[no-redef,unused-ignore]
        InvalidTaskBackendError as InvalidTaskBackend,
    )


def _no_worker_classes() -> tuple[type[Any], ...]:
    """The backends that run a task in the enqueuing process (immediate) or not at all (dummy).

    Both modules' when both are installed: a project on Django 6 may still name
    the backport's classes in ``TASKS``.
    """
    found: list[type[Any]] = [ImmediateBackend, DummyBackend]
    try:
        from django_tasks.backends.dummy import DummyBackend as BackportDummy
        from django_tasks.backends.immediate import ImmediateBackend as BackportImmediate
    except ImportError:
        pass
    else:
        found += [BackportImmediate, BackportDummy]
    return tuple(found)


NO_WORKER = _no_worker_classes()

__all__ = ["NO_WORKER", "InvalidTaskBackend", "task", "task_backends"]
