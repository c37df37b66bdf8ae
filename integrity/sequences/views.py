"""Admin views of the sequences page: thin wrappers around ``integrity.sequences``.

Each view is bound to a ModelAdmin (so it works on any AdminSite instance),
checks its own permission, and changes data only on POST (CSRF protected).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_tables2 import RequestConfig

from integrity import jobs, permissions
from integrity.conf import settings
from integrity.models import Job
from integrity.pages import (
    PageAdmin,
    Refused,
    is_htmx,
    methods,
    page_context,
    page_url,
    refused,
    require,
    with_changes,
)
from integrity.sequences import service as sequences
from integrity.sequences.forms import SequenceFilterForm
from integrity.sequences.service import ResyncRefused, SequenceInfo, SequenceNotFound
from integrity.sequences.tables import SequenceTable


def shows_all(wanted: dict[str, str]) -> bool:
    """``?show=all``: every sequence, not only those that need action (the default)."""
    return wanted.get("show") == "all"


def _filtered(wanted: dict[str, str], reports: list[sequences.AliasReport]) -> list[SequenceInfo]:
    # Each report is sorted on its own; sort across databases so that problem
    # rows of every database come before the fine rows of the first one.
    rows = sorted((info for report in reports for info in report.sequences), key=SequenceInfo.sort_key)
    if not (wanted["status"] or shows_all(wanted)):
        rows = [r for r in rows if r.needs_action]
    if wanted["status"] == "problem":
        rows = [r for r in rows if r.problem]
    elif wanted["status"]:
        rows = [r for r in rows if r.status == wanted["status"]]
    if wanted["app"]:
        rows = [r for r in rows if r.app_label == wanted["app"]]
    if wanted["database"]:
        rows = [r for r in rows if r.database == wanted["database"]]
    if wanted["capacity"] == "warning":
        rows = [r for r in rows if r.capacity_level != "ok"]
    elif wanted["capacity"]:
        rows = [r for r in rows if r.capacity_level == wanted["capacity"]]
    return rows


def _table(admin: PageAdmin, request: HttpRequest, rows: list[SequenceInfo]) -> SequenceTable:
    return SequenceTable(
        rows,
        resync_url=page_url(admin, "resync"),
        lower_url=page_url(admin, "lower"),
        can_resync=request.user.has_perm(permissions.RESYNC_SEQUENCE),
    )


@methods("GET")
def sequence_list(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The sequences page: filters, a sortable paginated table, problem rows first."""
    require(request, permissions.VIEW_SEQUENCES)
    reports = sequences.collect()
    wanted = SequenceFilterForm(request.GET).values()
    rows = _filtered(wanted, reports)
    every = rows if shows_all(wanted) else _filtered({**wanted, "show": "all"}, reports)
    table = _table(admin, request, rows)
    RequestConfig(request, paginate={"per_page": settings.SEQUENCES_PER_PAGE}).configure(table)
    all_rows = [info for report in reports for info in report.sequences]
    context = page_context(
        admin,
        request,
        title=_("Sequences"),
        table=table,
        reports=reports,
        unsupported=[r for r in reports if not r.supported],
        behind_count=sum(r.status == sequences.BEHIND for r in all_rows),
        filters=wanted,
        problems_only=not (wanted["status"] or shows_all(wanted)),
        shown_count=len(rows),
        all_count=len(every),
        show_all_url=f"?{with_changes(request.GET, show='all')}",
        show_problems_url=f"?{with_changes(request.GET, show='', status='')}",
        status_choices=sequences.STATUSES,
        apps=sorted({r.app_label for r in all_rows}),
        databases=[r.database for r in reports],
        can_resync=request.user.has_perm(permissions.RESYNC_SEQUENCE),
        resync_all_url=page_url(admin, "resync_all"),
    )
    return render(request, "integrity/sequences.html", context)


def _parse_key(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) != 3 or not all(parts):
        raise SequenceNotFound(_("Malformed sequence key %(key)r.") % {"key": raw})
    return parts[0], parts[1], parts[2]


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if target and safe else default


def _do_resync(request: HttpRequest, key: str, *, lower: bool) -> sequences.ResyncResult:
    alias, label, column = _parse_key(key)
    return sequences.resync(alias, label, column, user=request.user, lower=lower)


def _result_message(result: sequences.ResyncResult) -> str:
    if not result.changed:
        return _("Sequence %(seq)s needed no change (next value %(value)s).") % {
            "seq": result.info.sequence,
            "value": f"{result.value_after:,}",
        }
    return _("Sequence %(seq)s: next value %(before)s → %(after)s.") % {
        "seq": result.info.sequence,
        "before": f"{result.value_before:,}",
        "after": f"{result.value_after:,}",
    }


