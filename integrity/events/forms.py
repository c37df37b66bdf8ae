"""What the events pages read from the query string, as Django forms."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from integrity.events import lifecycle
from integrity.pages import FilterForm, text_field

__all__ = ["HANDLED", "RANGES", "STATE_FILTERS", "EventFilterForm"]

RANGES = {
    "1h": (timedelta(hours=1), gettext_lazy("Last hour")),
    "24h": (timedelta(hours=24), gettext_lazy("Last 24 hours")),
    "7d": (timedelta(days=7), gettext_lazy("Last 7 days")),
    "30d": (timedelta(days=30), gettext_lazy("Last 30 days")),
    "all": (None, gettext_lazy("All time")),
}
HANDLED = {"yes": gettext_lazy("Some handled"), "no": gettext_lazy("None handled")}
# "" (the default) is unresolved and regressed.
STATE_FILTERS = {
    "": gettext_lazy("Unresolved and regressed"),
    **lifecycle.STATES,
    "all": gettext_lazy("All states"),
}


def _is_model(label: str) -> bool:
    try:
        apps.get_model(label)
    except (LookupError, ValueError):
        return False
    return True


class EventFilterForm(FilterForm):
    """The events page's filters, each checked against its choices: one that is not is a 400 that says so.

    ``choices`` are the values the kind, model and database filters offer
    (what the data holds, plus the known kinds and configured databases); a
    model may also be any installed model that has no event yet. Every wrong
    filter is named in one message, never an empty page.
    """

    kind = text_field()
    model = text_field()
    database = text_field()
    handled = text_field()
    range = text_field()
    state = text_field()
    q = text_field()  # the search: every word in the constraint, table, model or sequence

    def __init__(self, data: Any, choices: dict[str, list[str]]) -> None:
        super().__init__(data)
        self.choices = choices

    def clean(self) -> dict[str, Any]:
        wanted = super().clean() or {}
        choices, problems = self.choices, []
        for name in ("kind", "database"):
            if wanted[name] and wanted[name] not in choices[name]:
                shown = ", ".join(f"“{c}”" for c in choices[name])
                problems.append(_("%(name)s must be one of %(choices)s") % {"name": name, "choices": shown})
        if wanted["model"] and wanted["model"] not in choices["model"] and not _is_model(wanted["model"]):
            problems.append(_("model must be an installed model, as app_label.ModelName"))
        if wanted["handled"] and wanted["handled"] not in HANDLED:
            problems.append(_("handled must be “yes” or “no”"))
        if wanted["range"] and wanted["range"] not in RANGES:
            problems.append(_("range must be one of %(choices)s") % {"choices": ", ".join(RANGES)})
        if wanted["state"] not in STATE_FILTERS:
            shown = ", ".join(f"“{c}”" for c in STATE_FILTERS if c)
            problems.append(_("state must be one of %(choices)s") % {"choices": shown})
        if problems:
            raise ValidationError(
                _("Invalid filter: %(problems)s.") % {"problems": "; ".join(problems)}, code="400"
            )
        return wanted
