"""The dashboard (``/admin/integrity/``, the app index): a summary card per problem, from every room.

``cards`` computes them (no HTTP; the template tags of the app index show
them); ``views`` serves the one card that scans, lazily, on the duplicates
admin's ``summary/`` route. It reads the sequences, duplicates and events
rooms; no room depends on it.
"""

from integrity.dashboard.cards import (
    Card,
    GroupCount,
    count_groups,
    duplicate_cards,
    duplicate_groups_card,
    event_cards,
    sequence_cards,
)

__all__ = [
    "Card",
    "GroupCount",
    "count_groups",
    "duplicate_cards",
    "duplicate_groups_card",
    "event_cards",
    "sequence_cards",
]
