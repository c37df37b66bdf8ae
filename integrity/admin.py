"""Admin registration: the sequences and duplicates pages (table-less models), the events pages and the audit log.

The composition root: every route of every room is here, bound to its
``<room>/views.py`` function by ``PageAdmin.route`` (``integrity.pages``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin import display as admin_display
from django.http import HttpRequest
from django.urls import URLPattern
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from integrity import lists
from integrity.dashboard import views as dashboard
from integrity.duplicates import enforce_views as enforce
from integrity.duplicates import pager_views as duplicate_pager
from integrity.duplicates import views as duplicates
from integrity.events import actions as event_actions
from integrity.events import views as events
from integrity.guard import GuardedPageAdmin
from integrity.jobs import service as job_service
from integrity.jobs import views as jobs
from integrity.merge import views as merge
from integrity.models import DuplicateRule, EventGroup, Job, MergeRecord, Sequence, SequenceResync
from integrity.pages import PageAdmin
from integrity.sequences import views as sequences
from integrity.tables import breakable

__all__ = [
    "DuplicateRuleAdmin",
    "EventGroupAdmin",
    "GuardedPageAdmin",
    "JobAdmin",
    "MergeRecordAdmin",
    "PageAdmin",
    "SequenceAdmin",
    "SequenceResyncAdmin",
]


@admin.register(Sequence)
class SequenceAdmin(GuardedPageAdmin):
    home_url_name = "sequences_url"
    refused_template = "integrity/error.html"
    refused_retarget = "#integrity-messages"  # the page's messages, above the table
    refused_title = _("Nothing was changed")

    def get_urls(self) -> list[URLPattern]:
        return [
            self.route("", sequences.sequence_list, "changelist"),
            self.route("resync/", sequences.sequence_resync, "resync"),
            self.route("resync-all/", sequences.sequence_resync_all, "resync_all"),
            self.route("resync-selected/", sequences.sequence_resync_selected, "resync_selected"),
            self.route("lower/", sequences.sequence_lower, "lower"),
        ]


@admin.register(DuplicateRule)
class DuplicateRuleAdmin(GuardedPageAdmin):
    home_url_name = "rules_url"
    refused_template = "integrity/duplicates_error.html"
    refused_fragment_template = "integrity/duplicates_error_fragment.html"  # in place of a lazy count

    def get_urls(self) -> list[URLPattern]:
        return [
            self.route("", duplicates.rule_list, "changelist"),
            self.route("count/", duplicates.rule_count, "count"),
            self.route("rule/", duplicates.rule_detail, "rule"),
            self.route("group/", duplicates.group_detail, "group"),
            self.route("group/pager/", duplicate_pager.group_pager, "group_pager"),
            self.route("summary/", dashboard.summary_card, "summary"),  # the app index's lazy card
            self.route("merge/", merge.merge_view, "merge"),
            self.route("merge-all/", merge.merge_all_view, "merge_all"),
            self.route("scan-job/", duplicates.scan_job, "scan_job"),
            self.route("scan-all-job/", duplicates.scan_all_job, "scan_all_job"),
            self.route("enforce/", enforce.enforce_view, "enforce"),
            self.route("enforce/run/", enforce.enforce_run_view, "enforce_run"),
        ]


def _who(admin: PageAdmin, request: HttpRequest, field: str = "user") -> Callable[[Any], SafeString]:
    """A ``list_display`` column of the user who made the change, by name, linked when the viewer may see them.

    Built per request (``get_list_display``): the link depends on the viewer,
    and a ModelAdmin is shared by every request, so it cannot hold one.
    """

    @admin_display(description=_("who"), ordering=f"{field}__username")
    def who(record: Any) -> SafeString:
        return lists.user_link(admin, request, getattr(record, field))

    return who


class LogAdmin(GuardedPageAdmin):
    """A log of changes the app made (a real changelist): relative times, users by name, the app's CSS."""

    list_select_related = ("user",)
    date_hierarchy = "created_at"

    class Media:
        css = {"all": ("integrity/integrity.css",)}

    @admin_display(description=_("when"), ordering="created_at")
    def when(self, record: Any) -> SafeString:
        return lists.relative_time(record.created_at)


