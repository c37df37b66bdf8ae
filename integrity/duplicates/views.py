"""Admin views of the duplicates pages: thin wrappers around ``rules``, ``enforcement`` and ``duplicates``.

Every view is GET-only (nothing changes in them) and checks
``integrity.view_duplicaterule``. The rules page never scans: each
non-enforced rule's count comes from its own lazy request (``rule_count``).
A rule key that names no rule is a 404, a primary key of the wrong type a 400,
a page that does not exist a 404. A scan that times out is not an error of the
server: it is shown (HTTP 200) with a way to retry.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

from django.contrib.admin.utils import display_for_field, display_for_value
from django.db import DatabaseError, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_tables2 import RequestConfig

from integrity import jobs, permissions
from integrity.conf import settings
from integrity.duplicates import enforce, enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.forms import RuleFilterForm, merge_form, rule_from
from integrity.duplicates.rules import InvalidPk, Rule, describe, parse_pk, rules_for
from integrity.duplicates.service import GROUP_LIMIT, POLICIES, ScanTimedOut
from integrity.duplicates.tables import GroupPages, GroupTable, RuleRow, RuleTable, dom_id, key_text
from integrity.lists import Filter, app_and_database, list_context, matches, object_url, problems_first
from integrity.models import Job
from integrity.pages import (
    PageAdmin,
    Refused,
    change_url,
    methods,
    page_context,
    page_url,
    refused,
    require,
    with_changes,
    with_query,
)

logger = logging.getLogger("integrity.views_duplicates")  # the name it had before the move

PAGE_RE = re.compile(r"[0-9]{1,9}")


def _rule(request: HttpRequest) -> Rule:
    return rule_from(request.GET.get("rule", ""))


# ---------------------------------------------------------------------------
# The rules page and its lazy counts
# ---------------------------------------------------------------------------


def rule_rows() -> list[RuleRow]:
    """Every rule with its enforcement, problems first. Catalog queries only: no scan."""
    found = rules_for()
    states = enforcement.classify(found)
    return sorted((RuleRow(rule, states[rule.key]) for rule in found), key=lambda row: row.sort_key)


def _problems_only(wanted: dict[str, str]) -> bool:
    """The default view: the rules the database does not enforce; ``?show=all`` (or a state chosen) lifts it."""
    return not (wanted["enforcement"] or wanted["show"] == "all")


def _filtered(wanted: dict[str, str], rows: list[RuleRow]) -> list[RuleRow]:
    if wanted["enforcement"] == enforcement.NOT_ENFORCED or _problems_only(wanted):
        rows = [r for r in rows if r.state in enforcement.NOT_ENFORCED_STATES]
    elif wanted["enforcement"]:
        rows = [r for r in rows if r.state == wanted["enforcement"]]
    if wanted["app"]:
        rows = [r for r in rows if r.app_label == wanted["app"]]
    if wanted["database"]:
        rows = [r for r in rows if r.database == wanted["database"]]
    if wanted["q"]:
        rows = [r for r in rows if matches(wanted["q"], r.label, r.rule.description, r.rule.name)]
    return rows


def _filters(wanted: dict[str, str], apps: list[str], databases: list[str]) -> list[Filter]:
    """The sidebar: enforcement (by default the rules not enforced), app, database."""
    not_enforced = _problems_only(wanted) or wanted["enforcement"] == enforcement.NOT_ENFORCED
    return [
        problems_first(
            "enforcement",
            _("enforcement"),
            enforcement.STATES,
            wanted,
            default=_("Not enforced"),
            default_selected=not_enforced,
        ),
        *app_and_database(apps, databases),
    ]


def _unsupported() -> list[tuple[str, str]]:
    return [
        (alias, connections[alias].vendor)
        for alias in connections
        if connections[alias].vendor != "postgresql"
    ]


@methods("GET")
def rule_list(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The rules page: every rule and its enforcement at once; groups counted lazily (htmx)."""
    require(request, permissions.VIEW_DUPLICATES)
    wanted = RuleFilterForm(request.GET).values()
    rows = rule_rows()
    shown = _filtered(wanted, rows)
    every = _filtered({**wanted, "show": "all"}, rows)
    table = RuleTable(shown, rule_url=page_url(admin, "rule"), count_url=page_url(admin, "count"))
    RequestConfig(request, paginate={"per_page": RuleTable._meta.per_page}).configure(table)
    counts = Counter(r.state for r in rows)
    context = page_context(
        admin,
        request,
        title=_("Duplicates"),
        table=table,
        total=len(rows),
        counts={state: counts[state] for state in enforcement.STATES},
        not_enforced=sum(counts[s] for s in enforcement.NOT_ENFORCED_STATES),
        unsupported=_unsupported(),
        filters=wanted,
        problems_only=_problems_only(wanted),
        shown_count=len(shown),
        all_count=len(every),
        show_all_url=f"?{with_changes(request.GET, show='all')}",
        scan_all_job_url=page_url(admin, "scan_all_job") if jobs.worker_backed() else None,
        show_problems_url=f"?{with_changes(request.GET, show='', enforcement='')}",
        search_help=_("Searches the model, the fields or expression, and the rule's name."),
        **list_context(
            request.GET,
            _filters(wanted, sorted({r.app_label for r in rows}), sorted({r.database for r in rows})),
        ),
    )
    return render(request, "integrity/duplicates.html", context)


