"""Admin views of merging: the group page's Merge form, preview and confirm, merge-all, the record and undo.

Thin wrappers around ``merge_plan`` and ``merge``. Every view checks
``integrity.view_duplicaterule`` and ``integrity.merge_duplicates``; every
change is a POST with CSRF in two steps (a preview, then a confirm that
carries the preview's token). Bad input is a 4xx with the service's message
and the database unchanged; a stale preview is a 409 that shows the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from integrity.conf import settings
from integrity.duplicates import service as duplicates
from integrity.duplicates.views import VIEW_PERM, _change_url, _context, _refused, _with, rule_from
from integrity.merge import bulk as merge_all
from integrity.merge import execute as merge
from integrity.merge import plan as merge_plan
from integrity.merge import undo as merge_undo
from integrity.merge.plan import MergeRefused, Plan
from integrity.models import MergeRecord
from integrity.pages import Refused, methods, page_context, page_url, require

if TYPE_CHECKING:
    from integrity.admin import DuplicateRuleAdmin, MergeRecordAdmin

MERGE_PERM = "integrity.merge_duplicates"
FIELD_PREFIX, KEEP_PREFIX = "field-", "keep-"


def can_merge(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(VIEW_PERM) and request.user.has_perm(MERGE_PERM))


def _require_merge(request: HttpRequest) -> None:
    require(request, VIEW_PERM)
    require(request, MERGE_PERM)


def default_survivor(members: list[Model], totals: Mapping[Any, int]) -> Any:
    """The member with the most referencing rows; ties to the lowest primary key."""
    return min(members, key=lambda m: (-totals.get(m.pk, 0), m.pk)).pk


def merge_form(
    request: HttpRequest,
    admin: DuplicateRuleAdmin,
    members: list[Model],
    totals: Mapping[Any, int],
    field_rows: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """What the group page's Merge form needs, or None when the user may not merge."""
    if not can_merge(request):
        return None
    fields = [
        {
            **row,
            "input": f"{FIELD_PREFIX}{row['name']}",
            "options": list(zip([m.pk for m in members], row["values"], strict=True)),
        }
        for row in field_rows
        if row["differs"]
    ]
    return {"url": page_url(admin, "merge"), "default": default_survivor(members, totals), "fields": fields}


# ---------------------------------------------------------------------------
# Parsing the form
# ---------------------------------------------------------------------------


def _parsed(request: HttpRequest) -> tuple[Any, Any, list[Any], dict[str, Any], dict[str, Any]]:
    """(rule, survivor, duplicates, field choices, conflict resolutions) from the POST; ``Refused`` on bad input."""
    data = request.POST
    rule = rule_from(data.get("rule", ""))
    try:
        survivor = merge_plan.to_pk(rule, data.get("survivor", ""))
        dups = [merge_plan.to_pk(rule, raw) for raw in data.getlist("remove")]
        fields = {
            key[len(FIELD_PREFIX) :]: merge_plan.to_pk(rule, value)
            for key, value in data.items()
            if key.startswith(FIELD_PREFIX) and value
        }
    except MergeRefused as exc:
        raise Refused(str(exc), exc.status) from None
    resolutions = {
        key[len(KEEP_PREFIX) :]: value for key, value in data.items() if key.startswith(KEEP_PREFIX) and value
    }
    return rule, survivor, dups, fields, resolutions


def _preview(
    admin: DuplicateRuleAdmin,
    request: HttpRequest,
    plan: Plan,
    fields: dict[str, Any],
    *,
    status: int = 200,
    error: str = "",
) -> HttpResponse:
    rule = plan.rule
    group_url = _with(page_url(admin, "group"), rule=rule.key, pk=plan.survivor.pk)
    context = _context(
        admin,
        request,
        title=_("Merge preview: %(model)s") % {"model": rule.label},
        rule=rule,
        rule_url=_with(page_url(admin, "rule"), rule=rule.key),
        group_url=group_url,
        plan=plan,
        moves=[m for m in plan.moves if m.moving or m.collapsed],
        fields=fields,
        field_prefix=FIELD_PREFIX,
        keep_prefix=KEEP_PREFIX,
        error=error,
        merge_url=page_url(admin, "merge"),
        duplicate_pks=", ".join(str(m.pk) for m in plan.duplicates),
    )
    return render(request, "integrity/merge_preview.html", context, status=status)


@methods("POST")
def merge_view(admin: DuplicateRuleAdmin, request: HttpRequest) -> HttpResponse:
    """``step=preview``: what the merge would do. ``step=confirm`` (with the preview's token): do it."""
    _require_merge(request)
    try:
        rule, survivor, dups, fields, resolutions = _parsed(request)
    except Refused as exc:
        return _refused(admin, request, exc)
    step = request.POST.get("step", "preview")
    try:
        if step != "confirm":
            plan = merge_plan.build_plan(rule, survivor, dups, fields=fields, resolutions=resolutions)
            return _preview(admin, request, plan, fields)
        token = request.POST.get("token", "")
        record = merge.merge(
            rule, survivor, dups, fields=fields, resolutions=resolutions, token=token, user=request.user
        )
    except (merge_plan.StalePreview, merge_plan.NeedsChoice) as exc:
        assert exc.plan is not None
        return _preview(admin, request, exc.plan, fields, status=exc.status, error=str(exc))
    except MergeRefused as exc:
        return _refused(
            admin,
            request,
            Refused(str(exc), exc.status),
            back_url=_with(page_url(admin, "rule"), rule=rule.key),
            back_label=_("Back to the groups of this rule"),
        )
    message = _(
        "Merged %(n)d rows of %(model)s into row %(pk)s: %(moved)d references moved, %(deleted)d rows deleted."
    )
    messages.success(
        request,
        message
        % {
            "n": len(record.removed),
            "model": record.model,
            "pk": record.survivor,
            "moved": record.repointed,
            "deleted": record.deleted,
        },
    )
    return HttpResponseRedirect(record_url(admin.admin_site.name, record))