@admin.register(SequenceResync)
class SequenceResyncAdmin(LogAdmin):
    """The resync log: every sequence the app moved, forward or (on request) lowered."""

    list_filter = ("database", "lowered", "model")
    search_fields = ("sequence", "model", "table")

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        # What changed first, so that a narrow screen shows it: when, how, which sequence, the values.
        return (
            "when",
            "change",
            "sequence_name",
            "before",
            "after",
            _who(self, request),
            "database",
        )

    @admin_display(description=_("next value before"), ordering="value_before")
    def before(self, record: SequenceResync) -> str:
        return f"{record.value_before:,}"

    @admin_display(description=_("next value after"), ordering="value_after")
    def after(self, record: SequenceResync) -> str:
        return f"{record.value_after:,}"

    @admin_display(description=_("change"), ordering="lowered")
    def change(self, record: SequenceResync) -> SafeString:
        if record.lowered:
            return format_html('<span class="integrity-badge warning">{}</span>', _("lowered"))
        return format_html('<span class="integrity-badge status-ok">{}</span>', _("moved forward"))

    @admin_display(description=_("sequence"), ordering="sequence")
    def sequence_name(self, record: SequenceResync) -> SafeString:
        return format_html(
            '{}<div class="integrity-note">{}</div>',
            mark_safe(breakable(f"{record.model}.{record.column}")),  # noqa: S308 - escaped by breakable
            mark_safe(breakable(record.sequence)),  # noqa: S308 - escaped by breakable
        )


@admin.register(MergeRecord)
class MergeRecordAdmin(LogAdmin):
    """The merge log: every merge, who made it, what it removed; each record's page has the Undo."""

    list_filter = ("database", "model")
    search_fields = ("model", "survivor", "rule")

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        def survivor(record: MergeRecord) -> SafeString:
            return lists.pk_link(self, request, record.model, record.survivor)

        survivor_column = admin_display(description=_("survivor"), ordering="survivor")(survivor)
        return (
            "when",
            "status",
            "model",
            survivor_column,
            "merged",
            "repointed",
            "deleted",
            _who(self, request),
        )

    @admin.display(description=_("merged into it"))
    def merged(self, record: MergeRecord) -> str:
        return ", ".join(str(pk) for pk in record.removed)

    @admin.display(description=_("status"), ordering="undone_at")
    def status(self, record: MergeRecord) -> SafeString:
        if record.undone_at:
            return format_html('<span class="integrity-badge">{}</span>', _("undone"))
        return format_html('<span class="integrity-badge status-ok">{}</span>', _("merged"))

    def get_urls(self) -> list[URLPattern]:
        return [
            self.route("<str:object_id>/undo/", merge.undo_view, "undo"),
            self.route("<str:object_id>/change/", merge.record_view, "change"),
            *super().get_urls(),
        ]


@admin.register(EventGroup)
class EventGroupAdmin(GuardedPageAdmin):
    """The events pages: the groups of recorded IntegrityErrors, and one group with its samples."""

    home_url_name = "events_url"
    refused_template = "integrity/events_error.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            self.route("", events.event_list, "changelist"),
            self.route("group/", events.group_detail, "group"),
            self.route("state/", event_actions.group_state, "state"),
            self.route("prune/", event_actions.prune, "prune"),
        ]


@admin.register(Job)
class JobAdmin(GuardedPageAdmin):
    """The Jobs pages: long operations run by the project's task workers, their progress and results."""

    home_url_name = "jobs_url"
    refused_template = "integrity/jobs_error.html"
    object_page = "job"  # a job's Cancel posts from the job's page

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A job is seen with the permissions of the operation it runs: the model has none of its own.
        return bool(job_service.visible_kinds(request.user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_urls(self) -> list[URLPattern]:
        return [
            self.route("", jobs.job_list, "changelist"),
            self.route("<str:object_id>/", jobs.job_detail, "job"),
            self.route("<str:object_id>/cancel/", jobs.job_cancel, "cancel"),
        ]
