"""Admin views of the sequences page: thin wrappers around ``integrity.sequences``.

Each view is bound to a ModelAdmin (so it works on any AdminSite instance),
checks its own permission, and changes data only on POST (CSRF protected).
"""

from __future__ import annotations

from collections.abc import Iterable

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
from integrity.db import transaction_text
from integrity.lists import Filter, app_and_database, list_context, matches, problems_first
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
    if wanted["q"]:
        rows = [r for r in rows if matches(wanted["q"], r.model, r.table, r.column, r.sequence)]
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


def _filters(wanted: dict[str, str], apps: list[str], databases: list[str]) -> list[Filter]:
    """The sidebar: the status (by default the sequences that need action), capacity, app, database."""
    default = not (wanted["status"] or shows_all(wanted))
    return [
        problems_first(
            "status",
            _("status"),
            sequences.STATUSES,
            wanted,
            default=_("Needs action"),
            default_selected=default,
        ),
        Filter("capacity", _("capacity"), [("warning", _("Near overflow")), ("critical", _("Critical"))]),
        *app_and_database(apps, databases),
    ]


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
    apps, databases = sorted({r.app_label for r in all_rows}), [r.database for r in reports]
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
        can_resync=request.user.has_perm(permissions.RESYNC_SEQUENCE),
        resync_all_url=page_url(admin, "resync_all"),
        resync_selected_url=page_url(admin, "resync_selected"),
        search_help=_("Searches the model, table, column and sequence names."),
        **list_context(request.GET, _filters(wanted, apps, databases)),
    )
    return render(request, "integrity/sequences.html", context)


def _sql(each: Iterable[list[str] | Exception]) -> dict[str, str]:
    """``sql``: the statements of each change (one transaction each), as the service builds them.

    ``sql_refused``: why some would be refused (their SQL is left out).
    """
    found = list(each)
    texts = [transaction_text(item) for item in found if isinstance(item, list) and item]
    refusals = [str(item) for item in found if isinstance(item, Exception)]
    return {"sql": "".join(texts), "sql_refused": " ".join(refusals)}


def _lower_sql(info: SequenceInfo) -> list[str] | Exception:
    try:
        return sequences.resync_sql(info.database, info.model, info.column, lower=True)
    except (SequenceNotFound, ResyncRefused) as exc:
        return exc


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if target and safe else default


def _do_resync(request: HttpRequest, key: str, *, lower: bool) -> sequences.ResyncResult:
    alias, label, column = sequences.parse_key(key)
    return sequences.resync(alias, label, column, user=request.user, lower=lower)


def _result_message(result: sequences.ResyncResult) -> str:
    if not result.changed:
        return _("Sequence %(seq)s needed no change (next value %(value)s).") % {
            "seq": result.info.display_name,
            "value": f"{result.value_after:,}",
        }
    return _("Sequence %(seq)s: next value %(before)s → %(after)s.") % {
        "seq": result.info.display_name,
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
        context = page_context(admin, request, title=_("Resync all behind sequences"), behind=behind)
        return render(
            request,
            "integrity/resync_all.html",
            {
                **context,
                "resync_all_url": page_url(admin, "resync_all"),
                **_sql(sequences.resync_sql_each(behind)),
            },
        )
    keys = request.POST.getlist("key")
    if not keys:
        return refused(admin, request, Refused(_("No sequences were selected."), 400))
    try:
        parsed = [sequences.parse_key(k) for k in keys]
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


def _shown_key(key: str) -> str:
    """A key as a person reads it: "shop.Product.id (default)"."""
    alias, label, column = sequences.parse_key(key)
    return f"{label}.{column} ({alias})"


def _not_resynced(info: SequenceInfo) -> str:
    """Why "Resync selected" leaves this sequence as it is (only a sequence behind its data moves)."""
    if info.status in (sequences.OK, sequences.EMPTY):
        return _("already past its data: nothing to change")
    if info.status == sequences.AHEAD:
        return _("ahead of its data (a gap, harmless): a resync never lowers a sequence")
    reason = info.reason or _("its data could not be compared with the sequence")
    return _("%(status)s: %(reason)s") % {"status": info.status, "reason": reason}


@methods("POST")
def sequence_resync_selected(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The confirmation of "Resync selected": what will change, and why the others won't; its form resyncs."""
    require(request, permissions.RESYNC_SEQUENCE)
    keys = list(dict.fromkeys(request.POST.getlist("key")))
    if not keys:
        return refused(admin, request, Refused(_("No sequences were selected."), 400))
    try:
        for key in keys:
            sequences.parse_key(key)
    except SequenceNotFound as exc:
        return refused(admin, request, Refused(str(exc), 400))
    found = {info.key: info for report in sequences.collect() for info in report.sequences}
    behind = [found[k] for k in keys if k in found and found[k].status == sequences.BEHIND]
    skipped = [
        (found[k].key, found[k].display_name, _not_resynced(found[k]))
        if k in found
        else (k, _shown_key(k), _("no such sequence (the model or its sequence is gone)"))
        for k in keys
        if k not in found or found[k].status != sequences.BEHIND
    ]
    context = page_context(
        admin,
        request,
        title=_("Resync selected sequences"),
        behind=behind,
        skipped=skipped,
        resync_all_url=page_url(admin, "resync_all"),
    )
    return render(
        request, "integrity/resync_all.html", {**context, **_sql(sequences.resync_sql_each(behind))}
    )


@methods("GET", "POST")
def sequence_lower(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Close a gap: lower a sequence that is ahead of its data, after confirmation."""
    require(request, permissions.RESYNC_SEQUENCE)
    key = request.POST.get("key", "") if request.method == "POST" else request.GET.get("key", "")
    try:
        alias, label, column = sequences.parse_key(key)
        model, _link = sequences.find(alias, label, column)
    except SequenceNotFound as exc:
        return refused(admin, request, Refused(str(exc), 400))
    info = next(i for i in sequences.collect_alias(alias, [model]).sequences if i.column == column)
    if request.method == "GET":
        context = page_context(admin, request, title=_("Lower a sequence"), info=info, key=key)
        return render(request, "integrity/lower.html", {**context, **_sql([_lower_sql(info)])})
    try:
        result = sequences.resync(alias, label, column, user=request.user, lower=True)
    except ResyncRefused as exc:
        return refused(admin, request, Refused(str(exc), 409))
    messages.success(request, _result_message(result))
    return HttpResponseRedirect(page_url(admin, "changelist"))
