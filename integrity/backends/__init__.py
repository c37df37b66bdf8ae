"""Vendor-specific SQL lives here, one module per database vendor.

``for_connection`` returns the backend for a connection, or ``None`` when the
vendor is not supported yet (the pages then say so instead of failing).
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from integrity.backends.base import SequenceBackend


def for_connection(connection: BaseDatabaseWrapper) -> SequenceBackend | None:
    """Return the sequence backend for ``connection``'s vendor, if there is one."""
    if connection.vendor == "postgresql":
        from integrity.backends.postgresql import PostgresSequenceBackend

        return PostgresSequenceBackend(connection)
    return None
