"""The dashboard cards (``integrity/dashboard.py``) and the page that shows them, /admin/integrity/."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from demo.helpdesk.models import Ticket
from demo.metrics.models import Entry, Reading
from demo.shop.models import Coupon, Product, Tag
from integrity.dashboard import count_groups, duplicate_cards, duplicate_groups_card, sequence_cards
from integrity.duplicates import enforcement
from integrity.duplicates.rules import rules_for
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    DASHBOARD,
    DB,
    LIST,
    clean_sequences,
    client_for,
    fill,
    make_ahead,
    make_behind,
    make_user,
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
    total = len(
        table_rows(client_for("superuser").get(LIST, {"seq-per_page": "1000", "show": "all"}).content)
    )

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
def test_dashboard_for_staff_without_any_permission_is_403(trouble: None) -> None:
    """As the README says (issue 11: the admin's app index answered 404)."""
    response = client_for("staff").get(DASHBOARD)

    assert response.status_code == 403
    assert "integrity-card" not in response.content.decode()


@DB
def test_dashboard_on_the_second_site_links_under_it(trouble: None) -> None:
    response = client_for("superuser").get("/second-admin/integrity/")

    assert response.status_code == 200
    hrefs = {c.href for c in cards_on(response.content).values()}
    assert hrefs == {
        "/second-admin/integrity/sequence/?status=behind",
        "/second-admin/integrity/sequence/?capacity=warning",
        "/second-admin/integrity/duplicaterule/?enforcement=not_enforced",
        "/second-admin/integrity/eventgroup/?range=24h",
    }
    lazy = re.search(r'id="duplicate-groups-card" hx-get="([^"]+)"', response.content.decode())
    assert lazy is not None and lazy[1] == "/second-admin/integrity/duplicaterule/summary/"


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


# ---------------------------------------------------------------------------
# The duplicates cards
# ---------------------------------------------------------------------------

DUPLICATES = "/admin/integrity/duplicaterule/"
SHOP_RULES = [
    {"model": "shop.Product", "fields": ["name"], "case_insensitive": True, "name": "product_name_ci"},
    {"model": "shop.Coupon", "fields": ["code"], "name": "coupon_code"},
]


def _not_enforced_rows(client: Any) -> list[str]:
    """Keys of the rules the "Rules not enforced" card's link shows."""
    content = client.get(DUPLICATES, {"enforcement": "not_enforced"}).content.decode()
    return re.findall(
        r'<tr id="[^"]+" data-rule="([^"]+)" data-state="(?:missing|invalid|configured)"', content
    )


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=SHOP_RULES)
def test_rules_not_enforced_card_counts_the_rules_its_link_shows() -> None:
    client = client_for("superuser")
    states = Counter(e.state for e in enforcement.classify(rules_for()).values())
    declared = states["missing"] + states["invalid"]

    (card,) = duplicate_cards()
    shown = cards_on(client.get(DASHBOARD).content)["Rules not enforced"]

    assert (card.title, card.value, card.query) == (
        "Rules not enforced",
        declared + 2,
        "enforcement=not_enforced",
    )
    assert card.detail == f"{declared} declared, 2 configured"
    assert card.level == ("critical" if declared else "warning")
    assert (shown.value, shown.level, shown.detail) == (card.value, card.level, card.detail)
    assert shown.href == f"{DUPLICATES}?enforcement=not_enforced"
    assert len(_not_enforced_rows(client)) == shown.value


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[])
def test_rules_not_enforced_card_without_configured_rules() -> None:
    states = Counter(e.state for e in enforcement.classify(rules_for()).values())

    (card,) = duplicate_cards()

    assert card.value == states["missing"] + states["invalid"]
    assert card.detail == f"{card.value} declared, 0 configured"


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=SHOP_RULES)
def test_dashboard_counts_rules_without_scanning_and_leaves_groups_to_a_lazy_card() -> None:
    Product.objects.bulk_create(Product(id=i, name=n) for i, n in enumerate(["Pen", "pen", "PEN"], 100))
    client = client_for("superuser")

    with (
        CaptureQueriesContext(connections["default"]) as default,
        CaptureQueriesContext(connections["other"]) as other,
    ):
        response = client.get(DASHBOARD)

    assert response.status_code == 200
    # No duplicate scan (the sequences' catalog query groups too, but has no HAVING).
    sql = [q["sql"].upper() for q in default.captured_queries + other.captured_queries]
    assert not [q for q in sql if "HAVING" in q]
    body = response.content.decode()
    lazy = re.search(
        r'<a class="integrity-card pending" href="([^"]+)" id="duplicate-groups-card" hx-get="([^"]+)"'
        r' hx-trigger="load" hx-swap="outerHTML">\s*<span class="integrity-card-value" aria-busy="true">…</span>',
        body,
    )
    assert lazy is not None
    assert lazy[1] == f"{DUPLICATES}?enforcement=not_enforced"  # without JavaScript: the rules page
    assert lazy[2] == f"{DUPLICATES}summary/"
    assert "htmx" in body  # the script that loads it

    filled = cards_on(client.get(lazy[2]).content)["Duplicate groups"]
    count = count_groups()
    assert filled.value == count.groups >= 1
    assert filled.href == f"{DUPLICATES}?enforcement=not_enforced"


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=SHOP_RULES)
def test_group_count_covers_only_rules_not_enforced() -> None:
    Product.objects.bulk_create(
        Product(id=i, name=n) for i, n in enumerate(["Pen", "pen", "Cup", "CUP", "cup"], 100)
    )
    Tag.objects.bulk_create(Tag(name=n) for n in ("a", "b"))  # under an enforced rule: never scanned

    with CaptureQueriesContext(connections["default"]) as default:
        count = count_groups()

    scanned = [q["sql"] for q in default.captured_queries if "HAVING COUNT(*) > 1" in q["sql"].upper()]
    assert not [q for q in scanned if "shop_tag" in q]
    assert len([q for q in scanned if "shop_product" in q]) == 1
    assert count.not_counted == 0
    assert count.groups >= 2 and count.rows >= 5
    card = duplicate_groups_card()
    assert card.value == count.groups
    assert card.detail.startswith(f"{count.rows:,} rows in ")


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[])
def test_group_count_with_no_budget_counts_nothing_and_says_so() -> None:
    count = count_groups(budget_ms=0)
    card = duplicate_groups_card(budget_ms=0)

    not_enforced = [
        e for e in enforcement.classify(rules_for()).values() if e.state in ("missing", "invalid")
    ]
    assert (count.groups, count.not_counted) == (0, len([e for e in not_enforced if e.scannable]))
    if count.not_counted:
        assert card.level == "warning"
        assert "not counted (timed out)" in card.detail


@DB
@pytest.mark.parametrize(
    ("role", "titles"),
    [
        ("viewer", {"Sequences behind", "Near overflow"}),
        ("duplicates_viewer", {"Rules not enforced"}),
    ],
)
def test_each_page_s_cards_need_that_page_s_permission(role: str, titles: set[str]) -> None:
    if role == "duplicates_viewer":
        client = Client()
        user = make_user("staff", username="dup-viewer")
        user.user_permissions.add(Permission.objects.get(codename="view_duplicaterule"))
        client.force_login(user)
    else:
        client = client_for(role)

    response = client.get(DASHBOARD)

    assert set(cards_on(response.content)) == titles
    assert ('id="duplicate-groups-card"' in response.content.decode()) is (role == "duplicates_viewer")
