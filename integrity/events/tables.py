"""django-tables2 tables of the events pages: the groups of IntegrityErrors and one group's samples.

Both take a QuerySet, so sorting and pagination happen in SQL; the cause of a
group (``integrity.events.explain``) is computed while a row is rendered, that is for
the rows of the page shown only, all of them at once.
"""

from __future__ import annotations

import logging
from typing import Any

import django_tables2 as tables
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from integrity.events import explain as explaining
from integrity.events import lifecycle
from integrity.events.explain import Explanation
from integrity.lists import relative_time
from integrity.models import Event, EventGroup
from integrity.tables import ClampedTable

logger = logging.getLogger("integrity.tables_events")  # the name it had before the move

PER_PAGE = 50
SAMPLES_PER_PAGE = 50
MAX_PER_PAGE = 500  # a larger page size asked for gets the default


def explain_group(group: EventGroup) -> Explanation | None:
    """``integrity.events.explain.explain(group)``, or None when it fails on this group.

    A failure to explain one group must not take the whole events page down:
    the group still shows its message. (Looked up on the module at each call,
    so a project or a test can replace it.)
    """
    try:
        return explaining.explain(group, keep=True)
    except Exception:  # noqa: BLE001 - one group that cannot be explained is shown without a cause
        logger.warning("Could not explain event group %s", group.pk, exc_info=True)
        return None


def explain_groups(groups: list[EventGroup]) -> dict[Any, Explanation]:
    """The explanations of the rows shown, by pk: ``explain_many`` shares its reads across them.

    When that fails, each group is explained on its own (``explain_group``),
    so that one group that cannot be explained costs only its own cause.
    """
    try:
        return {g.pk: e for g, e in zip(groups, explaining.explain_many(groups, keep=True), strict=True)}
    except Exception:  # noqa: BLE001 - fall back to one group at a time
        logger.warning("Could not explain the event groups of a page together", exc_info=True)
    explained = {g.pk: explain_group(g) for g in groups}
    return {pk: e for pk, e in explained.items() if e is not None}


def target_text(group: EventGroup) -> str:
    """The constraint, the sequence that ran out, or (when the database named neither) the table and its columns."""
    if group.constraint or group.sequence:
        return group.constraint or group.sequence
    columns = ", ".join(str(c) for c in group.columns or [])
    return f"{group.table} ({columns})" if columns else group.table


def when(value: Any) -> str:
    """A timestamp as the admin shows one, in the current time zone, to the second."""
    return date_format(timezone.localtime(value), "Y-m-d H:i:s") if value else "—"


def _column_class(bound_column: Any) -> str:
    """Each cell carries its column's name as class, as the other tables' cells do."""
    return str(bound_column.name)


