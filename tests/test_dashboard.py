"""The dashboard cards (``integrity/dashboard.py``) and the page that shows them, /admin/integrity/."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.db import connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from demo.helpdesk.models import Ticket
from demo.metrics.models import Entry, Reading
from demo.shop.models import Coupon, Product, Tag
from integrity.dashboard import sequence_cards
from tests.test_views import (  # noqa: F401 - _clean_sequences is an autouse fixture
    DASHBOARD,
    DB,
    LIST,
    _clean_sequences,
    client_for,
    fill,
    make_ahead,
    make_behind,
    set_next,
    table_rows,
)


@dataclass
class ShownCard:
    level: str
    href: str
    value: int
    title: str
    detail: str


CARD_RE = re.compile(
    r'<a class="integrity-card (?P<level>\w+)" href="(?P<href>[^"]*)">\s*'
    r'<span class="integrity-card-value">(?P<value>\d+)</span>\s*'
    r'<span class="integrity-card-title">(?P<title>[^<]*)</span>\s*'
    r'<span class="integrity-card-detail">(?P<detail>[^<]*)</span>'
)


def cards_on(content: bytes) -> dict[str, ShownCard]:
    found = [
        ShownCard(m["level"], m["href"].replace("&amp;", "&"), int(m["value"]), m["title"], m["detail"])
        for m in CARD_RE.finditer(content.decode())
    ]
    return {c.title: c for c in found}


@pytest.fixture
def trouble() -> None:
    """Three behind (two on default, one on other), two near overflow (one critical), one ahead."""
    make_behind(Product, 8)
    make_behind(Tag, 2)
    make_behind(Ticket, 4, using="other")
    make_ahead(Coupon, 3, 10)
    fill(Reading, range(1, 3))
    set_next(Reading, 2_000_000_000)  # int4: 93% used, critical
    fill(Entry, range(1, 3))
    set_next(Entry, int(0.8 * 2**63))  # bigint: 80% used, warning


# ---------------------------------------------------------------------------
# The cards as data
# ---------------------------------------------------------------------------


@DB
def test_cards_count_behind_and_near_overflow(trouble: None) -> None:
    behind, near = sequence_cards()

    assert (behind.title, behind.value, behind.level, behind.query) == (
        "Sequences behind",
        3,
        "critical",
        "status=behind",
    )
    assert behind.detail == "the next insert collides"
    assert (near.title, near.value, near.level, near.query) == (
        "Near overflow",
        2,
        "critical",
        "capacity=warning",
    )
    assert near.detail == "over 75% of their range used"


@DB
def test_cards_when_all_is_well() -> None:
    behind, near = sequence_cards()
    total = len(table_rows(client_for("superuser").get(LIST, {"seq-per_page": 1000}).content))

    assert (behind.value, behind.level) == (0, "ok")
    assert behind.detail == f"of {total} sequences"
    assert (near.value, near.level) == (0, "ok")


@DB
def test_near_overflow_card_is_a_warning_below_the_critical_threshold() -> None:
    fill(Entry, range(1, 3))
    set_next(Entry, int(0.8 * 2**63))

    _behind, near = sequence_cards()

    assert (near.value, near.level) == (1, "warning")


@DB
@override_settings(INTEGRITY_CAPACITY_WARNING=0.5, INTEGRITY_CAPACITY_CRITICAL=0.99)
def test_near_overflow_card_follows_the_settings() -> None:
    fill(Reading, range(1, 3))
    set_next(Reading, 1_200_000_000)  # 56% of int4

    _behind, near = sequence_cards()

    assert (near.value, near.level) == (1, "warning")
    assert near.detail == "over 50% of their range used"


# ---------------------------------------------------------------------------
# The dashboard page
# ---------------------------------------------------------------------------


@DB
def test_dashboard_shows_the_cards_linking_to_the_filtered_list(trouble: None) -> None:
    client = client_for("viewer")

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    cards = cards_on(response.content)
    assert set(cards) == {"Sequences behind", "Near overflow"}
    behind, near = cards["Sequences behind"], cards["Near overflow"]
    assert (behind.value, behind.level, behind.href) == (3, "critical", f"{LIST}?status=behind")
    assert (near.value, near.level, near.href) == (2, "critical", f"{LIST}?capacity=warning")
    # Each card's number is the number of rows its link shows.
    for card in cards.values():
        assert len(table_rows(client.get(card.href).content)) == card.value


@DB
def test_dashboard_counts_follow_a_resync(trouble: None) -> None:
    client = client_for("resyncer")
    client.post(f"{LIST}resync/", {"key": "default:shop.Product:id"})

    cards = cards_on(client.get(DASHBOARD).content)

    assert cards["Sequences behind"].value == 2


@DB
def test_dashboard_without_view_permission_shows_no_cards(trouble: None) -> None:
    """An auditor may see the audit log (so the app index exists) but not the sequences."""
    response = client_for("auditor").get(DASHBOARD)

    assert response.status_code == 200
    assert cards_on(response.content) == {}
    assert "integrity-card" not in response.content.decode()
    assert "Sequences behind" not in response.content.decode()
    assert "/admin/integrity/sequenceresync/" in response.content.decode()
    assert f'href="{LIST}"' not in response.content.decode()


@DB
def test_dashboard_for_staff_without_any_permission_is_404(trouble: None) -> None:
    response = client_for("staff").get(DASHBOARD)

    assert response.status_code == 404
    assert "integrity-card" not in response.content.decode()


@DB
def test_dashboard_on_the_second_site_links_under_it(trouble: None) -> None:
    response = client_for("superuser").get("/second-admin/integrity/")

    assert response.status_code == 200
    hrefs = {c.href for c in cards_on(response.content).values()}
    assert hrefs == {
        "/second-admin/integrity/sequence/?status=behind",
        "/second-admin/integrity/sequence/?capacity=warning",
    }


@DB
def test_dashboard_query_count_does_not_grow_with_problems() -> None:
    client = client_for("viewer")

    def queries() -> int:
        with (
            CaptureQueriesContext(connections["default"]) as default,
            CaptureQueriesContext(connections["other"]) as other,
        ):
            assert client.get(DASHBOARD).status_code == 200
        return len(default) + len(other)

    calm = queries()
    make_behind(Product, 8)
    make_behind(Tag, 2)
    make_behind(Ticket, 4, using="other")
    busy = queries()

    assert cards_on(client.get(DASHBOARD).content)["Sequences behind"].value == 3
    assert busy == calm
