"""Admin registration: the sequences and duplicates pages (table-less models), the events pages and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from integrity.duplicates import views as views_duplicates
from integrity.events import views as views_events
from integrity.guard import guard_app_index, guard_patterns
from integrity.merge import views as views_merge
from integrity.models import DuplicateRule, EventGroup, MergeRecord, Sequence, SequenceResync
from integrity.sequences import views


class PageAdmin(admin.ModelAdmin):
    """Base of table-less pages: no add, change or delete, only views; every route guarded (``integrity.guard``)."""

    def __init__(self, model: Any, admin_site: Any) -> None:
        super().__init__(model, admin_site)
        guard_app_index(admin_site, model._meta.app_label)

    @property
    def urls(self) -> list[URLPattern]:
        return guard_patterns(self, self.get_urls())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _route(self, suffix: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
        def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # As ModelAdmin's own views do: {% url 'admin:…' %} then resolves
            # within this AdminSite instance, whatever its name.
            request.current_app = self.admin_site.name
            return view(self, request, *args, **kwargs)

        opts = self.model._meta
        return path(
            suffix, self.admin_site.admin_view(bound), name=f"{opts.app_label}_{opts.model_name}_{name}"
        )


@admin.register(Sequence)
class SequenceAdmin(PageAdmin):
    def get_urls(self) -> list[URLPattern]:
        return [
            self._route("", views.sequence_list, "changelist"),
            self._route("resync/", views.sequence_resync, "resync"),
            self._route("resync-all/", views.sequence_resync_all, "resync_all"),
            self._route("lower/", views.sequence_lower, "lower"),
        ]


@admin.register(DuplicateRule)
class DuplicateRuleAdmin(PageAdmin):
    def get_urls(self) -> list[URLPattern]:
        return [
            self._route("", views_duplicates.rule_list, "changelist"),
            self._route("count/", views_duplicates.rule_count, "count"),
            self._route("rule/", views_duplicates.rule_detail, "rule"),
            self._route("group/", views_duplicates.group_detail, "group"),
            self._route("summary/", views_duplicates.summary_card, "summary"),
            self._route("merge/", views_merge.merge_view, "merge"),
            self._route("merge-all/", views_merge.merge_all_view, "merge_all"),
        ]


@admin.register(SequenceResync)
class SequenceResyncAdmin(PageAdmin):
    list_display = (
        "created_at",
        "user",
        "database",
        "model",
        "sequence",
        "value_before",
        "value_after",
        "lowered",
    )
    list_filter = ("database", "lowered", "model")
    search_fields = ("sequence", "model", "table")
    date_hierarchy = "created_at"


@admin.register(MergeRecord)
class MergeRecordAdmin(PageAdmin):
    """The merge log: every merge, who made it, what it removed; each record's page has the Undo."""

    list_display = ("created_at", "user", "model", "survivor", "merged", "repointed", "deleted", "status")
    list_filter = ("database", "model")
    search_fields = ("model", "survivor", "rule")
    date_hierarchy = "created_at"

    @admin.display(description=_("merged into it"))
    def merged(self, record: MergeRecord) -> str:
        return ", ".join(str(pk) for pk in record.removed)

    @admin.display(description=_("status"))
    def status(self, record: MergeRecord) -> str:
        return str(_("undone") if record.undone_at else _("merged"))

    def get_urls(self) -> list[URLPattern]:
        return [
            self._route("<str:object_id>/undo/", views_merge.undo_view, "undo"),
            self._route("<str:object_id>/change/", views_merge.record_view, "change"),
            *super().get_urls(),
        ]


@admin.register(EventGroup)
class EventGroupAdmin(PageAdmin):
    """The events pages: the groups of recorded IntegrityErrors, and one group with its samples."""

    def get_urls(self) -> list[URLPattern]:
        return [
            self._route("", views_events.event_list, "changelist"),
            self._route("group/", views_events.group_detail, "group"),
        ]