class EventGroupTable(ClampedTable):
    """The groups of IntegrityErrors, last seen first; a link to each group's page."""

    select = tables.Column(verbose_name="", accessor="pk", orderable=False, attrs={"th": {"class": "select"}})
    last_seen = tables.Column(verbose_name=_("Last seen"), order_by=("last_seen", "id"))
    state = tables.Column(verbose_name=_("State"), order_by=("state", "last_seen", "id"))
    count = tables.Column(
        verbose_name=_("Count"), order_by=("count", "last_seen", "id"), attrs={"th": {"class": "num"}}
    )
    kind = tables.Column(verbose_name=_("Kind"), order_by=("kind", "last_seen", "id"))
    model = tables.Column(verbose_name=_("Model"), order_by=("model", "last_seen", "id"), empty_values=())
    constraint = tables.Column(
        verbose_name=_("Constraint or columns"), order_by=("constraint", "table", "id"), empty_values=()
    )
    database = tables.Column(verbose_name=_("Database"), order_by=("database", "last_seen", "id"))
    cause = tables.Column(verbose_name=_("Cause"), accessor="pk", orderable=False)
    actions = tables.Column(
        verbose_name=_("Details"), accessor="pk", orderable=False, attrs={"th": {"class": "actions"}}
    )

    class Meta:
        model = EventGroup
        fields: tuple[str, ...] = ()
        template_name = "integrity/query_table.html"
        prefix = "evt-"
        attrs = {"class": "integrity-table", "id": "event-table", "td": {"class": _column_class}}
        orderable = True
        order_by = ("-last_seen",)
        per_page = PER_PAGE
        empty_text = _("No IntegrityError has been recorded that matches these filters.")
        row_attrs = {"data-group": lambda record: record.pk, "data-kind": lambda record: record.kind}

    count_label = ngettext_lazy("%(shown)s group", "%(shown)s groups", "count")

    max_per_page = MAX_PER_PAGE

    def __init__(self, *args: Any, group_url: str = "", selectable: bool = False, **kwargs: Any):
        if not selectable:  # the checkboxes are for the bulk actions, which need their permission
            kwargs["exclude"] = [*kwargs.get("exclude", ()), "select"]
        super().__init__(*args, **kwargs)
        self.group_url = group_url
        self._explained: dict[Any, Explanation] | None = None

    def url_for(self, record: EventGroup) -> str:
        return f"{self.group_url}?{urlencode({'id': record.pk})}"

    def render_last_seen(self, value: Any) -> SafeString:
        return relative_time(value)

    def render_select(self, record: EventGroup) -> SafeString:
        label = escape(_("Select group %(id)s") % {"id": record.pk})
        return mark_safe(f'<input type="checkbox" name="ids" value="{record.pk}" aria-label="{label}">')  # noqa: S308

    def render_state(self, record: EventGroup) -> SafeString:
        state = lifecycle.state_of(record)
        badge = f'<span class="integrity-badge event-state-{state}">{escape(lifecycle.STATES[state])}</span>'
        if state == lifecycle.REGRESSED and record.regressed_at:
            badge += f' <div class="integrity-note">{relative_time(record.regressed_at)}</div>'
        return mark_safe(badge)  # noqa: S308 - every part is escaped

    def render_count(self, record: EventGroup) -> SafeString:
        html = f"{record.count:,}"
        if record.handled_count:
            handled = _("%(n)s handled") % {"n": f"{record.handled_count:,}"}
            html += f' <div class="integrity-note">{escape(handled)}</div>'
        return mark_safe(html)  # noqa: S308 - every part is escaped

    def render_kind(self, value: str) -> SafeString:
        css = escape(value.replace(" ", "-"))
        return mark_safe(f'<span class="integrity-badge event-kind-{css}">{escape(value)}</span>')  # noqa: S308

    def render_model(self, record: EventGroup) -> SafeString:
        if not record.model:
            return mark_safe('<span class="integrity-note">—</span>')  # noqa: S308
        fields = ", ".join(str(f) for f in record.fields or [])
        note = f' <div class="integrity-note">{escape(fields)}</div>' if fields else ""
        return mark_safe(f"{escape(record.model)}{note}")  # noqa: S308 - every part is escaped

    def render_constraint(self, record: EventGroup) -> SafeString:
        return mark_safe(f"<code>{escape(target_text(record))}</code>")  # noqa: S308 - escaped

    def render_cause(self, record: EventGroup) -> str:
        if self._explained is None:  # once per table, for the rows of the page shown
            self._explained = explain_groups([row.record for row in self.paginated_rows])
        explanation = self._explained.get(record.pk)
        return explanation.cause if explanation is not None and explanation.cause else "—"

    def render_actions(self, record: EventGroup) -> SafeString:
        href = escape(self.url_for(record))
        return mark_safe(f'<a class="integrity-link" href="{href}">{escape(_("Details"))}</a>')  # noqa: S308


class SampleTable(ClampedTable):
    """The samples kept of one group, newest first (the first occurrences get them, up to the limit)."""

    created_at = tables.Column(verbose_name=_("Time"), orderable=False)
    method = tables.Column(verbose_name=_("Method"), orderable=False)
    path = tables.Column(verbose_name=_("Path"), orderable=False)
    view = tables.Column(verbose_name=_("View"), orderable=False)
    user_pk = tables.Column(verbose_name=_("User"), orderable=False)
    handled = tables.Column(verbose_name=_("Handled"), orderable=False)
    values = tables.Column(verbose_name=_("Key values"), orderable=False)
    detail = tables.Column(verbose_name=_("Detail"), orderable=False)

    class Meta:
        model = Event
        fields: tuple[str, ...] = ()
        template_name = "integrity/query_table.html"
        prefix = "smp-"
        attrs = {"class": "integrity-table", "id": "sample-table", "td": {"class": _column_class}}
        orderable = False
        per_page = SAMPLES_PER_PAGE
        empty_text = _("No sample was kept (INTEGRITY_EVENT_SAMPLES is 0, or the samples were deleted).")
        row_attrs = {"data-sample": lambda record: record.pk}

    count_label = ngettext_lazy("%(shown)s sample", "%(shown)s samples", "count")

    max_per_page = MAX_PER_PAGE

    def __init__(self, *args: Any, columns: list[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_columns = [str(c) for c in columns or []]
        self.users: dict[str, Any] = {}  # user_pk -> the user's name, linked (integrity.lists.user_link)

    def render_created_at(self, value: Any) -> SafeString:
        return relative_time(value)

    def render_user_pk(self, value: str) -> str:
        # By name (linked) when the view looked the page's users up; a user since deleted keeps their pk.
        return self.users.get(value, value)

    def render_path(self, value: str) -> SafeString:
        return mark_safe(f"<code>{escape(value)}</code>")  # noqa: S308 - escaped

    def render_handled(self, value: bool) -> str:
        return str(_("yes") if value else _("no"))

    def render_values(self, record: Event) -> SafeString:
        values = list(record.values or [])
        if not values:
            return mark_safe("—")  # noqa: S308
        names = self.key_columns + [""] * (len(values) - len(self.key_columns))
        parts = (
            f"<code>{escape(name)} = {escape('NULL' if v is None else str(v))}</code>"
            if name
            else f"<code>{escape(str(v))}</code>"
            for name, v in zip(names, values, strict=False)
        )
        return mark_safe(" ".join(parts))  # noqa: S308 - every part is escaped
