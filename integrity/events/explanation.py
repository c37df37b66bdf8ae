"""What an explanation of an event group is: its cause (a stable code and words), text, fix and suggestions.

Shared by ``integrity.events.explain`` (which decides causes), ``outage``
(the sequences that ran out) and ``causes`` (which keeps each group's
explanation with it, as decided from the evidence at the time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

RESYNC, DUPLICATES, WIDEN, NONE = "resync", "duplicates", "widen", "none"

# Stable codes of the causes (Explanation.code), for templates and tests; ``cause`` is translated.
SEQUENCE_BEHIND = "sequence_behind"
EXPLICIT_IDS = "explicit_ids"
RACE = "race"
EXISTING_DUPLICATES = "existing_duplicates"
DUPLICATE_VALUE = "duplicate_value"  # "Value already taken"
MISSING_PARENT = "missing_parent"
STILL_REFERENCED = "still_referenced"
MISSING_VALUE = "missing_value"
CHECK_FAILED = "check_failed"
OVERLAP = "overlap"
SEQUENCE_EXHAUSTED = "sequence_exhausted"
COLUMN_FULL = "column_full"
UNKNOWN_CAUSE = "unknown"


@dataclass
class Fix:
    """The action the page offers: a resync of one sequence, a rule's duplicate groups, or SQL to widen a column."""

    label: str
    kind: str  # RESYNC, DUPLICATES, WIDEN or NONE
    sequence_key: str | None = None  # the sequences page's resync form posts it as "key"
    rule_key: str | None = None  # Rule.key: /admin/integrity/duplicaterule/rule/?rule=<key>
    sql: str | None = None  # WIDEN: the statements to run
    migration: str | None = None  # WIDEN: the Django migration to write instead


@dataclass
class Explanation:
    """The likely cause of a group's errors, in words, with a fix and what to change in the code.

    ``decided`` is when it was decided (kept with the group: ``causes``);
    ``fresh`` says it was decided just now, from the database's state.
    """

    cause: str
    text: str
    fix: Fix | None
    suggestions: list[str] = field(default_factory=list)
    code: str = UNKNOWN_CAUSE
    decided: datetime | None = None
    fresh: bool = False

    def as_json(self) -> dict[str, Any]:
        """What ``causes`` keeps with the group (``decided`` and ``fresh`` are the group's own fields)."""
        return {
            "cause": str(self.cause),
            "text": str(self.text),
            "fix": None if self.fix is None else {k: v for k, v in asdict(self.fix).items() if v is not None},
            "suggestions": [str(s) for s in self.suggestions],
        }

    @classmethod
    def from_json(cls, code: str, data: dict[str, Any], decided: datetime | None) -> Explanation:
        fix = data.get("fix")
        return cls(
            cause=str(data.get("cause", "")),
            text=str(data.get("text", "")),
            fix=Fix(**fix) if isinstance(fix, dict) else None,
            suggestions=[str(s) for s in data.get("suggestions", [])],
            code=code,
            decided=decided,
        )
