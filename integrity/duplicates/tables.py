"""django-tables2 tables of the duplicates pages: the rules and one rule's groups."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import django_tables2 as tables
from django.utils.functional import cached_property
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from django_tables2.data import TableData

from integrity.duplicates import service as duplicates
from integrity.duplicates.enforcement import (
    CONFIGURED_STATE,
    ENFORCED,
    INVALID,
    MISSING,
    UNSUPPORTED,
    Enforcement,
)
from integrity.duplicates.rules import Rule, describe
from integrity.duplicates.service import Group, ScanResult
from integrity.tables import RowsTable, breakable, cells_html

# ---------------------------------------------------------------------------
# Duplicates: the rules page and a rule's groups
# ---------------------------------------------------------------------------

# Problems first: declared rules the database does not enforce, then the
# project's configured rules, then enforced ones. Groups cannot take part in
# the order: they are counted lazily, after the page is shown.
STATE_RANK = {MISSING: 0, INVALID: 0, CONFIGURED_STATE: 1, ENFORCED: 2, UNSUPPORTED: 3}


def dom_id(key: str) -> str:
    """A stable HTML id for a rule key (keys hold ":" and "." and may be long)."""
    return "dup-" + hashlib.blake2s(key.encode(), digest_size=6).hexdigest()


def key_text(value: Any) -> str:
    """One part of a group key as shown: NULL and the empty string made visible."""
    if value is None:
        return "NULL"
    if value == "":
        return '""'
    return str(value)


@dataclass
class RuleRow:
    """One rule of the rules page and how the database enforces it."""

    rule: Rule
    enforcement: Enforcement

    @property
    def key(self) -> str:
        return self.rule.key

    @property
    def label(self) -> str:
        return self.rule.label

    @property
    def database(self) -> str:
        return self.rule.database

    @property
    def app_label(self) -> str:
        return self.rule.app_label

    @property
    def state(self) -> str:
        return self.enforcement.state

    @property
    def kind(self) -> str:
        return self.rule.kind

    @property
    def rank(self) -> int:
        return STATE_RANK.get(self.state, len(STATE_RANK))

    @property
    def sort_key(self) -> tuple[int, str, str, str]:
        return (self.rank, self.database, self.label, self.rule.name)

    @property
    def lazy(self) -> bool:
        """Whether its groups are counted (lazily): not enforced, and there is a table to scan."""
        return self.state != ENFORCED and self.enforcement.scannable


class RuleTable(RowsTable):
    """Every uniqueness rule, its enforcement, and (filled in lazily) its duplicate groups."""

    model = tables.Column(verbose_name=_("Model"), accessor="label", order_by=("label", "database"))
    enforcement = tables.Column(verbose_name=_("Enforcement"), accessor="state", order_by=("rank", "state"))
    groups = tables.Column(
        verbose_name=_("Groups"), accessor="key", orderable=False, attrs={"th": {"class": "num"}}
    )
    rows = tables.Column(
        verbose_name=_("Rows involved"), accessor="key", orderable=False, attrs={"th": {"class": "num"}}
    )
    rule = tables.Column(verbose_name=_("Fields or expression"), accessor="key", orderable=False)
    kind = tables.Column(verbose_name=_("Kind"), order_by=("kind", "label"))
    database = tables.Column(verbose_name=_("Database"))

    class Meta:
        template_name = "integrity/duplicates_table.html"
        prefix = "rule-"
        attrs = {"class": "integrity-table", "id": "rule-table"}
        orderable = True
        per_page = 100
        empty_text = _("No rule matches these filters.")

    count_label = ngettext_lazy("%(shown)s rule", "%(shown)s rules", "count")

    def __init__(self, *args: Any, rule_url: str = "", count_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rule_url = rule_url
        self.count_url = count_url

    @cached_property
    def _labels(self) -> dict[str, str]:
        return {
            "counting": str(_("counting…")),
            "count": str(_("Count the duplicates of this rule")),
            "verify": str(_("verify")),
            "verify_title": str(_("The index makes duplicates impossible; scan anyway.")),
            "nulls": str(_("NULLs equal")),
            "nulls_title": str(_("nulls_distinct=False: rows with NULL in the key are duplicates too.")),
            "where": str(_("where")),
            "index": str(_("index")),
        }

    def url_for(self, key: str, **extra: str) -> str:
        return f"{self.rule_url}?{urlencode({'rule': key, **extra})}"

    def render_rule(self, record: RuleRow) -> SafeString:
        rule, labels = record.rule, self._labels
        html = f"<code>{escape(rule.description)}</code>"
        if rule.condition is not None:
            html += (
                f' <div class="integrity-note">{escape(labels["where"])} {escape(rule.condition_text)}</div>'
            )
        if not rule.nulls_distinct:
            html += (
                f' <span class="integrity-badge" title="{escape(labels["nulls_title"])}">'
                f"{escape(labels['nulls'])}</span>"
            )
        return mark_safe(html)  # noqa: S308 - every part is escaped

    def render_kind(self, record: RuleRow) -> SafeString:
        # "unique field" / "unique=True" and "unique_together" twice say nothing new.
        source = record.rule.source
        shown = source and source not in (record.kind, "unique=True")
        note = f' <div class="integrity-note">{escape(source)}</div>' if shown else ""
        return mark_safe(f"{escape(record.kind)}{note}")  # noqa: S308 - every part is escaped

    def render_enforcement(self, record: RuleRow) -> SafeString:
        state, enforcement = escape(record.state), record.enforcement
        badge = f'<span class="integrity-badge enforcement-{state}">{state}</span>'
        if record.state == ENFORCED and enforcement.index:
            note = f"{escape(self._labels['index'])} {breakable(enforcement.index)}"
        else:
            note = escape(enforcement.reason)
        return mark_safe(f'{badge} <div class="integrity-note">{note}</div>' if note else badge)  # noqa: S308

    def render_groups(self, record: RuleRow) -> SafeString:
        labels = self._labels
        if record.lazy:
            href = escape(self.url_for(record.key))
            count = escape(f"{self.count_url}?{urlencode({'rule': record.key})}")
            # Without JavaScript nothing counts: the link says what it does instead (CSS shows one of the two).
            return mark_safe(  # noqa: S308 - every part is escaped
                f'<a class="dup-count integrity-lazy" href="{href}" hx-get="{count}" hx-trigger="revealed"'
                f' hx-swap="outerHTML"><span class="integrity-if-js">{escape(labels["counting"])}</span>'
                f'<span class="integrity-if-no-js">{escape(labels["count"])}</span></a>'
            )
        if record.state == ENFORCED:
            href = escape(self.url_for(record.key, verify="1"))
            return mark_safe(  # noqa: S308 - every part is escaped
                f'<span class="dup-count">—</span> <a class="integrity-link" href="{href}"'
                f' title="{escape(labels["verify_title"])}">{escape(labels["verify"])}</a>'
            )
        return mark_safe(f'<span class="dup-count" title="{escape(record.enforcement.reason)}">—</span>')  # noqa: S308

    def render_rows(self, record: RuleRow) -> SafeString:
        shown = "…" if record.lazy else "—"
        return mark_safe(f'<span id="{dom_id(record.key)}-rows">{shown}</span>')  # noqa: S308

    def row_html(self, record: RuleRow) -> SafeString:
        """One ``<tr>``, its cells in column order, each with its column as class."""
        cells = (
            breakable(record.label),
            self.render_enforcement(record),
            self.render_groups(record),
            self.render_rows(record),
            self.render_rule(record),
            self.render_kind(record),
            escape(record.database),
        )
        tds = cells_html(RULE_CLASSES, cells)
        return mark_safe(  # noqa: S308 - every part is escaped
            f'<tr id="{dom_id(record.key)}" data-rule="{escape(record.key)}" data-state="{escape(record.state)}">'
            f"{tds}</tr>"
        )


# What the rule is and how it stands first (a narrow screen shows them), then its definition.
RULE_CLASSES = ("model", "enforcement", "num groups", "num rows", "rule", "kind", "database")


class GroupPages(TableData):
    """A rule's duplicate groups as django-tables2 data: one scan gives a page and the total.

    ``len()`` is the number of groups; the slice of the page that was asked for
    (``offset``, ``limit``) comes from the same scan, so paginating costs one
    statement. Any other slice runs a scan of its own. A ``TableData`` (not a
    sequence) because django-tables2 copies any other data into a list.
    """

    def __init__(self, rule: Rule, *, offset: int, limit: int) -> None:
        super().__init__([])
        self.rule, self.offset, self.limit = rule, offset, limit
        self._result: ScanResult | None = None

    @property
    def result(self) -> ScanResult:
        """The scan (run on first use); raises ``ScanTimedOut``."""
        if self._result is None:
            self._result = duplicates.scan(self.rule, limit=self.limit, offset=self.offset)
        return self._result

    def __len__(self) -> int:
        return self.result.total_groups

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, int):
            found = self[index : index + 1]
            if not found:
                raise IndexError(index)
            return found[0]
        start, stop, _step = index.indices(len(self))
        if start == self.offset and stop - start <= self.limit:
            return self.result.groups[: stop - start]
        return duplicates.scan(self.rule, limit=max(stop - start, 0), offset=start).groups

    def __iter__(self) -> Iterator[Group]:
        # Only the scanned page: walking every group would mean a scan per group.
        return iter(self.result.groups)

    def order_by(self, aliases: Any) -> None:
        """The scan orders the groups (largest first); there is nothing to reorder here."""


class GroupTable(RowsTable):
    """One page of a rule's duplicate groups, largest first (ordered by the scan, not here)."""

    key = tables.Column(verbose_name=_("Key"), orderable=False)
    size = tables.Column(verbose_name=_("Rows"), orderable=False, attrs={"th": {"class": "num"}})
    members = tables.Column(verbose_name=_("Primary keys"), accessor="pks", orderable=False)
    actions = tables.Column(verbose_name=_("Review"), accessor="size", orderable=False)

    class Meta:
        template_name = "integrity/duplicates_table.html"
        prefix = "grp-"
        attrs = {"class": "integrity-table", "id": "group-table"}
        orderable = False
        empty_text = _("No duplicates: every row satisfies this rule.")

    count_label = ngettext_lazy("%(shown)s duplicate group", "%(shown)s duplicate groups", "count")

    def __init__(
        self,
        *args: Any,
        rule: Rule,
        group_url: str = "",
        pk_url: Callable[[Any], str | None] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.rule = rule
        self.group_url = group_url
        self.pk_url = pk_url or (lambda pk: None)  # a row's admin change page, when there is one
        self.key_names = [describe(e) for e in rule.key_expressions]

    @cached_property
    def _labels(self) -> dict[str, str]:
        return {"compare": str(_("Compare side by side")), "more": str(_("and %(n)s more"))}

    def render_key(self, record: Group) -> SafeString:
        parts = (
            f'<span class="dup-key"><span class="dup-key-name">{escape(name)}</span> '
            f'<code class="{"null" if value is None else ""}">{escape(key_text(value))}</code></span>'
            for name, value in zip(self.key_names, record.key, strict=False)
        )
        return mark_safe(" ".join(parts))  # noqa: S308 - every part is escaped

    def _pk(self, pk: Any) -> str:
        url = self.pk_url(pk)
        return f'<a href="{escape(url)}">{escape(str(pk))}</a>' if url else str(escape(str(pk)))

    def render_members(self, record: Group) -> SafeString:
        shown = ", ".join(self._pk(pk) for pk in record.pks)
        rest = record.size - len(record.pks)
        if rest > 0:
            shown += (
                f' <span class="integrity-note">{escape(self._labels["more"] % {"n": f"{rest:,}"})}</span>'
            )
        return mark_safe(shown)  # noqa: S308 - every part is escaped

    def render_actions(self, record: Group) -> SafeString:
        if not record.pks:
            return mark_safe("")  # noqa: S308
        href = escape(f"{self.group_url}?{urlencode({'rule': self.rule.key, 'pk': record.pks[0]})}")
        return mark_safe(f'<a class="integrity-link" href="{href}">{escape(self._labels["compare"])}</a>')  # noqa: S308

    def row_html(self, record: Group) -> SafeString:
        cells = (
            self.render_key(record),
            f"{record.size:,}",
            self.render_members(record),
            self.render_actions(record),
        )
        tds = cells_html(GROUP_CLASSES, cells)
        return mark_safe(f'<tr data-size="{int(record.size)}">{tds}</tr>')  # noqa: S308 - every part is escaped


GROUP_CLASSES = ("key", "num", "members", "actions")
