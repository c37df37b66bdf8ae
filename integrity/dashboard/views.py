"""The dashboard's lazy card: "Duplicate groups" scans, so the app index asks for it once it is shown."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from integrity import permissions
from integrity.dashboard.cards import duplicate_groups_card, same_page_note
from integrity.duplicates.enforcement import NOT_ENFORCED
from integrity.pages import PageAdmin, methods, page_url, require, with_query


@methods("GET")
def summary_card(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """The dashboard's "Duplicate groups" card, filled in lazily (it scans, within one time budget)."""
    require(request, permissions.VIEW_DUPLICATES)
    card = duplicate_groups_card()
    url = with_query(page_url(admin, "changelist"), enforcement=NOT_ENFORCED)
    return render(
        request, "integrity/duplicates_card.html", {"card": card, "url": url, "note": same_page_note()}
    )
