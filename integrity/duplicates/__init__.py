"""Duplicates: every uniqueness rule the models declare, how the database enforces it, and the rows that break it.

The room holds the rules (``rules``), their enforcement as the catalog says
(``enforcement``, SQL in ``postgresql``), the scans (``service``, and
``chunked`` for tables too big for one statement), what references a row
(``relations``), the admin views and tables, and the ``integrity
duplicates`` sub-command. It depends on the core modules only.
"""

from integrity.duplicates.chunked import ChunkedScan, scan_chunked
from integrity.duplicates.rules import Rule, RuleNotFound, get_rule, rules_for
from integrity.duplicates.service import (
    Group,
    Reference,
    ScanResult,
    ScanTimedOut,
    group_of,
    keyed,
    references,
    scan,
    totals,
)

__all__ = [
    "ChunkedScan",
    "Group",
    "Reference",
    "Rule",
    "RuleNotFound",
    "ScanResult",
    "ScanTimedOut",
    "get_rule",
    "group_of",
    "keyed",
    "references",
    "rules_for",
    "scan",
    "scan_chunked",
    "totals",
]
