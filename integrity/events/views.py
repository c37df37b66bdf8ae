"""Admin views of the events pages: the groups of recorded IntegrityErrors and one group's page.

Both are GET-only and need ``integrity.view_eventgroup``. The list is
filtered in SQL (kind, model, database, handled, time range), sorted by
django-tables2 (last seen first) and paginated; every filter value is checked
against its choices and a value that is not one is a 400 that says so, never
an empty page. An htmx request for the list gets the table only: the page
polls it every ``INTEGRITY_EVENTS_POLL_SECONDS`` while the tab is visible.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django_tables2 import RequestConfig

from integrity import jobs, permissions, sequences
from integrity.conf import settings
from integrity.db import transaction_text
from integrity.events import charts, lifecycle, locations, trends, violations
from integrity.events.forms import HANDLED, RANGES, STATE_FILTERS, EventFilterForm
from integrity.events.recording import MAX_SOURCES
from integrity.events.tables import EventGroupTable, SampleTable, explain_group, target_text, when
from integrity.inputs import BadValue, pk_value
from integrity.lists import Filter, list_context, user_link
from integrity.models import EventGroup, Job
from integrity.pages import PageAdmin, Refused, is_htmx, methods, page_context, page_url, refused, require

# The kinds the parser gives; kinds found in the data count too.
KNOWN_KINDS = (*violations.SQLSTATES.values(), violations.UNKNOWN)
ID_DIGITS = 18


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------


def _choices() -> dict[str, list[str]]:
    """The values each filter offers: what the data holds, plus the known kinds and configured databases."""
    found = set(EventGroup.objects.order_by().values_list("kind", "model", "database").distinct())
    return {
        "kind": sorted({k for k, _m, _d in found} | set(KNOWN_KINDS)),
        "model": sorted({m for _k, m, _d in found if m}),
        "database": sorted({d for _k, _m, d in found} | set(connections)),
    }


def parse_filters(request: HttpRequest, choices: dict[str, list[str]]) -> dict[str, str]:
    """The filters asked for, each checked against its choices: a value that is not one is a ``Refused`` 400."""
    return EventFilterForm(request.GET, choices).values()


def filtered(wanted: dict[str, str], now: Any = None) -> QuerySet[EventGroup]:
    """The groups the filters keep, in SQL; the time range is on ``last_seen``."""
    qs = EventGroup.objects.all()
    for name in ("kind", "model", "database"):
        if wanted.get(name):
            qs = qs.filter(**{name: wanted[name]})
    if wanted.get("handled") == "yes":
        qs = qs.filter(handled_count__gt=0)
    elif wanted.get("handled") == "no":
        qs = qs.filter(handled_count=0)
    delta = RANGES.get(wanted.get("range") or "all", (None, ""))[0]
    if delta is not None:
        qs = qs.filter(last_seen__gte=(now or timezone.now()) - delta)
    for word in (wanted.get("q") or "").split():
        qs = qs.filter(
            Q(constraint__icontains=word)
            | Q(table__icontains=word)
            | Q(model__icontains=word)
            | Q(sequence__icontains=word)
        )
    state = wanted.get("state") or ""
    if state != "all":
        qs = lifecycle.with_states(qs, [state] if state else list(lifecycle.OPEN), now)
    return qs


def _filters(choices: dict[str, list[str]]) -> list[Filter]:
    """The sidebar: state (by default unresolved and regressed), when last seen, kind, handled, model, database."""
    return [
        Filter("state", _("state"), list(STATE_FILTERS.items()), show_all=False),
        Filter(
            "range", _("last seen"), [(k, label) for k, (_d, label) in RANGES.items()], "all", show_all=False
        ),
        Filter("kind", _("kind"), [(k, k) for k in choices["kind"]]),
        Filter("handled", _("handled"), list(HANDLED.items())),
        Filter("model", _("model"), [(m, m) for m in choices["model"]]),
        Filter("database", _("database"), [(d, d) for d in choices["database"]]),
    ]


# ---------------------------------------------------------------------------
# The events page and its polled table
# ---------------------------------------------------------------------------


def _table(admin: PageAdmin, request: HttpRequest, qs: QuerySet[EventGroup]) -> EventGroupTable:
    table = EventGroupTable(
        qs.order_by("-last_seen", "-id"),
        group_url=page_url(admin, "group"),
        selectable=request.user.has_perm(permissions.RESOLVE_EVENTS),
    )
    RequestConfig(request, paginate={"per_page": EventGroupTable._meta.per_page}).configure(table)
    return table


def _totals(qs: QuerySet[EventGroup]) -> dict[str, int]:
    totals = qs.aggregate(groups=Count("id"), occurrences=Sum("count"), handled=Sum("handled_count"))
    return {k: int(v or 0) for k, v in totals.items()}


@methods("GET")
def event_list(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The groups of IntegrityErrors, last seen first; htmx requests (the poll) get the table only."""
    require(request, permissions.VIEW_EVENTS)
    choices = _choices()
    try:
        wanted = parse_filters(request, choices)
    except Refused as exc:
        return refused(admin, request, exc)
    if wanted["model"] and wanted["model"] not in choices["model"]:
        choices["model"] = sorted([*choices["model"], wanted["model"]])  # an installed model, no event yet
    qs = filtered(wanted)
    base = page_url(admin, "changelist")
    query = request.GET.urlencode()
    context = page_context(
        admin,
        request,
        title=_("IntegrityError events"),
        table=_table(admin, request, qs),
        totals=_totals(qs),
        filters=wanted,
        search_help=_("Searches the constraint, table, model and sequence names."),
        **list_context(request.GET, _filters(choices)),
        can_resolve=request.user.has_perm(permissions.RESOLVE_EVENTS),
        state_url=page_url(admin, "state"),
        prune_url=page_url(admin, "prune") if jobs.service.allowed(request.user, Job.PRUNE) else None,
        prune_as_job=jobs.worker_backed(),
        list_url=request.get_full_path(),
        poll_seconds=settings.EVENTS_POLL_SECONDS,
        refresh_url=f"{base}?{query}" if query else base,
        updated=when(timezone.now()),
    )
    if is_htmx(request):
        response = render(request, "integrity/events_live.html", context)
    else:
        response = render(request, "integrity/events.html", context)
    # One URL, two representations: caches (and the back button) must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


