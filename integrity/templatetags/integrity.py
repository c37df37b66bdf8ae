"""Template tags of the dashboard (``admin/integrity/app_index.html``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from integrity.dashboard.cards import duplicate_cards, event_cards, same_page_note, sequence_cards
from integrity.dashboard.problems import Problems, event_problems, rule_problems, sequence_problems
from integrity.duplicates.invisibles import marked
from integrity.lists import relative_time
from integrity.pages import with_query
from integrity.permissions import RESYNC_SEQUENCE, VIEW_DUPLICATES, VIEW_EVENTS, VIEW_SEQUENCES
from integrity.sequences import service as sequences
from integrity.sequences.tables import row_dom_id

register = template.Library()


def _page(site: str, name: str) -> str | None:
    """The page's URL on this AdminSite, or None when the site does not register it."""
    try:
        return reverse(f"{site}:integrity_{name}")
    except NoReverseMatch:
        return None


def _sequence_cards(site: str) -> list[dict[str, Any]]:
    base = _page(site, "sequence_changelist")
    if base is None:
        return []
    return [{**card.__dict__, "url": f"{base}?{card.query}"} for card in sequence_cards()]


def _duplicate_cards(site: str) -> list[dict[str, Any]]:
    base, summary = _page(site, "duplicaterule_changelist"), _page(site, "duplicaterule_summary")
    if base is None or summary is None:
        return []
    cards = [{**card.__dict__, "url": f"{base}?{card.query}"} for card in duplicate_cards()]
    # Counting groups means scanning tables: that card is filled in by its own
    # request after the dashboard is shown, never while it renders.
    cards.append(
        {
            "title": _("Duplicate groups"),
            "value": None,
            "detail": _("counting…"),
            "level": "pending",
            "url": f"{base}?enforcement=not_enforced",
            "lazy_url": summary,
            "note": same_page_note(),
        }
    )
    return cards


def _event_cards(site: str) -> list[dict[str, Any]]:
    base = _page(site, "eventgroup_changelist")
    if base is None:
        return []
    return [{**card.__dict__, "url": f"{base}?{card.query}"} for card in event_cards()]


@register.simple_tag(takes_context=True)
def integrity_dashboard(context: template.Context) -> list[dict[str, Any]]:
    """The summary cards the current user may see, each with its link."""
    request: HttpRequest | None = context.get("request")
    if request is None:
        return []
    site = getattr(request, "current_app", None) or "admin"
    cards: list[dict[str, Any]] = []
    if request.user.has_perm(VIEW_SEQUENCES):
        cards += _sequence_cards(site)
    if request.user.has_perm(VIEW_DUPLICATES):
        cards += _duplicate_cards(site)
    if request.user.has_perm(VIEW_EVENTS):
        cards += _event_cards(site)
    return cards


def _panel(title: str, found: Problems, url: str, empty: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "items": found.items,
        "total": found.total,
        "url": url,
        "empty": empty,
        "unread": found.unread,
        **extra,
    }


def _sequence_panels(request: HttpRequest, site: str) -> list[dict[str, Any]]:
    base = _page(site, "sequence_changelist")
    resync = _page(site, "sequence_resync")
    if base is None or resync is None:
        return []
    rows = [info for report in sequences.collect() for info in report.sequences]
    behind, overflow = sequence_problems(rows)
    by_key = {r.key: r for r in rows}
    for item in overflow.items:
        item.url = f"{base}#{row_dom_id(by_key[item.key])}"
    return [
        _panel(
            _("Sequences behind their data"),
            behind,
            with_query(base, status=sequences.BEHIND),
            _("No sequence is behind: the next inserts get free ids."),
            resync_url=resync if request.user.has_perm(RESYNC_SEQUENCE) else "",
            fix=_("Resync"),
        ),
        _panel(
            _("Near overflow or type mismatch"),
            overflow,
            with_query(base, capacity="warning"),
            _("Every sequence has room to grow."),
            fix=_("How to fix"),
        ),
    ]


def _rule_panels(site: str) -> list[dict[str, Any]]:
    base, rule = _page(site, "duplicaterule_changelist"), _page(site, "duplicaterule_rule")
    if base is None or rule is None:
        return []
    found = rule_problems()
    for item in found.items:
        item.url = with_query(rule, rule=item.key)
    return [
        _panel(
            _("Rules not enforced"),
            found,
            base,
            _("The database enforces every uniqueness rule."),
            fix=_("Review its duplicates"),
        )
    ]


def _event_panels(site: str) -> list[dict[str, Any]]:
    base, group = _page(site, "eventgroup_changelist"), _page(site, "eventgroup_group")
    if base is None or group is None:
        return []
    found = event_problems()
    for item in found.items:
        item.url = with_query(group, id=item.key)
    return [
        _panel(
            _("Busiest IntegrityErrors, 24 h"),
            found,
            with_query(base, range="24h"),
            _("No IntegrityError in the last 24 hours."),
            fix=_("Explain and fix"),
        )
    ]


@register.simple_tag(takes_context=True)
def integrity_problems(context: template.Context) -> list[dict[str, Any]]:
    """The problems themselves, the top few of each kind the user may see, each with its fix."""
    request: HttpRequest | None = context.get("request")
    if request is None:
        return []
    site = getattr(request, "current_app", None) or "admin"
    panels: list[dict[str, Any]] = []
    if request.user.has_perm(VIEW_SEQUENCES):
        panels += _sequence_panels(request, site)
    if request.user.has_perm(VIEW_DUPLICATES):
        panels += _rule_panels(site)
    if request.user.has_perm(VIEW_EVENTS):
        panels += _event_panels(site)
    return panels


@register.filter
def ago(value: datetime | None) -> SafeString:
    """``{{ when|ago }}``: "3 minutes ago", the absolute time and zone in the title (``integrity.lists.relative_time``)."""
    return relative_time(value)


@register.filter
def number(value: int | None) -> str:
    """Thousands separators, as in the sequence table; a dash for nothing."""
    return "—" if value is None or value == "" else f"{int(value):,}"


@register.filter
def invisibles(value: Any) -> SafeString:
    """Text with its invisible and look-alike characters marked (see ``integrity.duplicates.invisibles``)."""
    if isinstance(value, str) and not isinstance(value, SafeString):
        return marked(value)
    return conditional_escape(value)
