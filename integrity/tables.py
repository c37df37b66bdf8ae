"""django-tables2 tables of the integrity pages."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from integrity.sequences import AHEAD, BEHIND, EMPTY, SequenceInfo


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


class SequenceTable(tables.Table):
    """Every sequence with its status; each behind row gets a Resync button."""

    model = tables.Column(verbose_name=_("Model"))
    database = tables.Column(verbose_name=_("Database"))
    table = tables.Column(verbose_name=_("Table"))
    column = tables.Column(verbose_name=_("Column"))
    sequence = tables.Column(verbose_name=_("Sequence"))
    types = tables.Column(verbose_name=_("Types"), accessor="column_type", order_by=("column_type",))
    next_value = tables.Column(verbose_name=_("Next value"), attrs={"td": {"class": "num"}})
    max_value = tables.Column(verbose_name=_("Column MAX"), attrs={"td": {"class": "num"}}, default=None)
    status = tables.Column(verbose_name=_("Status"))
    capacity = tables.Column(verbose_name=_("Capacity used"), default=None)
    actions = tables.Column(verbose_name=_("Actions"), accessor="key", orderable=False)

    class Meta:
        template_name = "integrity/sequence_table.html"
        prefix = "seq-"
        attrs = {"class": "integrity-table", "id": "sequence-table"}
        row_attrs = {
            "id": lambda record: f"seq-{record.database}-{record.model}-{record.column}".replace(".", "-"),
            "data-status": lambda record: record.status,
        }
        orderable = True

    def __init__(
        self, *args: Any, resync_url: str = "", lower_url: str = "", can_resync: bool = False, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.resync_url = resync_url
        self.lower_url = lower_url
        self.can_resync = can_resync

    def render_next_value(self, value: int | None) -> str:
        return _number(value)

    def render_max_value(self, value: int | None) -> str:
        return _number(value)

    def render_types(self, record: SequenceInfo) -> str:
        mismatch = format_html(
            ' <span class="integrity-badge critical" title="{}">{}</span>',
            _("The sequence can hand out values the column cannot hold."),
            _("type mismatch"),
        )
        return format_html(
            "{} ← {}{}", record.column_type, record.sequence_type, mismatch if record.type_mismatch else ""
        )

    def render_status(self, record: SequenceInfo) -> str:
        return format_html('<span class="integrity-badge status-{}">{}</span>', record.status, record.status)

    def render_capacity(self, record: SequenceInfo) -> str:
        if record.capacity is None:
            return "—"
        percent = record.capacity * 100
        return format_html(
            '<span class="integrity-meter {}" title="{}"><span style="width: {}%"></span></span> {}%',
            record.capacity_level,
            record.capacity_level,
            f"{min(percent, 100):.1f}",
            f"{percent:.2f}" if percent < 1 else f"{percent:.1f}",
        )

    def _form(self, url: str, record: SequenceInfo, label: str, htmx: bool) -> str:
        request = getattr(self, "request", None)
        token = get_token(request) if request is not None else ""
        hx = format_html(' hx-post="{}" hx-target="closest tr" hx-swap="outerHTML"', url) if htmx else ""
        return format_html(
            '<form method="post" action="{}"{}>'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="key" value="{}">'
            '<button type="submit" class="button">{}</button></form>',
            url,
            hx,
            token,
            record.key,
            label,
        )

    def render_actions(self, record: SequenceInfo) -> str:
        if not self.can_resync:
            return ""
        if record.status == BEHIND:
            return self._form(self.resync_url, record, str(_("Resync")), htmx=True)
        gap = record.status == AHEAD or (record.status == EMPTY and (record.next_value or 0) != record.start)
        if gap:
            href = f"{self.lower_url}?{urlencode({'key': record.key})}"
            return format_html('<a class="integrity-link" href="{}">{}</a>', href, _("Lower…"))
        return ""
