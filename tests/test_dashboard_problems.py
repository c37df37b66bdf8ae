"""The dashboard lists the problems themselves, each with its fix, over the page's width."""

from __future__ import annotations

import html
import re

from demo.metrics.models import Reading
from demo.shop.models import Product
from integrity.models import SequenceResync
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    DASHBOARD,
    DB,
    PRODUCT_KEY,
    RESYNC,
    clean_sequences,
    client_for,
    csrf_token_of,
    fill,
    make_behind,
    set_next,
    text,
)


def _sections(body: str) -> dict[str, str]:
    found = re.findall(
        r'<section class="module integrity-problem-list".*?<h2[^>]*>(.*?)</h2>(.*?)</section>', body, re.S
    )
    return {
        re.sub(r"\s+\d+$", "", re.sub(r"<[^>]*>", "", title)).strip(): content for title, content in found
    }


@DB
def test_dashboard_lists_each_kind_of_problem_with_its_fix() -> None:
    make_behind(Product, 8)
    fill(Reading, range(1, 3))
    set_next(Reading, 2_000_000_000)
    client = client_for("superuser")

    body = client.get(DASHBOARD).content.decode()

    sections = _sections(body)
    assert set(sections) == {
        "Sequences behind their data",
        "Near overflow or type mismatch",
        "Rules not enforced",
        "Busiest IntegrityErrors, 24 h",
    }
    behind = sections["Sequences behind their data"]
    assert "shop.Product.id" in behind and "next value 1, MAX 8" in behind
    form = re.search(r'<form method="post" action="([^"]*)">(.*?)</form>', behind, re.S)
    assert form and form.group(1) == RESYNC
    assert f'name="key" value="{PRODUCT_KEY}"' in form.group(2)
    assert 'name="csrfmiddlewaretoken"' in form.group(
        2
    ) and 'name="next" value="/admin/integrity/"' in form.group(2)
    overflow = sections["Near overflow or type mismatch"]
    assert "metrics.Reading.id" in overflow and "93.1% of its range used" in overflow
    assert 'href="/admin/integrity/sequence/#seq-default-metrics-Reading-id"' in overflow
    rules = html.unescape(sections["Rules not enforced"])
    assert 'href="/admin/integrity/duplicaterule/rule/?rule=' in rules and "Review its duplicates" in rules


@DB
def test_resync_from_the_dashboard_comes_back_to_it_fixed() -> None:
    make_behind(Product, 8)
    client = client_for("superuser")
    page = client.get(DASHBOARD)

    response = client.post(
        RESYNC, {"key": PRODUCT_KEY, "next": DASHBOARD, "csrfmiddlewaretoken": csrf_token_of(page.content)}
    )

    assert response.status_code == 302 and response["Location"] == DASHBOARD
    after = client.get(DASHBOARD)
    assert "next value 1 → 9" in text(after)
    assert "shop.Product.id" not in _sections(after.content.decode())["Sequences behind their data"]
    assert SequenceResync.objects.get(model="shop.Product").value_after == 9


@DB
def test_no_two_cards_share_a_url_without_saying_why() -> None:
    body = client_for("superuser").get(DASHBOARD).content.decode()

    cards = re.findall(r'<a class="integrity-card [^"]*" href="([^"]*)"[^>]*>(.*?)</a>', body, re.S)
    by_url: dict[str, list[str]] = {}
    for href, inner in cards:
        by_url.setdefault(href, []).append(inner)
    for href, shared in by_url.items():
        if len(shared) > 1:
            assert sum("integrity-card-note" in inner for inner in shared) >= len(shared) - 1, href


@DB
def test_a_viewer_sees_the_problems_without_a_resync_button() -> None:
    make_behind(Product, 8)

    body = client_for("viewer").get(DASHBOARD).content.decode()

    behind = _sections(body)["Sequences behind their data"]
    assert "shop.Product.id" in behind and "<form" not in behind
    assert "Rules not enforced" not in _sections(body)  # no permission to see the rules
