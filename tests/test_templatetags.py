"""The ``{% integrity_dashboard %}`` tag (``integrity/templatetags/integrity.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.template import Context, RequestContext, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from demo.helpdesk.models import Ticket
from demo.shop.models import Product
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    DASHBOARD,
    DB,
    clean_sequences,
    make_behind,
    make_user,
)

TEMPLATE = Template(
    "{% load integrity %}{% integrity_dashboard as cards %}"
    "{% for c in cards %}[{{ c.title }}|{{ c.value }}|{{ c.level }}|{{ c.url }}]{% endfor %}"
)


def render(user: Any, current_app: str | None = None) -> str:
    request = RequestFactory().get(DASHBOARD)
    request.user = user
    if current_app is not None:
        request.current_app = current_app
    return TEMPLATE.render(RequestContext(request))


@pytest.fixture
def two_behind() -> None:
    make_behind(Product, 8)
    make_behind(Ticket, 3, using="other")


@DB
def test_cards_for_a_user_with_view_permission(two_behind: None) -> None:
    assert render(make_user("viewer")) == (
        "[Sequences behind|2|critical|/admin/integrity/sequence/?status=behind]"
        "[Near overflow|0|ok|/admin/integrity/sequence/?capacity=warning]"
    )


@DB
def test_cards_link_to_the_admin_site_being_shown(two_behind: None) -> None:
    output = render(make_user("superuser"), current_app="second")

    assert "|/second-admin/integrity/sequence/?status=behind]" in output
    assert "|/second-admin/integrity/sequence/?capacity=warning]" in output
    assert "/admin/integrity/" not in output.replace("/second-admin/", "")


@DB
@pytest.mark.parametrize("role", ["anonymous", "staff", "auditor"])
def test_no_cards_without_view_permission(role: str, two_behind: None) -> None:
    user = AnonymousUser() if role == "anonymous" else make_user(role)

    with (
        CaptureQueriesContext(connections["default"]) as default,
        CaptureQueriesContext(connections["other"]) as other,
    ):
        output = render(user)

    assert output == ""
    # Nothing about the sequences is even read for them.
    assert not [q for q in default.captured_queries + other.captured_queries if "pg_depend" in q["sql"]]


@DB
def test_no_cards_without_a_request(two_behind: None) -> None:
    assert TEMPLATE.render(Context({})) == ""


def test_number_filter_groups_thousands_and_dashes_nothing() -> None:
    from integrity.templatetags.integrity import number

    assert number(1_950_000_026) == "1,950,000,026"
    assert number(7) == "7"
    assert number(None) == "—"