def _resynced_row(admin: PageAdmin, request: HttpRequest, result: sequences.ResyncResult) -> HttpResponse:
    """The row swapped in place, plus out-of-band updates of the summary and messages."""
    table = _table(admin, request, [result.info])
    table.request = request
    behind = sum(i.status == sequences.BEHIND for r in sequences.collect() for i in r.sequences)
    extra = {"oob": True, "can_resync": True, "resync_all_url": page_url(admin, "resync_all")}
    summary = render_to_string("integrity/summary.html", {"behind_count": behind, **extra}, request=request)
    note = render_to_string("integrity/messages.html", {"success": _result_message(result), **extra})
    return HttpResponse(table.row_html(result.info) + summary + note)


@methods("POST")
def sequence_resync(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Resync one sequence forward; htmx gets the updated row, forms a redirect."""
    require(request, permissions.RESYNC_SEQUENCE)
    try:
        result = _do_resync(request, request.POST.get("key", ""), lower=False)
    except SequenceNotFound as exc:
        return refused(admin, request, Refused(str(exc), 400))
    except ResyncRefused as exc:
        return refused(admin, request, Refused(str(exc), 409))
    if is_htmx(request):
        return _resynced_row(admin, request, result)
    messages.success(request, _result_message(result))
    return HttpResponseRedirect(_back(request, page_url(admin, "changelist")))


@methods("GET", "POST")
def sequence_resync_all(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Confirmation page listing every behind sequence; POST resyncs them forward."""
    require(request, permissions.RESYNC_SEQUENCE)
    if request.method == "GET":
        behind = [i for r in sequences.collect() for i in r.sequences if i.status == sequences.BEHIND]
        return render(
            request,
            "integrity/resync_all.html",
            page_context(admin, request, title=_("Resync all behind sequences"), behind=behind),
        )
    keys = request.POST.getlist("key")
    if not keys:
        return refused(admin, request, Refused(_("No sequences were selected."), 400))
    try:
        parsed = [_parse_key(k) for k in keys]
    except SequenceNotFound as exc:
        return refused(admin, request, Refused(str(exc), 400))
    if jobs.worker_backed():
        return _resync_job(admin, request, keys)
    done, failed = 0, []
    for alias, label, column in parsed:
        try:
            result = sequences.resync(alias, label, column, user=request.user)
            done += int(result.changed)
        except (SequenceNotFound, ResyncRefused) as exc:
            failed.append(f"{label}.{column} ({alias}): {exc}")
    messages.success(
        request, ngettext("%(n)d sequence resynced.", "%(n)d sequences resynced.", done) % {"n": done}
    )
    for failure in failed:
        messages.error(request, _("Not resynced: %(why)s") % {"why": failure})
    return HttpResponseRedirect(page_url(admin, "changelist"))


def _resync_job(admin: PageAdmin, request: HttpRequest, keys: list[str]) -> HttpResponse:
    """With task workers: every sequence resynced by one job, one sequence per unit; its page follows it."""
    what = ngettext("%(n)d sequence", "%(n)d sequences", len(keys)) % {"n": len(keys)}
    try:
        job = jobs.start(Job.RESYNC_ALL, what, {"keys": keys}, request.user)
    except jobs.JobNotStarted as exc:
        return refused(admin, request, Refused(f"{exc} {_('Nothing was changed.')}", 503))
    url = reverse(f"{admin.admin_site.name}:integrity_job_job", args=[job.pk])
    return HttpResponseRedirect(url, status=303)


@methods("GET", "POST")
def sequence_lower(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Close a gap: lower a sequence that is ahead of its data, after confirmation."""
    require(request, permissions.RESYNC_SEQUENCE)
    key = request.POST.get("key", "") if request.method == "POST" else request.GET.get("key", "")
    try:
        alias, label, column = _parse_key(key)
        model, _link = sequences.find(alias, label, column)
    except SequenceNotFound as exc:
        return refused(admin, request, Refused(str(exc), 400))
    info = next(i for i in sequences.collect_alias(alias, [model]).sequences if i.column == column)
    if request.method == "GET":
        return render(
            request,
            "integrity/lower.html",
            page_context(admin, request, title=_("Lower a sequence"), info=info, key=key),
        )
    try:
        result = sequences.resync(alias, label, column, user=request.user, lower=True)
    except ResyncRefused as exc:
        return refused(admin, request, Refused(str(exc), 409))
    messages.success(request, _result_message(result))
    return HttpResponseRedirect(page_url(admin, "changelist"))
