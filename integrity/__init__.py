"""integrity: data-integrity dashboard for Django + PostgreSQL, in the admin."""

__version__ = "0.1.0"


def capture(using: object = None) -> object:
    """Record IntegrityErrors raised inside (a context manager or decorator), for code outside requests.

    ``with integrity.capture(): ...``, ``@integrity.capture()`` or
    ``@integrity.capture``; ``using`` names the database when it cannot be
    told from the error. The error propagates unchanged.
    """
    from integrity.events import Capture

    if callable(using):  # @integrity.capture without parentheses
        return Capture()(using)
    return Capture(using)  # type: ignore[arg-type]