# ---------------------------------------------------------------------------
# One group
# ---------------------------------------------------------------------------


def _group(request: HttpRequest) -> EventGroup:
    raw = request.GET.get("id", "")
    if not raw:
        raise Refused(_("Which group? The id parameter is missing."), 400)
    if not raw.isascii() or not raw.isdigit() or len(raw) > ID_DIGITS:
        raise Refused(_("%(id)r is not a valid event group id (a positive number).") % {"id": raw}, 400)
    group = EventGroup.objects.filter(pk=int(raw)).first()
    if group is None:
        raise Refused(_("There is no event group %(id)s (it may have been deleted).") % {"id": raw}, 404)
    return group


def _counted(sources: Any) -> list[tuple[str, int]]:
    """A ``{name: count}`` of views or paths, busiest first."""
    if not isinstance(sources, dict):
        return []
    return sorted(((str(k), int(v)) for k, v in sources.items()), key=lambda item: (-item[1], item[0]))


def locations_context(group: EventGroup) -> list[dict[str, Any]]:
    """The group's top locations, busiest first, each with the frames that called it in its newest sample.

    The counts are the group's counter (every occurrence, not only the sampled
    ones); the callers come from one query over the newest samples (bounded).
    """
    top = locations.top(group.locations)
    if not top:
        return []
    wanted = {locations.key(loc): loc for loc in top}
    newest = group.samples.order_by("-created_at", "-id").values_list("locations", flat=True)
    for frames in newest[: locations.SAMPLES_READ]:
        if isinstance(frames, list) and frames and isinstance(frames[0], dict):
            loc = wanted.get(locations.key(frames[0]))
            if loc is not None and "via" not in loc:
                loc["via"] = frames[1:]
    return top


def _reverse(admin: PageAdmin, name: str) -> str | None:
    try:
        return reverse(f"{admin.admin_site.name}:{name}")
    except NoReverseMatch:
        return None


def _resync_fix(key: str) -> dict[str, str]:
    """The sequence a resync fix moves, by name, and the SQL its button runs now (none when it changes nothing)."""
    try:
        alias, label, column = sequences.parse_key(key)
        name = sequences.named(key)
        sql = sequences.resync_sql(alias, label, column)
    except sequences.SequenceNotFound:  # the model or its sequence is gone since the error
        return {"sequence_name": key.split(":", 1)[-1].replace(":", ".")}
    except sequences.ResyncRefused as exc:
        return {"sequence_name": name, "resync_refused": str(exc)}
    return {"sequence_name": name, "resync_sql": transaction_text(sql) if sql else ""}


def fix_context(admin: PageAdmin, request: HttpRequest, fix: Any) -> dict[str, Any] | None:
    """What the page offers for the explanation's fix: a resync form, a link to the rule, or the label alone."""
    if fix is None:
        return None
    shown: dict[str, Any] = {"label": fix.label, "kind": fix.kind}
    if fix.kind == "resync" and fix.sequence_key:
        url = _reverse(admin, "integrity_sequence_resync")
        if url and request.user.has_perm(permissions.RESYNC_SEQUENCE):
            shown["resync_url"] = url
            shown["sequence_key"] = fix.sequence_key
            shown.update(_resync_fix(fix.sequence_key))
        else:
            shown["missing"] = _("Resyncing a sequence needs the permission integrity.resync_sequence.")
    elif fix.kind == "widen":
        shown["sql"], shown["migration"] = fix.sql, fix.migration
        url = _reverse(admin, "integrity_sequence_changelist")
        if url and request.user.has_perm(permissions.VIEW_SEQUENCES):
            shown["capacity_url"] = f"{url}?{urlencode({'capacity': 'warning'})}"
    elif fix.kind == "duplicates" and fix.rule_key:
        url = _reverse(admin, "integrity_duplicaterule_rule")
        if url and request.user.has_perm(permissions.VIEW_DUPLICATES):
            shown["rule_url"] = f"{url}?{urlencode({'rule': fix.rule_key})}"
        else:
            shown["missing"] = _("Seeing duplicates needs the permission integrity.view_duplicaterule.")
    return shown