def record_url(site: str, record: MergeRecord) -> str:
    return reverse(f"{site}:integrity_mergerecord_change", args=[record.pk])


# ---------------------------------------------------------------------------
# Merge all groups of a rule
# ---------------------------------------------------------------------------


@methods("POST")
def merge_all_view(admin: DuplicateRuleAdmin, request: HttpRequest) -> HttpResponse:
    """``step=preview``: the rule's totals; ``step=run``: merge up to ``BATCH`` groups, then continue (htmx) or stop."""
    _require_merge(request)
    try:
        rule = rule_from(request.POST.get("rule", ""))
    except Refused as exc:
        return _refused(admin, request, exc)
    policy = request.POST.get("policy", merge_all.MOST_REFERENCED)
    if policy not in merge_all.POLICIES:
        return _refused(admin, request, Refused(_("Unknown survivor policy %(p)r.") % {"p": policy}, 400))
    step = request.POST.get("step", "preview")
    context = _context(
        admin,
        request,
        title=_("Merge every group: %(model)s: %(rule)s") % {"model": rule.label, "rule": rule.description},
        rule=rule,
        rule_url=_with(page_url(admin, "rule"), rule=rule.key),
        policy=policy,
        policies=merge_all.POLICIES,
        url=page_url(admin, "merge_all"),
    )
    if step == "preview":
        context["groups"], context["rows"] = duplicates.totals(rule)
        return render(request, "integrity/merge_all.html", context)
    skip = request.POST.getlist("skip")
    done_raw = request.POST.get("done", "0")
    done = int(done_raw) if done_raw.isdigit() else 0
    stop = step == "stop"
    result = merge_all.merge_all(
        rule, policy, user=request.user, limit=0 if stop else settings.MERGE_BATCH, skip=skip
    )
    skipped = [*request.POST.getlist("skipped"), *(f"{pk}: {why}" for pk, why in result.skipped)]
    context.update(
        done=done + len(result.merged),
        remaining=result.remaining,
        skip=[*skip, *(str(pk) for pk, _why in result.skipped)],
        skipped=skipped,
        finished=stop or result.remaining <= 0,
        stopped=stop,
    )
    template = (
        "integrity/merge_all_progress.html" if getattr(request, "htmx", False) else "integrity/merge_all.html"
    )
    return render(request, template, context)


# ---------------------------------------------------------------------------
# The record and its undo
# ---------------------------------------------------------------------------


def _record_context(
    admin: MergeRecordAdmin, request: HttpRequest, record: MergeRecord, **extra: Any
) -> dict[str, Any]:
    data = record.data or {}
    return page_context(
        admin,
        request,
        record=record,
        title=str(record),
        survivor_url=_survivor_url(admin, request, record),
        deleted=[{"model": d["model"], "rows": len(d["rows"])} for d in data.get("deleted", [])],
        moved=[{"relation": m["relation"], "rows": m["count"]} for m in data.get("moved", [])],
        changed=data.get("survivor", {}).get("columns", []),
        can_undo=record.undone_at is None and can_merge(request),
        undo_url=reverse(f"{admin.admin_site.name}:integrity_mergerecord_undo", args=[record.pk]),
        log_url=page_url(admin, "changelist"),
        **extra,
    )


def _survivor_url(admin: Any, request: HttpRequest, record: MergeRecord) -> str | None:
    try:
        model = apps.get_model(record.model)
    except LookupError:
        return None
    obj = model._base_manager.using(record.database).filter(pk=record.survivor).first()
    return None if obj is None else _change_url(admin, request, obj)


def record_view(admin: MergeRecordAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """One merge: what it moved, deleted and changed; an Undo button."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    if not request.user.has_perm("integrity.view_mergerecord"):
        raise PermissionDenied
    record = _get_record(object_id)
    return render(request, "integrity/merge_record.html", _record_context(admin, request, record))


def _get_record(object_id: str) -> MergeRecord:
    if not (str(object_id).isascii() and str(object_id).isdigit()):
        raise Http404(_("There is no merge record %(id)r.") % {"id": object_id})
    record = MergeRecord.objects.filter(pk=int(object_id)).first()
    if record is None:
        raise Http404(_("There is no merge record %(id)r.") % {"id": object_id})
    return record


def undo_view(admin: MergeRecordAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """POST without ``confirm``: what the undo will restore; with ``confirm=1``: undo it."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _require_merge(request)
    record = _get_record(object_id)
    if request.POST.get("confirm") != "1":
        return render(request, "integrity/merge_undo.html", _record_context(admin, request, record))
    try:
        merge_undo.undo(record, user=request.user)
    except MergeRefused as exc:
        context = _record_context(admin, request, record, error=str(exc))
        return render(request, "integrity/merge_record.html", context, status=exc.status)
    messages.success(request, _("The merge was undone: %(n)s rows are back.") % {"n": record.deleted})
    return HttpResponseRedirect(record_url(admin.admin_site.name, record))
