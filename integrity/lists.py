"""What every list of the app shares with the Django admin's changelists: filters, search, counts, times, users.

The app's own lists (sequences, rules, events) are django-tables2 tables, not
``ChangeList``s; these helpers give them the admin's habits all the same: a
filter sidebar rendered by the admin's own ``admin/filter.html`` (one link per
choice, the selected one highlighted, "All" first), a search box, a count of
the rows found, times shown relative with the absolute time and zone in the
title, and users shown by name, linked to their admin page when the viewer
may see it. The registered changelists (resync and merge logs) use the same
time and user helpers in their ``list_display``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.contrib.admin.exceptions import NotRegistered
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _

from integrity.pages import change_url, row_change_url, with_changes

__all__ = [
    "SEARCH",
    "Choice",
    "Filter",
    "absolute_time",
    "app_and_database",
    "filter_specs",
    "list_context",
    "matches",
    "object_url",
    "pk_link",
    "problems_first",
    "relative_time",
    "user_link",
    "user_name",
]

SEARCH = "q"  # the admin's own name for the search parameter


def absolute_time(value: datetime) -> str:
    """A timestamp in the current time zone, to the second, with the zone: "2026-12-03 08:35:27 UTC"."""
    return date_format(timezone.localtime(value), "Y-m-d H:i:s T")


def relative_time(value: datetime | None, now: datetime | None = None) -> SafeString:
    """``<time>`` reading "3 minutes ago" (or "in 2 hours"), the absolute time and zone in its title.

    Under a minute reads "just now": ``timesince`` would say "0 minutes".
    """
    if value is None:
        return mark_safe("—")  # noqa: S308
    now = now or timezone.now()
    seconds = (now - value).total_seconds()
    if abs(seconds) < 60:
        text = _("just now")
    elif seconds > 0:
        text = _("%(delta)s ago") % {"delta": timesince(value, now, depth=1)}
    else:
        text = _("in %(delta)s") % {"delta": timeuntil(value, now, depth=1)}
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), absolute_time(value), text
    )


def user_name(user: Any) -> str:
    """Full name when the user has one, else the username."""
    full = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


def user_link(admin: Any, request: HttpRequest, user: Any) -> SafeString:
    """The user by name, linked to their admin change page when this viewer may see it; "—" for nobody."""
    if user is None:
        return mark_safe("—")  # noqa: S308
    url = change_url(admin, request, user)
    if url is None:
        return format_html("<span>{}</span>", user_name(user))
    return format_html('<a href="{}">{}</a>', url, user_name(user))


@dataclass(frozen=True)
class Choice:
    """One link of a filter: its label, the parameters it sets ("" drops one), whether it is the current one."""

    label: Any
    changes: dict[str, str]
    selected: bool


@dataclass(frozen=True)
class Filter:
    """One filter of a list's sidebar: the query parameter, its title, its choices (value, label).

    ``default`` is the value meant when the parameter is absent; ``all_label``
    names the choice without the parameter ("All"), listed first unless the
    choices hold the default themselves (``show_all=False``). ``links`` gives
    choices that set several parameters at once (the default views' "Needs
    action" and "All").
    """

    name: str
    title: Any
    choices: Sequence[tuple[str, Any]] = ()
    default: str = ""
    all_label: Any = None
    show_all: bool = True
    links: Sequence[Choice] = ()

    def choices_in(self, query: QueryDict) -> list[Choice]:
        if self.links:
            return list(self.links)
        current = query.get(self.name, "") or self.default
        found = [Choice(label, {self.name: value}, current == value) for value, label in self.choices]
        if self.show_all:
            found.insert(0, Choice(self.all_label or _("All"), {self.name: ""}, current == ""))
        return found


def filter_specs(query: QueryDict, filters: Iterable[Filter]) -> list[dict[str, Any]]:
    """What ``admin/filter.html`` renders for each filter: its title and choices (selected, link, label).

    Each link keeps the other filters and the search, and goes back to the first page.
    """
    return [
        {
            "title": spec.title,
            "choices": [
                {
                    "selected": choice.selected,
                    "query_string": f"?{with_changes(query, **choice.changes)}",
                    "display": choice.label,
                }
                for choice in spec.choices_in(query)
            ],
        }
        for spec in filters
    ]


def matches(terms: str, *texts: str) -> bool:
    """The admin's search, in Python: every word of ``terms`` is in one of ``texts`` (case-insensitive)."""
    haystack = [t.casefold() for t in texts]
    return all(any(word in text for text in haystack) for word in terms.casefold().split())


def list_context(query: QueryDict, filters: Sequence[Filter], *, searching: bool = True) -> dict[str, Any]:
    """The sidebar, the search box and the "Clear all filters" link of a list, for its template."""
    names = [name for f in filters for name in (f.name, *(n for c in f.links for n in c.changes))]
    active = any(query.get(name) for name in names)
    cleared = with_changes(query, **{name: "" for name in names})
    hidden = [(k, v) for k, v in query.items() if k != SEARCH and not (k == "page" or k.endswith("-page"))]
    return {
        "filter_specs": filter_specs(query, filters),
        "has_active_filters": active,
        "clear_all_filters_qs": f"?{cleared}",
        "search_var": SEARCH if searching else "",
        "search_query": query.get(SEARCH, ""),
        "search_hidden": hidden,
    }


def object_url(admin: Any, request: HttpRequest, label: str, pk: Any) -> str | None:
    """The admin change page of the row ``label`` (``app.Model``) ``pk``, when registered and the viewer may see it.

    The permission is the model's, not the row's: checking each row would mean
    fetching it, a query per row of the list.
    """
    try:
        model = apps.get_model(label)
        model_admin = admin.admin_site.get_model_admin(model)
    except (LookupError, ValueError, NotRegistered):
        return None
    if not model_admin.has_view_or_change_permission(request):
        return None
    return row_change_url(admin, model, pk)


def pk_link(admin: Any, request: HttpRequest, label: str, pk: Any) -> SafeString:
    """``pk``, linked to its row's admin change page when there is one the viewer may see."""
    url = object_url(admin, request, label, pk)
    return format_html('<a href="{}">{}</a>', url, pk) if url else format_html("{}", pk)


def problems_first(
    name: str,
    title: Any,
    values: Iterable[str],
    wanted: dict[str, str],
    *,
    default: Any,
    default_selected: bool,
) -> Filter:
    """The filter of a list that shows only what needs action by default: that view, "All" (``show=all``), each value.

    ``default_selected`` says whether the default view is the one shown (the
    lists differ in what else means it).
    """
    current, everything = wanted[name], wanted["show"] == "all"
    return Filter(
        name,
        title,
        links=[
            Choice(default, {name: "", "show": ""}, default_selected),
            Choice(_("All"), {name: "", "show": "all"}, everything and not current),
            *(Choice(value, {name: value, "show": ""}, current == value) for value in values),
        ],
    )


def app_and_database(apps: Iterable[str], databases: Iterable[str]) -> list[Filter]:
    """The app and database filters every list of models has."""
    return [
        Filter("app", _("app"), [(a, a) for a in apps]),
        Filter("database", _("database"), [(d, d) for d in databases]),
    ]
