"""Why a merge (or its undo) is refused: one exception per reason, each with its HTTP status.

Apart from the plan so that the conflicts module, which the plan uses, can
raise them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from integrity.merge.plan import Plan

__all__ = [
    "BadChoice",
    "GroupGone",
    "MergeBusy",
    "MergeRefused",
    "NeedsChoice",
    "NotDuplicates",
    "StalePreview",
    "Unsupported",
]


class MergeRefused(Exception):
    """The merge (or undo) cannot go ahead; nothing was changed. ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, plan: Plan | None = None) -> None:
        super().__init__(message)
        self.plan = plan


class GroupGone(MergeRefused):
    status = 404


class NotDuplicates(MergeRefused):
    status = 400


class BadChoice(MergeRefused):
    status = 400


class StalePreview(MergeRefused):
    """The data changed since the preview; ``plan`` is the new one."""

    status = 409


class NeedsChoice(MergeRefused):
    """Conflicts between rows that carry their own data: the admin must choose; ``plan`` lists them."""

    status = 409


class MergeBusy(MergeRefused):
    status = 409


class Unsupported(MergeRefused):
    """A reference the merge cannot re-point and record exactly: refused before anything is written."""

    status = 409
