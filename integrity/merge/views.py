"""Admin views of merging: the group page's Merge form, preview and confirm, merge-all, the record and undo.

Thin wrappers around ``merge_plan`` and ``merge``. Every view checks
``integrity.view_duplicaterule`` and ``integrity.merge_duplicates``; every
change is a POST with CSRF in two steps (a preview, then a confirm that
carries the preview's token). Bad input is a 4xx with the service's message
and the database unchanged; a stale preview is a 409 that shows the new one.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import messages
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect

from integrity import jobs, permissions
from integrity.conf import settings
from integrity.db import transaction_text
from integrity.duplicates.forms import FIELD_PREFIX, KEEP_PREFIX, MergeAllForm, MergeForm, can_merge
from integrity.duplicates.rules import Rule, RuleNotFound, get_rule
from integrity.duplicates.service import POLICIES
from integrity.merge import bulk as merge_all
from integrity.merge import execute as merge
from integrity.merge import plan as merge_plan
from integrity.merge import undo as merge_undo
from integrity.merge.exceptions import MergeRefused, NeedsChoice, StalePreview
from integrity.merge.plan import Plan
from integrity.merge.snapshots import deleted_rows
from integrity.models import Job, MergeRecord
from integrity.pages import (
    PageAdmin,
    Refused,
    change_url,
    is_htmx,
    methods,
    page_context,
    page_url,
    refusal,
    refused,
    require,
    with_query,
)

MERGE_PERMS = (permissions.VIEW_DUPLICATES, permissions.MERGE_DUPLICATES)


def _parsed(request: HttpRequest) -> tuple[Rule, Any, list[Any], dict[str, Any], dict[str, Any]]:
    """(rule, survivor, duplicates, field choices, conflict resolutions) from the POST; ``Refused`` on bad input."""
    form = MergeForm(request.POST)
    if not form.is_valid():
        raise refusal(form)
    data = form.cleaned_data
    return data["rule"], data["survivor"], data["remove"], data["fields"], data["resolutions"]


def _preview(
    admin: PageAdmin,
    request: HttpRequest,
    plan: Plan,
    fields: dict[str, Any],
    *,
    status: int = 200,
    error: str = "",
) -> HttpResponse:
    rule = plan.rule
    group_url = with_query(page_url(admin, "group"), rule=rule.key, pk=plan.survivor.pk)
    context = page_context(
        admin,
        request,
        title=_("Merge preview: %(model)s") % {"model": rule.label},
        rule=rule,
        rule_url=with_query(page_url(admin, "rule"), rule=rule.key),
        group_url=group_url,
        plan=plan,
        moves=[m for m in plan.moves if m.moving or m.collapsed],
        fields=fields,
        field_prefix=FIELD_PREFIX,
        keep_prefix=KEEP_PREFIX,
        error=error,
        merge_url=page_url(admin, "merge"),
        duplicate_pks=", ".join(str(m.pk) for m in plan.duplicates),
        # With a conflict's row still to choose, what is deleted is not known yet.
        sql="" if plan.unresolved else transaction_text(merge.statements(plan)),
    )
    return render(request, "integrity/merge_preview.html", context, status=status)


@methods("POST")
def merge_view(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """``step=preview``: what the merge would do. ``step=confirm`` (with the preview's token): do it."""
    require(request, *MERGE_PERMS)
    try:
        rule, survivor, dups, fields, resolutions = _parsed(request)
    except Refused as exc:
        return refused(admin, request, exc)
    step = request.POST.get("step", "preview")
    try:
        if step != "confirm":
            plan = merge_plan.build_plan(rule, survivor, dups, fields=fields, resolutions=resolutions)
            return _preview(admin, request, plan, fields)
        token = request.POST.get("token", "")
        record = merge.merge(
            rule, survivor, dups, fields=fields, resolutions=resolutions, token=token, user=request.user
        )
    except (NeedsChoice, StalePreview) as exc:
        assert exc.plan is not None
        return _preview(admin, request, exc.plan, fields, status=exc.status, error=str(exc))
    except MergeRefused as exc:
        return refused(
            admin,
            request,
            Refused(str(exc), exc.status),
            back_url=with_query(page_url(admin, "rule"), rule=rule.key),
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
def merge_all_view(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """``step=preview``: the rule's totals; ``step=run``: merge up to ``BATCH`` groups, then continue (htmx) or stop."""
    require(request, *MERGE_PERMS)
    form = MergeAllForm(request.POST)
    if not form.is_valid():
        return refused(admin, request, refusal(form))
    rule, policy, step = (
        form.cleaned_data["rule"],
        form.cleaned_data["policy"],
        form.cleaned_data["step"] or "preview",
    )
    context = page_context(
        admin,
        request,
        title=_("Merge every group: %(model)s: %(rule)s") % {"model": rule.label, "rule": rule.description},
        rule=rule,
        rule_url=with_query(page_url(admin, "rule"), rule=rule.key),
        policy=policy,
        policies=POLICIES,
        url=page_url(admin, "merge_all"),
    )
    if step == "preview":
        first = merge_all.first_group(rule)
        context["groups"], context["rows"] = first.total_groups, first.total_rows
        context["sql"] = (
            transaction_text(merge_all.group_statements(rule, policy, first.groups[0]))
            if first.groups
            else ""
        )
        return render(request, "integrity/merge_all.html", context)
    if step == "run" and jobs.worker_backed():
        return _as_job(admin, request, rule, policy)
    skip, done = form.cleaned_data["skip"], form.cleaned_data["done"]
    stop = step == "stop"
    result = merge_all.merge_all(
        rule, policy, user=request.user, limit=0 if stop else settings.MERGE_BATCH, skip=skip
    )
    skipped = [*form.cleaned_data["skipped"], *(f"{pk}: {why}" for pk, why in result.skipped)]
    made = [r.pk for r in result.merged]
    first_record = form.cleaned_data["first"] or (made[0] if made else 0)
    last = made[-1] if made else form.cleaned_data["last"]
    site = admin.admin_site.name
    context.update(
        done=done + result.made,
        total=done + result.made + max(result.remaining, 0),
        first=first_record,
        last=last,
        first_url=reverse(f"{site}:integrity_mergerecord_change", args=[first_record])
        if first_record
        else None,
        last_url=reverse(f"{site}:integrity_mergerecord_change", args=[last]) if last else None,
        log_url=with_query(reverse(f"{site}:integrity_mergerecord_changelist"), model__exact=rule.label),
        remaining=result.remaining,
        skip=[*skip, *(str(pk) for pk, _why in result.skipped)],
        skipped=skipped,
        finished=stop or result.remaining <= 0,
        stopped=stop,
    )
    template = "integrity/merge_all_progress.html" if is_htmx(request) else "integrity/merge_all.html"
    return render(request, template, context)


def _as_job(admin: PageAdmin, request: HttpRequest, rule: Rule, policy: str) -> HttpResponse:
    """With task workers: the whole merge-all is one job (the tab may close); its page follows it."""
    params = {"rule": rule.key, "policy": policy}
    what = f"{rule.label}: {rule.description} ({policy})"
    try:
        job = jobs.service.start_once(Job.MERGE_ALL, what, params, request.user)
    except jobs.JobNotStarted as exc:
        return refused(admin, request, Refused(f"{exc} {_('Nothing was changed.')}", 503))
    url = reverse(f"{admin.admin_site.name}:integrity_job_job", args=[job.pk])
    return HttpResponseClientRedirect(url) if is_htmx(request) else HttpResponseRedirect(url, status=303)


# ---------------------------------------------------------------------------
# The record and its undo
# ---------------------------------------------------------------------------


def _record_context(
    admin: PageAdmin, request: HttpRequest, record: MergeRecord, **extra: Any
) -> dict[str, Any]:
    data = record.data or {}
    return page_context(
        admin,
        request,
        record=record,
        **_record_rule(admin, record),
        title=str(record),
        survivor_url=_survivor_url(admin, request, record),
        deleted=[{"model": d["model"], "rows": len(d["rows"])} for d in data.get("deleted", [])],
        deleted_rows=deleted_rows(data),
        moved=[{"relation": m["relation"], "rows": m["count"]} for m in data.get("moved", [])],
        changed=data.get("survivor", {}).get("columns", []),
        can_undo=record.undone_at is None and can_merge(request),
        undo_url=reverse(f"{admin.admin_site.name}:integrity_mergerecord_undo", args=[record.pk]),
        log_url=page_url(admin, "changelist"),
        **extra,
    )


def _record_rule(admin: PageAdmin, record: MergeRecord) -> dict[str, Any]:
    """The record's rule by its ``display_name``, linked to its page; in words when the models do not declare it."""
    try:
        rule = get_rule(record.rule)
    except RuleNotFound:  # a data migration's own rule (MergeDuplicates), or one the models dropped since
        fields = record.rule.split(":", 2)[-1].split(":", 1)[-1]  # "alias:label:kind:fields" -> "fields"
        text = _("%(model)s: %(fields)s (not a rule the models declare now)")
        return {"rule_name": text % {"model": record.model, "fields": fields}}
    url = reverse(f"{admin.admin_site.name}:integrity_duplicaterule_rule")
    return {"rule_name": rule.display_name, "rule_url": with_query(url, rule=rule.key)}


def _survivor_url(admin: PageAdmin, request: HttpRequest, record: MergeRecord) -> str | None:
    try:
        model = apps.get_model(record.model)
    except LookupError:
        return None
    obj = model._base_manager.using(record.database).filter(pk=record.survivor).first()
    return None if obj is None else change_url(admin, request, obj)


@methods("GET", "HEAD")  # as the merge log's other pages, Django's own change list among them
def record_view(admin: PageAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """One merge: what it moved, deleted and changed; an Undo button."""
    require(request, permissions.VIEW_MERGE_RECORDS)
    record = _get_record(object_id)
    return render(request, "integrity/merge_record.html", _record_context(admin, request, record))


def _get_record(object_id: str) -> MergeRecord:
    if not (str(object_id).isascii() and str(object_id).isdigit()):
        raise Http404(_("There is no merge record %(id)r.") % {"id": object_id})
    record = MergeRecord.objects.filter(pk=int(object_id)).first()
    if record is None:
        raise Http404(_("There is no merge record %(id)r.") % {"id": object_id})
    return record


def _undo_sql(record: MergeRecord) -> str:
    """The undo's statements as one transaction; none when it was undone already or its database is gone."""
    if record.undone_at is not None or record.database not in connections:
        return ""
    return transaction_text(merge_undo.statements(record))


@methods("POST")
def undo_view(admin: PageAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """POST without ``confirm``: what the undo will restore; with ``confirm=1``: undo it."""
    require(request, *MERGE_PERMS)
    record = _get_record(object_id)
    if request.POST.get("confirm") != "1":
        context = _record_context(admin, request, record, sql=_undo_sql(record))
        return render(request, "integrity/merge_undo.html", context)
    try:
        merge_undo.undo(record, user=request.user)
    except MergeRefused as exc:
        context = _record_context(admin, request, record, error=str(exc))
        return render(request, "integrity/merge_record.html", context, status=exc.status)
    messages.success(request, _("The merge was undone: %(n)s rows are back.") % {"n": record.deleted})
    return HttpResponseRedirect(record_url(admin.admin_site.name, record))
