"""The sequences page's table: every sequence with its status and, for the behind ones, a Resync button."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.utils.functional import cached_property
from django.utils.html import escape, format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from integrity.conf import settings
from integrity.sequences.fixes import widen_fix
from integrity.sequences.service import AHEAD, BEHIND, EMPTY, TYPE_MISMATCH, SequenceInfo
from integrity.tables import RowsTable, breakable, cells_html

# The form of "Resync selected" (sequences.html); the row checkboxes join it with form="…",
# since each behind row holds its own Resync form and forms cannot nest.
BULK_FORM = "sequence-bulk"


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


# Badge classes of the statuses shown instead of a fine one (SequenceInfo.shown_status).
LEVEL_CLASSES = {"critical": "critical", "warning": "warning", TYPE_MISMATCH: "critical"}


def _badge(text: str, cls: str, title: str) -> str:
    title_attr = f' title="{escape(title)}"' if title else ""
    return f'<span class="integrity-badge {escape(cls)}"{title_attr}>{escape(text)}</span>'


def _folded(summary: str, body: str, kind: str) -> str:
    return (
        f'<details class="integrity-details {kind}"><summary>{escape(summary)}</summary>'
        f'<div class="integrity-details-body">{body}</div></details>'
    )


def row_dom_id(record: SequenceInfo) -> str:
    """The ``id`` of the sequence's row on the sequences page (the dashboard links to it)."""
    return f"seq-{record.database}-{record.model}-{record.column}".replace(".", "-")


def _has_gap(record: SequenceInfo) -> bool:
    return record.status == AHEAD or (record.status == EMPTY and (record.next_value or 0) != record.start)


