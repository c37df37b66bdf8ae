"""The Jobs list, newest first: kind, what, status badge, progress, who, when."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from integrity.models import Job
from integrity.tables import RowsTable, cells_html

# What a job's work says it is doing (``result["phase"]``), before its numbers: the units change meaning.
PHASES = {"scanning": _("Scanning the table:"), "merging": _("Merging groups:")}


def progress_html(job: Job) -> str:
    """A ``<progress>`` with its numbers beside it (the numbers alone say it without the bar)."""
    phase = PHASES.get(str(job.result.get("phase", "")), "")
    label = f"{escape(phase)} " if phase else ""
    if job.total:
        bar = f'<progress max="{int(job.total)}" value="{min(int(job.done), int(job.total))}"></progress>'
        return f"{label}{bar} {job.done:,} / {job.total:,}"
    return f"{label}{job.done:,}" if job.done else label.strip()


def badge_html(job: Job) -> str:
    return f'<span class="integrity-badge job-{escape(job.status)}">{escape(job.get_status_display())}</span>'


class JobTable(RowsTable):
    created = tables.Column(verbose_name=_("Started"), accessor="created_at", orderable=False)
    kind = tables.Column(verbose_name=_("Job"), orderable=False)
    what = tables.Column(verbose_name=_("What"), orderable=False)
    status = tables.Column(verbose_name=_("Status"), orderable=False)
    progress = tables.Column(verbose_name=_("Progress"), accessor="done", orderable=False)
    user = tables.Column(verbose_name=_("Who"), orderable=False)

    class Meta:
        template_name = "integrity/table.html"
        prefix = "job-"
        attrs = {"class": "integrity-table", "id": "job-table"}
        orderable = False
        per_page = 50
        empty_text = _("No jobs yet.")

    def __init__(self, *args: Any, job_url: Callable[[int], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job_url = job_url

    def row_html(self, record: Job) -> SafeString:
        href = escape(self.job_url(int(record.pk)))
        cells = (
            f'<a href="{href}">{record.created_at:%Y-%m-%d %H:%M:%S}</a>',
            escape(record.get_kind_display()),
            escape(record.what),
            badge_html(record),
            progress_html(record),
            escape(record.user.get_username() if record.user else ""),
        )
        tds = cells_html(("when", "kind", "what", "status", "progress", "user"), cells)
        return mark_safe(f'<tr data-job="{int(record.pk)}" data-status="{escape(record.status)}">{tds}</tr>')  # noqa: S308