def _lifecycle_context(admin: PageAdmin, request: HttpRequest, group: EventGroup) -> dict[str, Any]:
    """The group's state, its last fix verified against the occurrences since, and its timeline."""
    state = lifecycle.state_of(group)
    check = lifecycle.verification(group)
    fixed = None
    if check is not None:
        who = check.fix.user.get_username() if check.fix.user is not None else ""
        fixed = {"note": check.fix.note, "who": who, "at": when(check.fix.created_at), "since": check.since}
    return {
        "state": state,
        "state_label": lifecycle.STATES.get(state, state),
        "resolved_at": when(group.resolved_at) if group.resolved_at else "",
        "resolved_by": group.resolved_by.get_username() if group.resolved_by else "",
        "regressed_at": when(group.regressed_at) if group.regressed_at else "",
        "ignored_until": when(group.ignored_until) if group.ignored_until else "",
        "ignored_more": (group.ignored_until_count or 0) - group.count if group.ignored_until_count else None,
        "verified": fixed,
        "timeline": [
            {"at": when(e.at), "kind": e.kind, "text": e.text, "user": e.user}
            for e in lifecycle.timeline(group)
        ],
        "can_resolve": request.user.has_perm(permissions.RESOLVE_EVENTS),
        "state_url": page_url(admin, "state"),
        "decided": when(explanation_time) if (explanation_time := group.cause_at) else "",
    }


def charts_context(group: EventGroup) -> dict[str, Any]:
    """The group page's two bar charts, from the group's counters (two queries, whatever the count)."""
    hourly = trends.series(group.pk, trends.HOUR)
    daily = trends.series(group.pk, trends.DAY)
    return {
        "hourly_chart": charts.bar_chart(
            hourly,
            hourly=True,
            chart_id="event-chart-hourly",
            title=_("Occurrences per hour, the last %(n)s hours") % {"n": trends.HOURS},
        ),
        "daily_chart": charts.bar_chart(
            daily,
            hourly=False,
            chart_id="event-chart-daily",
            title=_("Occurrences per day, the last %(n)s days") % {"n": trends.DAYS},
        ),
    }


def _sample_users(admin: PageAdmin, request: HttpRequest, samples: SampleTable) -> dict[str, Any]:
    """The users of the samples shown, by name and linked (one query for the page); a pk that is none stays out."""
    user_model = get_user_model()
    wanted: dict[str, Any] = {}
    for row in samples.paginated_rows:
        if row.record.user_pk:
            try:
                wanted[row.record.user_pk] = pk_value(user_model, row.record.user_pk)
            except BadValue:
                continue
    found = user_model.objects.in_bulk(set(wanted.values())) if wanted else {}
    return {raw: user_link(admin, request, found[pk]) for raw, pk in wanted.items() if pk in found}


@methods("GET")
def group_detail(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """One group: its explanation and fix, counts, where it came from, and the samples kept."""
    require(request, permissions.VIEW_EVENTS)
    try:
        group = _group(request)
    except Refused as exc:
        return refused(admin, request, exc)
    explanation = explain_group(group)
    samples = SampleTable(group.samples.order_by("-created_at", "-id"), columns=list(group.columns or []))
    RequestConfig(request, paginate={"per_page": SampleTable._meta.per_page}).configure(samples)
    samples.users = _sample_users(admin, request, samples)
    group_url = f"{page_url(admin, 'group')}?{urlencode({'id': group.pk})}"
    context = page_context(
        admin,
        request,
        title=_("%(kind)s violation: %(target)s") % {"kind": group.kind, "target": target_text(group)},
        group=group,
        target=target_text(group),
        explanation=explanation,
        fix=fix_context(admin, request, explanation.fix if explanation is not None else None),
        first_seen=when(group.first_seen),
        last_seen=when(group.last_seen),
        views=_counted(group.views),
        paths=_counted(group.paths),
        samples=samples,
        max_sources=MAX_SOURCES,
        locations=locations_context(group),
        max_locations=locations.MAX_LOCATIONS,
        group_url=group_url,
        **_lifecycle_context(admin, request, group),
        **charts_context(group),
    )
    return render(request, "integrity/event_group.html", context)