@methods("GET")
def rule_count(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The groups and rows cells of one rule on the rules page: one scan (totals only)."""
    require(request, permissions.VIEW_DUPLICATES)
    try:
        rule = _rule(request)
    except Refused as exc:
        return refused(admin, request, exc)
    context: dict[str, Any] = {
        "rule_url": with_query(page_url(admin, "rule"), rule=rule.key),
        "count_url": with_query(page_url(admin, "count"), rule=rule.key),
        "rows_id": f"{dom_id(rule.key)}-rows",
        "timeout_ms": settings.SCAN_TIMEOUT_MS,
    }
    try:
        context["groups"], context["rows"] = duplicates.totals(rule)
    except ScanTimedOut:
        context["timed_out"] = True
    except DatabaseError as exc:
        # A table dropped or altered behind Django's back: say so in the cell
        # rather than leave "counting…" forever behind a 500.
        logger.warning("Duplicate scan of %s failed: %s", rule.key, exc)
        context["error"] = str(exc).strip()
    return render(request, "integrity/duplicates_count.html", context)


# ---------------------------------------------------------------------------
# A rule's groups
# ---------------------------------------------------------------------------


def _page_number(request: HttpRequest, field: str) -> int:
    raw = request.GET.get(field, "1")
    if not PAGE_RE.fullmatch(raw) or int(raw) < 1:
        raise Refused(_("Invalid page number %(page)r.") % {"page": raw}, 404)
    return int(raw)


def _groups_table(
    admin: PageAdmin, request: HttpRequest, rule: Rule
) -> tuple[GroupTable, duplicates.ScanResult]:
    """One page of groups from one scan; raises ``ScanTimedOut`` or ``Refused`` (a page past the last)."""
    per_page = max(settings.GROUPS_PER_PAGE, 1)
    page = _page_number(request, f"{GroupTable._meta.prefix}page")
    pages = GroupPages(rule, offset=(page - 1) * per_page, limit=per_page)
    last = max(-(-len(pages) // per_page), 1)
    if page > last:
        message = _("Page %(page)d does not exist: this rule has %(n)d pages of groups.")
        raise Refused(message % {"page": page, "n": last}, 404)
    table = GroupTable(
        pages,
        rule=rule,
        group_url=page_url(admin, "group"),
        pk_url=lambda pk: object_url(admin, request, rule.label, pk),
    )
    table.request = request
    table.paginate(page=page, per_page=per_page)
    return table, pages.result


@methods("GET")
def rule_detail(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """One rule: its enforcement, then its groups (largest first, paginated); enforced rules scan on demand."""
    require(request, permissions.VIEW_DUPLICATES)
    try:
        rule = _rule(request)
    except Refused as exc:
        return refused(admin, request, exc)
    state = enforcement.classify([rule])[rule.key]
    verify = request.GET.get("verify") == "1"
    rule_url = with_query(page_url(admin, "rule"), rule=rule.key)
    context = page_context(
        admin,
        request,
        title=f"{rule.label}: {rule.description}",
        rule=rule,
        db_table=rule.model._meta.db_table,
        enforcement=state,
        verify=verify,
        verify_url=with_query(page_url(admin, "rule"), rule=rule.key, verify="1"),
        timeout_ms=settings.SCAN_TIMEOUT_MS,
        scan_job_url=page_url(admin, "scan_job") if jobs.worker_backed() else None,
        merge_all_url=page_url(admin, "merge_all")
        if request.user.has_perm(permissions.MERGE_DUPLICATES)
        else None,
        policies=POLICIES,
        enforce_url=with_query(page_url(admin, "enforce"), rule=rule.key)
        if enforce.offered(rule, state) and request.user.has_perm(permissions.ENFORCE_DUPLICATES)
        else None,
    )
    if state.scannable and (state.state != enforcement.ENFORCED or verify):
        try:
            context["table"], context["result"] = _groups_table(admin, request, rule)
        except ScanTimedOut:
            context["timed_out"] = True
        except Refused as exc:
            return refused(admin, request, exc, back_url=rule_url, back_label=_("First page of the groups"))
        except DatabaseError as exc:
            logger.warning("Duplicate scan of %s failed: %s", rule.key, exc)
            context["error"] = str(exc).strip()
    return render(request, "integrity/rule.html", context)


# ---------------------------------------------------------------------------
# One group, side by side
# ---------------------------------------------------------------------------


def _pk(request: HttpRequest, rule: Rule) -> Any:
    raw = request.GET.get("pk")
    if raw is None or raw == "":
        raise Refused(_("Which row? The pk parameter is missing."), 400)
    try:
        return parse_pk(rule, raw)
    except InvalidPk as exc:
        raise Refused(str(exc), 400) from None


def _shown(value: Any, f: Any, empty: str) -> Any:
    """A member's value as the comparison shows it.

    Relations show the stored key (following them would cost a query per
    member). Text stays as it is stored (Django 6.1's ``display_for_field``
    strips it): where the members differ the template marks its invisible
    characters (the ``invisibles`` filter), so that " Acme Ltd" and
    "Acme Ltd" do not look the same while the row says they differ.
    """
    if f.is_relation:
        return display_for_value(value, empty)
    if isinstance(value, str) and value and not f.choices:
        return value
    return display_for_field(value, f, empty)


def _field_rows(rule: Rule, members: list[Model]) -> list[dict[str, Any]]:
    """A row per concrete field, a value per member; ``differs`` when the members disagree."""
    empty = "-"
    rows = []
    for f in rule.model._meta.concrete_fields:
        if f.primary_key:
            continue  # each column is headed by its member's primary key (which always differs)
        raw = [getattr(m, f.attname) for m in members]
        shown = [_shown(v, f, empty) for v in raw]
        rows.append(
            {
                "name": f.name,
                "label": f.verbose_name,
                "values": shown,
                "differs": len({repr(v) for v in raw}) > 1,
                "key": f.name in rule.fields,
            }
        )
    return rows


def _key_of(rule: Rule, pk: Any) -> list[tuple[str, Any]]:
    """(name, value) of each part of the rule's key, for row ``pk``."""
    qs, names = duplicates.keyed(rule)
    key = qs.filter(pk=pk).values_list(*names).first() or ()
    return list(zip([describe(e) for e in rule.key_expressions], key, strict=False))


def _key_display(key: list[tuple[str, Any]]) -> str:
    return ", ".join(f"{name} = {key_text(value)}" for name, value in key)


def _group_title(key: list[tuple[str, Any]], size: int, capped: bool) -> str:
    """The group as a person knows it: its key (text quoted, so a stray space shows) and its size."""
    shown = ", ".join(
        f"{name} = {'NULL' if value is None else repr(value) if isinstance(value, str) else value}"
        for name, value in key
    )
    rows = (
        ngettext("%(n)s+ row", "%(n)s+ rows", size) if capped else ngettext("%(n)s row", "%(n)s rows", size)
    ) % {"n": f"{size:,}"}
    return f"{shown} – {rows}"


@methods("GET")
def group_detail(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The members of one group side by side: differing fields highlighted, references counted, change links."""
    require(request, permissions.VIEW_DUPLICATES)
    try:
        rule = _rule(request)
        pk = _pk(request, rule)
        state = enforcement.classify([rule])[rule.key]
        if not state.scannable:
            raise Refused(
                _("The table of %(model)s does not exist on this database.") % {"model": rule.label}, 404
            )
        members = duplicates.group_of(rule, pk, limit=GROUP_LIMIT)
        if not members:
            message = _(
                "%(model)s row %(pk)s is not in any duplicate group of this rule (or does not exist)."
            )
            raise Refused(message % {"model": rule.label, "pk": pk}, 404)
    except Refused as exc:
        return refused(admin, request, exc)
    refs = duplicates.references(rule, members)
    reference_rows = [{"label": r.label, "counts": [r.counts[m.pk] for m in members]} for r in refs]
    totals = [sum(r.counts[m.pk] for r in refs) for m in members]
    field_rows = _field_rows(rule, members)
    rule_url = with_query(page_url(admin, "rule"), rule=rule.key)
    key = _key_of(rule, pk)
    capped = len(members) >= GROUP_LIMIT
    context = page_context(
        admin,
        request,
        title=_group_title(key, len(members), capped),
        pager_url=with_query(page_url(admin, "group_pager"), rule=rule.key, pk=members[0].pk),
        rule=rule,
        rule_url=rule_url,
        db_table=rule.model._meta.db_table,
        enforcement=state,
        members=members,
        capped=capped,
        key_display=_key_display(key),
        columns=[
            {"pk": m.pk, "pk_label": f"#{m.pk}", "text": str(m), "change_url": change_url(admin, request, m)}
            for m in members
        ],
        field_rows=field_rows,
        reference_rows=reference_rows,
        reference_totals=totals,
        merge=merge_form(
            request, admin, members, dict(zip([m.pk for m in members], totals, strict=True)), field_rows
        ),
    )
    return render(request, "integrity/group.html", context)


def _start_job(
    admin: PageAdmin, request: HttpRequest, kind: str, what: str, params: dict[str, Any]
) -> HttpResponse:
    """Start (or join the running) scan job and follow it on its page; never a scan in the request."""
    if not jobs.worker_backed():
        message = _(
            "No task worker is configured (INTEGRITY_TASK_BACKEND): scans run on their pages, with the "
            "scan timeout. Nothing was changed."
        )
        return refused(admin, request, Refused(message, 409))
    try:
        job = jobs.service.start_once(kind, what, params, request.user)
    except jobs.JobNotStarted as exc:
        return refused(admin, request, Refused(f"{exc} {_('Nothing was changed.')}", 503))
    url = reverse(f"{admin.admin_site.name}:integrity_job_job", args=[job.pk])
    return HttpResponseRedirect(url, status=303)


@methods("POST")
def scan_job(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Scan one rule as a job (the rule page offers it when its in-request scan timed out); its page follows it."""
    require(request, *jobs.service.PERMISSIONS[Job.SCAN])
    try:
        rule = rule_from(request.POST.get("rule", ""))
    except Refused as exc:
        return refused(admin, request, exc)
    return _start_job(admin, request, Job.SCAN, f"{rule.label}: {rule.description}", {"rule": rule.key})


@methods("POST")
def scan_all_job(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """Count every rule the database does not enforce, as one job (the rules page offers it with workers)."""
    require(request, *jobs.service.PERMISSIONS[Job.SCAN_ALL])
    return _start_job(admin, request, Job.SCAN_ALL, _("Every rule the database does not enforce"), {})
