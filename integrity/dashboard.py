"""The dashboard's summary cards: one small dataclass per card, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from integrity import sequences


@dataclass
class Card:
    title: str
    value: int
    detail: str
    level: str  # "ok", "warning" or "critical"
    query: str  # filter query string for the detail page


def sequence_cards() -> list[Card]:
    """Cards for the sequences: how many are behind, how many near overflow."""
    rows = [info for report in sequences.collect() for info in report.sequences]
    behind = sum(r.status == sequences.BEHIND for r in rows)
    critical = sum(r.capacity_level == "critical" for r in rows)
    near = sum(r.capacity_level != "ok" for r in rows)
    return [
        Card(
            _("Sequences behind"),
            behind,
            _("the next insert collides") if behind else _("of %(n)d sequences") % {"n": len(rows)},
            "critical" if behind else "ok",
            "status=behind",
        ),
        Card(
            _("Near overflow"),
            near,
            _("over %(pct)d%% of their range used")
            % {"pct": round(sequences.settings.CAPACITY_WARNING * 100)},
            "critical" if critical else ("warning" if near else "ok"),
            "capacity=warning",
        ),
    ]
