"""integrity: data-integrity dashboard for Django + PostgreSQL, in the admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from django.db.models import Model

    from integrity.events.recording import Capture

__version__ = "0.1.0"

F = TypeVar("F", bound=Callable[..., Any])


@overload
def capture(using: F) -> F: ...
@overload
def capture(using: str | None = None) -> Capture: ...
def capture(using: Any = None) -> Any:
    """Record IntegrityErrors raised inside (a context manager or decorator), for code outside requests.

    ``with integrity.capture(): ...``, ``@integrity.capture()`` or
    ``@integrity.capture``; ``using`` names the database when it cannot be
    told from the error. The error propagates unchanged.
    """
    from integrity.events.recording import Capture

    if callable(using):  # @integrity.capture without parentheses
        return Capture()(using)
    return Capture(using)


def field_errors(
    exc: BaseException,
    *,
    using: str | None = None,
    instance: Model | None = None,
    non_field_key: str = "__all__",
) -> dict[str, list[str]]:
    """A unique violation as ``{field: [message]}``, the errors the form's own validation would give; ``{}``
    for any other error (re-raise it). See ``integrity.events.field_errors``."""
    from integrity.events.field_errors import field_errors as errors

    return errors(exc, using=using, instance=instance, non_field_key=non_field_key)
