"""Sequences: every sequence behind a model column, compared with the column's MAX, and a safe resync.

The room holds the service (``service``), the vendor interface (``backend``)
and its PostgreSQL catalog SQL (``postgresql``), the admin views and table,
and the ``integrity sequences`` sub-command. It depends on the core modules
only.
"""

from integrity.sequences.backend import (
    NotPermitted,
    OutOfRange,
    ResyncRefused,
    SequenceLink,
    SequenceState,
    TableBusy,
)
from integrity.sequences.service import (
    AHEAD,
    BEHIND,
    BUSY,
    EMPTY,
    NOT_COMPARABLE,
    OK,
    STATUSES,
    UNREADABLE,
    AliasReport,
    ResyncResult,
    SequenceInfo,
    SequenceNotFound,
    collect,
    collect_alias,
    display_name,
    find,
    for_connection,
    named,
    parse_key,
    resync,
    resync_sql,
    resync_sql_each,
)

__all__ = [
    "AHEAD",
    "BEHIND",
    "BUSY",
    "NOT_COMPARABLE",
    "EMPTY",
    "OK",
    "STATUSES",
    "UNREADABLE",
    "AliasReport",
    "NotPermitted",
    "OutOfRange",
    "ResyncRefused",
    "ResyncResult",
    "SequenceInfo",
    "SequenceLink",
    "SequenceNotFound",
    "SequenceState",
    "TableBusy",
    "collect",
    "collect_alias",
    "display_name",
    "find",
    "for_connection",
    "named",
    "parse_key",
    "resync",
    "resync_sql",
    "resync_sql_each",
]
