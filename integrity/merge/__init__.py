"""Merge: duplicate rows merged into one survivor (preview, then confirm), recorded, and undone.

The room holds the plan (``plan``) and the conflicts it must settle
(``conflicts``), the merge itself (``execute``, SQL in ``postgresql``), its
undo (``undo``: ``integrity.merge.undo.undo``, the module keeps the name), a
whole rule at once (``bulk``), the text and JSON reports, the admin views and
the ``integrity merge`` / ``integrity undo`` sub-commands. It builds on
:mod:`integrity.duplicates`.
"""

from integrity.merge.bulk import MergeAllResult, merge_all
from integrity.merge.exceptions import (
    BadChoice,
    GroupGone,
    MergeBusy,
    MergeRefused,
    NeedsChoice,
    NotDuplicates,
    StalePreview,
)
from integrity.merge.execute import merge
from integrity.merge.plan import Plan, build_plan
from integrity.merge.undo import UndoRefused

__all__ = [
    "BadChoice",
    "GroupGone",
    "MergeAllResult",
    "MergeBusy",
    "MergeRefused",
    "NeedsChoice",
    "NotDuplicates",
    "Plan",
    "StalePreview",
    "UndoRefused",
    "build_plan",
    "merge",
    "merge_all",
]
