"""Template tags of the dashboard (``admin/integrity/app_index.html``)."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from integrity.dashboard.cards import duplicate_cards, event_cards, sequence_cards
from integrity.permissions import VIEW_DUPLICATES, VIEW_EVENTS, VIEW_SEQUENCES

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


@register.filter
def number(value: int | None) -> str:
    """Thousands separators, as in the sequence table; a dash for nothing."""
    return "—" if value is None or value == "" else f"{int(value):,}"
