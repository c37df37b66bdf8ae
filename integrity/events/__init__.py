"""Events: IntegrityErrors captured as they happen, parsed, grouped, counted and explained.

The room holds the recording (``recording``: the connection hooks, the
middleware's and ``integrity.capture``'s writer), the parser of the database's
message (``violations``), the explanations and the evidence they read
(``explain``, ``evidence``), retention, the admin views and tables, and the
``integrity events`` / ``integrity prune`` sub-commands. It reads
:mod:`integrity.sequences` and :mod:`integrity.duplicates`; nothing depends on
it but the pages, the middleware and the command.
"""

from integrity.events.recording import MAX_SOURCES, Capture, collecting, install, record, record_handled

__all__ = ["MAX_SOURCES", "Capture", "collecting", "install", "record", "record_handled"]
