"""The group page's previous / next links: where a group stands among its rule's groups.

Placing a group means counting the rule's groups (a scan), which the group
page itself never does: its pager asks for it by its own request (htmx, on
load) and is replaced by the group's position and its neighbours' links.
Without JavaScript the links are plain: ``to=next`` / ``to=previous`` finds
the neighbour then and redirects to its page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _

from integrity import permissions
from integrity.duplicates import service as duplicates
from integrity.duplicates.forms import rule_from
from integrity.duplicates.neighbours import neighbours
from integrity.duplicates.rules import InvalidPk, Rule, parse_pk
from integrity.duplicates.service import ScanTimedOut
from integrity.pages import PageAdmin, Refused, is_htmx, methods, page_url, refused, require, with_query

DIRECTIONS = ("next", "previous")


def _first_pk(request: HttpRequest, rule: Rule) -> Any:
    """The smallest primary key of the group of row ``pk``: what the rule's groups are placed by."""
    try:
        pk = parse_pk(rule, request.GET.get("pk", ""))
    except InvalidPk as exc:
        raise Refused(str(exc), 400) from None
    members = duplicates.group_of(rule, pk, limit=2)
    if not members:
        message = _("%(model)s row %(pk)s is not in any duplicate group of this rule (or does not exist).")
        raise Refused(message % {"model": rule.label, "pk": pk}, 404)
    return members[0].pk


@methods("GET")
def group_pager(admin: PageAdmin, request: HttpRequest) -> HttpResponse:
    """htmx: the pager, placed. ``to=next|previous``: a redirect to that group's page (or the rule's, at an end)."""
    require(request, permissions.VIEW_DUPLICATES)
    direction = request.GET.get("to", "")
    try:
        if direction and direction not in DIRECTIONS:
            raise Refused(_("Go to the next or the previous group."), 400)
        rule = rule_from(request.GET.get("rule", ""))
        first = _first_pk(request, rule)
    except Refused as exc:
        return refused(admin, request, exc)
    try:
        found = neighbours(rule, first)
        timed_out = False
    except (ScanTimedOut, DatabaseError):
        # Not an error of the server: the group page stays usable, its pager says why it has no place.
        found, timed_out = None, True
    group_url = page_url(admin, "group")
    if direction and not is_htmx(request):
        if timed_out:
            return refused(
                admin, request, Refused(_("The groups could not be counted in time; try again."), 200)
            )
        target = found.next if found is not None and direction == "next" else None
        if found is not None and direction == "previous":
            target = found.previous
        if target is None:
            last = direction == "next"
            messages.info(
                request,
                _("That was the last group of this rule.")
                if last
                else _("That was the first group of this rule."),
            )
            return HttpResponseRedirect(with_query(page_url(admin, "rule"), rule=rule.key))
        return HttpResponseRedirect(with_query(group_url, rule=rule.key, pk=target))
    pager = None
    if found is not None:
        pager = {
            "position": found.position,
            "total": found.total,
            "previous": None
            if found.previous is None
            else with_query(group_url, rule=rule.key, pk=found.previous),
            "next": None if found.next is None else with_query(group_url, rule=rule.key, pk=found.next),
        }
    return render(request, "integrity/group_pager.html", {"pager": pager, "placed": True})
