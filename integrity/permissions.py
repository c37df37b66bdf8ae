"""The permissions the pages check, named once.

Each is a Django permission of the app label ``integrity``: the models'
default ``view_*`` permissions, plus the three the app declares itself
(``resync_sequence`` on ``Sequence``, ``merge_duplicates`` and
``enforce_duplicaterule`` on ``DuplicateRule``, ``resolve_eventgroup`` on
``EventGroup``). Views, template tags and tests import them from here.
"""

from __future__ import annotations

VIEW_SEQUENCES = "integrity.view_sequence"
RESYNC_SEQUENCE = "integrity.resync_sequence"
VIEW_DUPLICATES = "integrity.view_duplicaterule"
MERGE_DUPLICATES = "integrity.merge_duplicates"
ENFORCE_DUPLICATES = "integrity.enforce_duplicaterule"
VIEW_MERGE_RECORDS = "integrity.view_mergerecord"
VIEW_EVENTS = "integrity.view_eventgroup"
RESOLVE_EVENTS = "integrity.resolve_eventgroup"
DELETE_EVENTS = "integrity.delete_eventgroup"  # what a prune of old events needs
VIEW_RESYNCS = "integrity.view_sequenceresync"
# Each lets a user see one of the app's pages: any one of them opens the dashboard.
VIEWS = (VIEW_SEQUENCES, VIEW_DUPLICATES, VIEW_EVENTS, VIEW_MERGE_RECORDS, VIEW_RESYNCS)

__all__ = [
    "DELETE_EVENTS",
    "ENFORCE_DUPLICATES",
    "MERGE_DUPLICATES",
    "RESOLVE_EVENTS",
    "RESYNC_SEQUENCE",
    "VIEW_DUPLICATES",
    "VIEW_EVENTS",
    "VIEW_MERGE_RECORDS",
    "VIEW_RESYNCS",
    "VIEW_SEQUENCES",
    "VIEWS",
]