class SequenceTable(RowsTable):
    """Every sequence with its status; each behind row gets a Resync button."""

    select = tables.Column(
        verbose_name="", accessor="key", orderable=False, attrs={"th": {"class": "action-checkbox-column"}}
    )
    model = tables.Column(verbose_name=_("Model"))
    column = tables.Column(verbose_name=_("Column"))
    status = tables.Column(verbose_name=_("Status"))
    next_value = tables.Column(verbose_name=_("Next value"), attrs={"td": {"class": "num"}})
    max_value = tables.Column(verbose_name=_("Column MAX"), attrs={"td": {"class": "num"}}, default=None)
    capacity = tables.Column(verbose_name=_("Capacity used"), default=None)
    actions = tables.Column(
        verbose_name=_("Actions"), accessor="key", orderable=False, attrs={"th": {"class": "actions"}}
    )
    database = tables.Column(verbose_name=_("Database"))
    table = tables.Column(verbose_name=_("Table"))
    sequence = tables.Column(verbose_name=_("Sequence"))
    types = tables.Column(verbose_name=_("Types"), accessor="column_type", order_by=("column_type",))

    class Meta:
        template_name = "integrity/sequence_table.html"
        prefix = "seq-"
        attrs = {"class": "integrity-table", "id": "sequence-table"}
        orderable = True
        empty_text = _("No sequence matches these filters.")

    count_label = ngettext_lazy("%(shown)s sequence", "%(shown)s sequences", "count")

    def __init__(
        self, *args: Any, resync_url: str = "", lower_url: str = "", can_resync: bool = False, **kwargs: Any
    ):
        if not can_resync:  # the checkboxes are for "Resync selected", which needs its permission
            kwargs["exclude"] = [*kwargs.get("exclude", ()), "select"]
        super().__init__(*args, **kwargs)
        if can_resync:  # the header's "select all" (hidden until lists.js wires it); per instance, translated
            self.columns["select"].column.verbose_name = format_html(
                '<input type="checkbox" class="integrity-select-all" form="{}" hidden aria-label="{}">',
                BULK_FORM,
                _("Select every sequence of this page"),
            )
        self.resync_url = resync_url
        self.lower_url = lower_url
        self.can_resync = can_resync

    def default_per_page(self) -> int:
        return settings.SEQUENCES_PER_PAGE

    @cached_property
    def _labels(self) -> dict[str, str]:
        return {
            "resync": str(_("Resync")),
            "lower": str(_("Lower this sequence…")),
            "fix": str(_("How to fix")),
            "gap": str(_("Gap")),
            "sql": str(_("SQL:")),
            "migration": str(_("Or in a migration (operations):")),
            "mismatch": str(_("type mismatch")),
            "mismatch_title": str(_("The sequence can hand out values the column cannot hold.")),
            "select": str(_("Select %(sequence)s")),
        }

    @cached_property
    def _token(self) -> str:
        request = getattr(self, "request", None)
        return get_token(request) if request is not None else ""

    def render_types(self, record: SequenceInfo) -> SafeString:
        html = f"{escape(record.column_type)} ← {escape(record.sequence_type)}"
        if record.type_mismatch:
            labels = self._labels
            html += (
                f' <span class="integrity-badge critical" title="{escape(labels["mismatch_title"])}">'
                f"{escape(labels['mismatch'])}</span>"
            )
        return mark_safe(html)  # noqa: S308 - every part is escaped

    def render_status(self, record: SequenceInfo) -> SafeString:
        shown = record.shown_status
        html = _badge(shown, LEVEL_CLASSES.get(shown, "status-" + shown.replace(" ", "-")), record.reason)
        if shown == record.status and record.capacity_level != "ok":
            html += " " + _badge(record.capacity_level, record.capacity_level, "")
        if record.reason:
            html += f'<div class="integrity-note">{escape(record.reason)}</div>'
        return mark_safe(html + self._details(record))  # noqa: S308 - every part is escaped

    def _details(self, record: SequenceInfo) -> str:
        """The fix of a capacity or type problem, or the gap and how to lower it, folded under the status."""
        fix = widen_fix(record)
        html = ""
        if fix is not None:
            parts = [f"<p>{escape(fix.advice)}</p>"]
            if fix.sql:
                parts.append(f"<p>{escape(self._labels['sql'])}</p>")
                parts.append(f'<pre class="integrity-sql">{escape(chr(10).join(fix.sql))}</pre>')
            if fix.migration:
                parts.append(f"<p>{escape(self._labels['migration'])}</p>")
                parts.append(f'<pre class="integrity-sql">{escape(fix.migration)}</pre>')
            html = _folded(self._labels["fix"], "".join(parts), "fix")
        return html + self._gap(record)

    def _gap(self, record: SequenceInfo) -> str:
        if not _has_gap(record):
            return ""
        expected = record.start if record.max_value is None else record.max_value + record.increment
        gap = abs((record.next_value or expected) - expected)
        text = _("A gap of %(n)s unused values: harmless, nothing to do.") % {"n": f"{gap:,}"}
        parts = [f"<p>{escape(text)}</p>"]
        if self.can_resync:
            href = escape(f"{self.lower_url}?{urlencode({'key': record.key})}")
            parts.append(f'<a class="integrity-link" href="{href}">{escape(self._labels["lower"])}</a>')
        return _folded(self._labels["gap"], "".join(parts), "gap")

    def render_sequence(self, record: SequenceInfo) -> SafeString:
        html = str(breakable(record.sequence))
        if record.shared_with:
            note = _("shared by %(columns)s") % {"columns": ", ".join(record.shared_with)}
            html += f'<div class="integrity-note shared">{escape(note)}</div>'
        return mark_safe(html)  # noqa: S308 - every part is escaped

    def render_next_value(self, value: int | None) -> str:
        return _number(value)

    def render_max_value(self, value: int | None) -> str:
        return _number(value)

    def render_capacity(self, record: SequenceInfo) -> SafeString:
        if record.capacity is None:
            return mark_safe("—")  # noqa: S308
        percent = record.capacity * 100
        shown = f"{percent:.2f}" if percent < 1 else f"{percent:.1f}"
        level = escape(record.capacity_level)
        return mark_safe(  # noqa: S308 - every part is escaped
            f'<span class="integrity-meter {level}" title="{level}">'
            f'<span style="width: {min(percent, 100):.1f}%"></span></span> {shown}%'
        )

    def render_actions(self, record: SequenceInfo) -> SafeString:
        if not self.can_resync:
            return mark_safe("")  # noqa: S308
        key = escape(record.key)
        if record.status == BEHIND:
            url = escape(self.resync_url)
            return mark_safe(  # noqa: S308 - every part is escaped
                f'<form method="post" action="{url}" hx-post="{url}" hx-target="closest tr" hx-swap="outerHTML">'
                f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(self._token)}">'
                f'<input type="hidden" name="key" value="{key}">'
                f'<button type="submit" class="button">{escape(self._labels["resync"])}</button></form>'
            )
        return mark_safe("")  # noqa: S308 - gaps are no call to action: lowering is in the row's details

    def render_select(self, record: SequenceInfo) -> str:
        label = self._labels["select"] % {"sequence": f"{record.model}.{record.column} ({record.database})"}
        return (
            f'<input type="checkbox" name="key" value="{escape(record.key)}" form="{BULK_FORM}"'
            f' class="action-select" aria-label="{escape(label)}">'
        )

    def row_html(self, record: SequenceInfo) -> SafeString:
        """One ``<tr>``, its cells in column order, each with its column as class."""
        row_id = row_dom_id(record)
        select = (self.render_select(record),) if self.can_resync else ()
        cells = (
            *select,
            breakable(record.model),
            escape(record.column),
            self.render_status(record),
            self.render_next_value(record.next_value),
            self.render_max_value(record.max_value),
            self.render_capacity(record),
            self.render_actions(record),
            escape(record.database),
            breakable(record.table),
            self.render_sequence(record),
            self.render_types(record),
        )
        tds = cells_html(CELL_CLASSES if self.can_resync else CELL_CLASSES[1:], cells)
        return mark_safe(f'<tr id="{escape(row_id)}" data-status="{escape(record.status)}">{tds}</tr>')  # noqa: S308


CELL_CLASSES = (
    "action-checkbox",
    "model",
    "column",
    "status",
    "num",
    "num",
    "capacity",
    "actions",
    "database",
    "table",
    "sequence",
    "types",
)
