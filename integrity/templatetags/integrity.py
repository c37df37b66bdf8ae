"""Template tags of the dashboard (``admin/integrity/app_index.html``)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from integrity.dashboard import sequence_cards
from integrity.views import VIEW_PERM

register = template.Library()


@register.simple_tag(takes_context=True)
def integrity_dashboard(context: template.Context) -> list[dict[str, Any]]:
    """The summary cards the current user may see, each with its link."""
    request = context.get("request")
    if request is None or not request.user.has_perm(VIEW_PERM):
        return []
    site = getattr(request, "current_app", None) or "admin"
    base = reverse(f"{site}:integrity_sequence_changelist")
    return [{**card.__dict__, "url": f"{base}?{card.query}"} for card in sequence_cards()]


@register.filter
def number(value: int | None) -> str:
    """Thousands separators, as in the sequence table; a dash for nothing."""
    return "—" if value is None or value == "" else f"{int(value):,}"
