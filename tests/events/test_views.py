"""HTTP tests of the events pages (``integrity/views_events.py``) and their dashboard card.

Every request is real (admin URLconf, sessions, the embedded PostgreSQL).
Groups are created as rows (``group()``), or recorded the way the middleware
does (``events.write``) where the recording itself matters. Explanations are
the real ``integrity.events.explain`` on real data (a sequence behind, duplicates of
a dropped constraint); only the test that counts which rows get explained
replaces it with a counter.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demo import seed
from demo.crm.models import Company
from demo.shop.models import Product
from integrity.dashboard import event_cards
from integrity.events import recording as events
from integrity.events import tables as tables_events
from integrity.events.violations import Violation
from integrity.models import Event, EventGroup
from tests import helpers
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    REQUEST,
    VAT_KEY,
    Tr,
    clean_sequences,
    csrf_token_of,
    group,
    login_redirect,
    make_behind,
    rows_of,
    text,
    violation,
)

DB = pytest.mark.django_db(databases="__all__")

BASE = "/admin/integrity/eventgroup/"
LIST = BASE
GROUP = f"{BASE}group/"
DASHBOARD = "/admin/integrity/"
RESYNC = "/admin/integrity/sequence/resync/"
HTMX = {"HX-Request": "true"}


CODENAMES = {"duplicates_viewer": ["view_duplicaterule"], "viewer": ["view_eventgroup"]}
client_for = partial(helpers.client_for, roles=CODENAMES)
make_user = partial(helpers.make_user, roles=CODENAMES)


def delete_committed_events() -> None:
    """Delete, from a connection of its own, every event row: those ``events.write`` committed.

    ``events.write`` inside a test's transaction writes through a connection of
    its own, committed at once (as it would inside a caught error's atomic
    block): those rows outlive the test's rollback unless deleted like this.
    """
    side = connections.create_connection("default")
    try:
        with side.cursor() as cursor:
            cursor.execute(f"DELETE FROM {side.ops.quote_name(Event._meta.db_table)}")  # noqa: S608
            cursor.execute(f"DELETE FROM {side.ops.quote_name(EventGroup._meta.db_table)}")  # noqa: S608
    finally:
        side.close()


@pytest.fixture(autouse=True)
def _no_committed_events(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    request.getfixturevalue("django_db_setup")
    delete_committed_events()
    yield
    delete_committed_events()


def url(path: str, **params: Any) -> str:
    return f"{path}?{urlencode(params)}" if params else path


# ---------------------------------------------------------------------------
# Users and data
# ---------------------------------------------------------------------------

ROLES = ("anonymous", "non_staff", "staff", "duplicates_viewer", "viewer", "superuser")


# ---------------------------------------------------------------------------
# Reading the pages
# ---------------------------------------------------------------------------


def event_rows(content: bytes) -> list[Tr]:
    return rows_of(content, "data-group")


def ids(content: bytes) -> list[int]:
    return [int(r.attrs["data-group"]) for r in event_rows(content)]


def cell(row: Tr, name: str) -> str:
    return row.cell(name)


def query_of(href: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}


# ---------------------------------------------------------------------------
# 1. Permissions and methods
# ---------------------------------------------------------------------------

MATRIX: dict[str, int | str] = {
    "anonymous": "login",
    "non_staff": "login",
    "staff": 403,
    "duplicates_viewer": 403,  # another page's permission does not open the events
    "viewer": 200,
    "superuser": 200,
}


@DB
@pytest.mark.parametrize("endpoint", ["list", "group", "poll"])
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(role: str, endpoint: str) -> None:
    made = group("shop_product_secret_key")
    path = url(GROUP, id=made.pk) if endpoint == "group" else LIST
    headers = HTMX if endpoint == "poll" else {}

    response = client_for(role).get(path, headers=headers)

    expected = MATRIX[role]
    if expected == "login":
        assert login_redirect(response, path), (response.status_code, response.get("Location"))
    else:
        assert response.status_code == expected
    if expected == 200:
        assert "shop_product_secret_key" in text(response)
    else:
        assert "shop_product_secret_key" not in text(response)


@DB
@pytest.mark.parametrize("path", [LIST, GROUP])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_pages_only_answer_get(method: str, path: str) -> None:
    response = getattr(client_for("superuser"), method)(path)

    assert response.status_code == 405
    assert response["Allow"] == "GET"


@DB
def test_the_admin_index_links_the_events_page() -> None:
    response = client_for("viewer").get("/admin/")

    assert f'href="{LIST}"' in response.content.decode()


# ---------------------------------------------------------------------------
# 2. The events page
# ---------------------------------------------------------------------------


@DB
def test_groups_are_listed_last_seen_first_with_every_column() -> None:
    old = group("shop_product_name_key", ago=timedelta(days=3), count=12, handled=4)
    new = group(
        "",
        ago=timedelta(minutes=1),
        kind="not null",
        sqlstate="23502",
        table="shop_order",
        columns=["quantity"],
        model="shop.Order",
        fields=["quantity"],
        database="other",
        message='null value in column "quantity" of relation "shop_order" violates not-null constraint',
    )
    middle = group(
        "crm_customer_email_ci_uniq", ago=timedelta(hours=2), model="crm.Customer", fields=["email"]
    )

    response = client_for("viewer").get(LIST)

    assert response.status_code == 200
    assert ids(response.content) == [new.pk, middle.pk, old.pk]
    first, _middle, last = event_rows(response.content)
    assert cell(first, "kind") == "not null"
    assert cell(first, "model") == "shop.Order quantity"
    assert cell(first, "constraint") == "shop_order (quantity)"  # no constraint named: table and columns
    assert cell(first, "database") == "other"
    assert cell(first, "cause") == "Missing value"
    assert cell(last, "count") == "12 4 handled"
    assert cell(last, "constraint") == "shop_product_name_key"
    # Relative, the absolute time and its zone in the title (as every list shows times).
    assert cell(last, "last_seen") == "3 days ago"
    local = timezone.localtime(old.last_seen)
    stamp = (
        f'<time datetime="{old.last_seen.isoformat()}" title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}">'
    )
    assert stamp in response.content.decode()
    link = last.links("Details")[0]
    assert link["href"] == url(GROUP, id=old.pk)
    summary = text(response)
    assert "3 groups of IntegrityErrors, 14 occurrences in all (4 handled)." in summary


@DB
def test_sorting_by_a_column_and_back() -> None:
    a = group("a_key", ago=timedelta(hours=1), count=5)
    b = group("b_key", ago=timedelta(hours=2), count=50)
    c = group("c_key", ago=timedelta(hours=3), count=1)
    client = client_for("viewer")

    assert ids(client.get(url(LIST, **{"evt-sort": "-count"})).content) == [b.pk, a.pk, c.pk]
    assert ids(client.get(url(LIST, **{"evt-sort": "count"})).content) == [c.pk, a.pk, b.pk]
    assert ids(client.get(url(LIST, **{"evt-sort": "last_seen"})).content) == [c.pk, b.pk, a.pk]
    # A column that does not exist is ignored, as django-tables2 does: the default order.
    assert ids(client.get(url(LIST, **{"evt-sort": "nope"})).content) == [a.pk, b.pk, c.pk]


@DB
def test_pagination_and_cause_computed_for_the_page_shown_only(monkeypatch: pytest.MonkeyPatch) -> None:
    made = [group(f"k{i}_key", ago=timedelta(minutes=i)) for i in range(55)]
    explained: list[int] = []
    real = tables_events.explain_groups

    def counting(groups: list[EventGroup]) -> Any:
        explained.extend(g.pk for g in groups)
        return real(groups)

    monkeypatch.setattr(tables_events, "explain_groups", counting)
    client = client_for("viewer")

    first = client.get(LIST)
    assert ids(first.content) == [g.pk for g in made[:50]]
    assert sorted(explained) == sorted(g.pk for g in made[:50])

    explained.clear()
    second = client.get(url(LIST, **{"evt-page": 2}))
    assert ids(second.content) == [g.pk for g in made[50:]]
    assert sorted(explained) == sorted(g.pk for g in made[50:])
    # A tampered page size gets the default rather than a 500; a page past the last shows the last.
    assert len(ids(client.get(url(LIST, **{"evt-per_page": -1})).content)) == 50
    assert ids(client.get(url(LIST, **{"evt-page": 99})).content) == [g.pk for g in made[50:]]
    assert ids(client.get(url(LIST, **{"evt-page": "x"})).content) == [g.pk for g in made[:50]]


@DB
def test_queries_do_not_grow_with_the_number_of_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables_events, "explain_groups", lambda groups: {})  # its own cost is explain's
    client = client_for("viewer")
    client.get(LIST)  # sessions, permissions, content types: cached from here on

    def count() -> int:
        with CaptureQueriesContext(connections["default"]) as captured:
            assert client.get(LIST).status_code == 200
        return len(captured.captured_queries)

    for i in range(2):
        group(f"few{i}_key")
    few = count()
    for i in range(40):
        group(f"many{i}_key")
    assert count() == few


# ---------------------------------------------------------------------------
# 3. Filters
# ---------------------------------------------------------------------------


@pytest.fixture
def assorted() -> dict[str, EventGroup]:
    return {
        "recent_unique": group("shop_product_name_key", ago=timedelta(minutes=10), handled=1, count=3),
        "fk_other": group(
            "helpdesk_ticket_customer_fk",
            ago=timedelta(hours=5),
            kind="foreign key",
            database="other",
            model="helpdesk.Ticket",
            table="helpdesk_ticket",
        ),
        "old_crm": group("crm_customer_email_ci_uniq", ago=timedelta(days=3), model="crm.Customer"),
        "ancient": group("shop_coupon_code_key", ago=timedelta(days=20), model="shop.Coupon"),
        "fossil": group("shop_tag_name_key", ago=timedelta(days=90), model="shop.Tag"),
    }


FILTER_CASES = {
    "kind=unique": ({"kind": "unique"}, ["recent_unique", "old_crm", "ancient", "fossil"]),
    "kind=foreign key": ({"kind": "foreign key"}, ["fk_other"]),
    "kind=check (none yet)": ({"kind": "check"}, []),
    "model": ({"model": "crm.Customer"}, ["old_crm"]),
    "model installed, no events": ({"model": "auth.User"}, []),
    "database": ({"database": "other"}, ["fk_other"]),
    "handled=yes": ({"handled": "yes"}, ["recent_unique"]),
    "handled=no": ({"handled": "no"}, ["fk_other", "old_crm", "ancient", "fossil"]),
    "range=1h": ({"range": "1h"}, ["recent_unique"]),
    "range=24h": ({"range": "24h"}, ["recent_unique", "fk_other"]),
    "range=7d": ({"range": "7d"}, ["recent_unique", "fk_other", "old_crm"]),
    "range=30d": ({"range": "30d"}, ["recent_unique", "fk_other", "old_crm", "ancient"]),
    "range=all": ({"range": "all"}, ["recent_unique", "fk_other", "old_crm", "ancient", "fossil"]),
    "combined": ({"kind": "unique", "range": "7d", "handled": "no"}, ["old_crm"]),
}


@DB
@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_each_filter_keeps_the_groups_it_names(case: str, assorted: dict[str, EventGroup]) -> None:
    params, expected = FILTER_CASES[case]

    response = client_for("viewer").get(url(LIST, **params))

    assert response.status_code == 200
    assert ids(response.content) == [assorted[name].pk for name in expected]
    if params.get("range") != "all":
        assert "Clear all filters" in text(response)
    page = response.content.decode()
    selected = [
        parse_qs(urlsplit(html.unescape(href)).query)
        for href in re.findall(r'<li class="selected">\s*<a href="([^"]*)"', page)
    ]
    for name, value in params.items():  # the sidebar highlights what is applied, one choice per filter
        assert [q for q in selected if q.get(name) == [value]], (name, value)


TAMPERED = {
    "kind": ("kind", "unique' OR 1=1", "kind must be one of “check”, “exclusion”, “foreign key”"),
    "model": ("model", "shop.Nothing", "model must be an installed model"),
    "model shape": ("model", "not a label", "model must be an installed model"),
    "database": ("database", "elsewhere", "database must be one of “default”, “legacy”, “other”"),
    "handled": ("handled", "maybe", "handled must be “yes” or “no”"),
    "range": ("range", "2h", "range must be one of 1h, 24h, 7d, 30d, all"),
}


@DB
@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_filter_is_a_400_that_says_what_is_wrong(case: str) -> None:
    group()
    name, value, message = TAMPERED[case]

    response = client_for("viewer").get(url(LIST, **{name: value}))

    assert response.status_code == 400
    body = text(response)
    assert "Invalid filter:" in body and message in body
    assert "Back to the events" in body
    assert event_rows(response.content) == []


@DB
def test_a_tampered_filter_in_a_poll_is_a_400_fragment() -> None:
    response = client_for("viewer").get(url(LIST, range="forever"), headers=HTMX)

    assert response.status_code == 400
    assert "<html" not in response.content.decode()
    assert "range must be one of" in text(response)


# ---------------------------------------------------------------------------
# 4. Polling
# ---------------------------------------------------------------------------


def live_div(content: bytes) -> dict[str, str]:
    match = re.search(rb'<div id="events-live"([^>]*)>', content)
    assert match, "the page has no polled container"
    return {k.decode(): v.decode() for k, v in re.findall(rb'([\w-]+)="([^"]*)"', match.group(1))}


@DB
def test_the_page_polls_its_table_while_the_tab_is_visible() -> None:
    response = client_for("viewer").get(url(LIST, kind="unique", range="24h"))

    div = live_div(response.content)
    assert div["hx-trigger"].startswith("every 10s [document.visibilityState === 'visible']")
    assert query_of(div["hx-get"].replace("&amp;", "&")) == {"kind": "unique", "range": "24h"}
    assert div["hx-swap"] == "innerHTML"
    # Without JavaScript: a Refresh link to the same filtered page.
    refresh = re.search(rb'<a class="integrity-link" id="events-refresh" href="([^"]+)"', response.content)
    assert refresh is not None
    assert query_of(refresh.group(1).decode().replace("&amp;", "&")) == {"kind": "unique", "range": "24h"}
    assert "refreshed every 10 s while this tab is visible" in text(response)


@DB
@override_settings(INTEGRITY_EVENTS_POLL_SECONDS=3)
def test_the_poll_interval_follows_the_setting() -> None:
    response = client_for("viewer").get(LIST)

    assert "every 3s [" in live_div(response.content)["hx-trigger"]


@DB
def test_an_htmx_request_gets_the_table_and_a_new_group_appears_between_two_polls() -> None:
    group("shop_product_name_key", ago=timedelta(minutes=3))
    client = client_for("viewer")

    first = client.get(LIST, headers=HTMX)
    assert first.status_code == 200
    body = first.content.decode()
    assert "<html" not in body and 'id="events-live"' not in body and "<form" not in body
    assert 'id="event-table"' in body
    assert "HX-Request" in first["Vary"]
    assert len(event_rows(first.content)) == 1

    new_id = events.write(violation("shop_product_pkey"), "default", REQUEST)

    second = client.get(LIST, headers=HTMX)
    rows = event_rows(second.content)
    assert [int(r.attrs["data-group"]) for r in rows] == [new_id, *ids(first.content)]
    assert cell(rows[0], "constraint") == "shop_product_pkey"
    assert "2 groups of IntegrityErrors" in text(second)


@DB
def test_the_full_page_and_the_fragment_are_kept_apart_by_caches() -> None:
    response = client_for("viewer").get(LIST)

    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]


# ---------------------------------------------------------------------------
# 5. One group
# ---------------------------------------------------------------------------


@DB
def test_group_page_shows_counts_sources_and_samples() -> None:
    now = timezone.now()
    for i, (path, view) in enumerate(
        [("/a/", "shop:a"), ("/b/", "shop:b"), ("/b/", "shop:b"), ("/b/", "shop:b")]
    ):
        events.write(
            violation("shop_product_pkey"),
            "default",
            {"method": "POST", "path": path, "view": view, "user_pk": str(i)},
            handled=i == 0,
            now=now - timedelta(minutes=10 - i),
        )
    made = EventGroup.objects.get()

    response = client_for("viewer").get(url(GROUP, id=made.pk))

    assert response.status_code == 200
    body = text(response)
    summary = {r.header: r.cells[0] for r in rows_of(response.content, "data-term")}
    assert summary["Count"] == "4 (1 handled)"
    assert summary["First seen"] == f"{timezone.localtime(made.first_seen):%Y-%m-%d %H:%M:%S}"
    assert summary["Last seen"] == f"{timezone.localtime(made.last_seen):%Y-%m-%d %H:%M:%S}"
    assert summary["Model"] == "shop.Product id"
    assert summary["Database"] == "default"
    assert summary["Kind"] == "unique SQLSTATE 23505"
    assert summary["Constraint or columns"] == "shop_product_pkey"
    assert "Explicit ids or a filtering base manager" in body  # the cause, from integrity.events.explain
    views = rows_of(response.content, "data-view")
    assert [(r.attrs["data-view"], r.cells[1]) for r in views] == [("shop:b", "3"), ("shop:a", "1")]
    paths = rows_of(response.content, "data-path")
    assert [(r.attrs["data-path"], r.cells[1]) for r in paths] == [("/b/", "3"), ("/a/", "1")]
    samples = rows_of(response.content, "data-sample")
    assert len(samples) == 4
    newest, *_rest, oldest = samples
    assert newest.cells[1:6] == ["POST", "/b/", "shop:b", "3", "no"]
    assert oldest.cells[1:6] == ["POST", "/a/", "shop:a", "0", "yes"]
    assert newest.cells[6] == "id = 7"  # a primary key value is kept by default ("keys")
    assert newest.cells[7] == "—"  # the detail is kept with INTEGRITY_EVENT_VALUES="all" only
    assert newest.cells[0] == "7 minutes ago"
    local = timezone.localtime(now - timedelta(minutes=7))
    assert f'title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}">7' in response.content.decode()
    assert "4 occurrences kept as samples" in body


@DB
def test_group_page_offers_the_resync_of_a_sequence_behind() -> None:
    make_behind(Product, 8)
    made_id = events.write(violation("shop_product_pkey"), "default", REQUEST)
    client = client_for("superuser")
    page = url(GROUP, id=made_id)

    response = client.get(page)

    body = text(response)
    assert "Sequence behind" in body  # the cause, from integrity.events.explain
    assert "resync sequences after writing rows with explicit ids" in body  # a suggestion
    content = response.content.decode()
    form = re.search(
        r'<form method="post" action="([^"]+)" id="event-resync-form">(.*?)</form>', content, re.S
    )
    assert form is not None and form.group(1) == RESYNC
    assert 'name="key" value="default:shop.Product:id"' in form.group(2)
    assert "Resync the sequence" in form.group(2)

    # The form does what it says: the sequence moves past MAX, and the user comes back here.
    token = csrf_token_of(response.content)
    posted = client.post(
        RESYNC, {"key": "default:shop.Product:id", "next": page, "csrfmiddlewaretoken": token}
    )
    assert posted.status_code == 302 and posted["Location"] == page
    assert Product.objects.create(name="after").pk == 9
    assert "next value 1 → 9" in text(client.get(page))


@DB
def test_the_resync_fix_names_the_sequence_and_shows_the_setval_it_runs() -> None:
    make_behind(Product, 8)
    made_id = events.write(violation("shop_product_pkey"), "default", REQUEST)
    assert made_id is not None
    client = client_for("superuser")

    page = client.get(url(GROUP, id=made_id))
    shown = text(page)
    assert "Moves sequence public.shop_product_id_seq (Product.id) just past the column's MAX" in shown
    assert "default:shop.Product:id" not in shown
    block = re.search(
        r'<pre id="event-resync-sql"[^>]*><code>(.*?)</code></pre>', page.content.decode(), re.S
    )
    assert block is not None
    statements = [s for s in html.unescape(block.group(1)).split(";\n") if s]
    with CaptureQueriesContext(connection) as captured:
        assert client.post(RESYNC, {"key": "default:shop.Product:id"}).status_code == 302

    executed = [q["sql"] for q in captured.captured_queries]
    assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"
    assert all(s in executed for s in statements[1:-1])
    assert statements[2] == 'SELECT setval(\'"public"."shop_product_id_seq"\'::regclass, 9, false)'
    assert Product.objects.create(name="after").pk == 9


@DB
def test_without_the_resync_permission_the_fix_is_named_but_not_offered() -> None:
    make_behind(Product, 8)
    made_id = events.write(violation("shop_product_pkey"), "default", REQUEST)

    response = client_for("viewer").get(url(GROUP, id=made_id))

    assert response.status_code == 200
    assert 'id="event-resync-form"' not in response.content.decode()
    body = text(response)
    assert "Resync the sequence" in body
    assert "needs the permission integrity.resync_sequence" in body


@pytest.fixture
def vat_duplicates() -> None:
    """One company imported three times: its VAT number repeated (migration 0002 dropped the constraint)."""
    seed.reset()
    for name in ("Acme Ltd", " Acme Ltd", "acme ltd", "Initech"):
        Company.objects.create(name=name, vat_number="FR40303265045" if name == "Initech" else "GB123456789")


def vat_violation() -> Violation:
    return violation(
        "crm_company_vat_number_key",
        table="crm_company",
        columns=("vat_number",),
        values=("GB123456789",),
        model="crm.Company",
        fields=("vat_number",),
        primary_key=False,
        detail="Key (vat_number)=(GB123456789) already exists.",
    )


@DB
@pytest.mark.parametrize(
    ("codenames", "linked"),
    [(None, True), (["view_eventgroup", "view_duplicaterule"], True), (["view_eventgroup"], False)],
)
def test_group_page_links_existing_duplicates_to_their_rule(
    codenames: list[str] | None, linked: bool, vat_duplicates: None
) -> None:
    made_id = events.write(vat_violation(), "default", REQUEST)
    client = client_for("superuser") if codenames is None else client_for("staff", codenames)

    response = client.get(url(GROUP, id=made_id))

    body = text(response)
    assert "Existing duplicates" in body
    fix = re.search(
        r'<a class="button" id="event-rule-link" href="([^"]+)">([^<]*)</a>', response.content.decode()
    )
    if linked:
        assert fix is not None
        href = fix.group(1).replace("&amp;", "&")
        assert urlsplit(href).path == "/admin/integrity/duplicaterule/rule/"
        assert query_of(href) == {"rule": VAT_KEY}
        assert fix.group(2) == "See the duplicate groups"
        assert client.get(href).status_code == 200
    else:
        assert fix is None
        assert "See the duplicate groups" in body
        assert "needs the permission integrity.view_duplicaterule" in body


@DB
def test_a_group_without_a_fix_shows_its_explanation_only() -> None:
    made = group("shop_product_name_key")

    response = client_for("superuser").get(url(GROUP, id=made.pk))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="event-fix"' not in content
    assert "Value already taken" in text(response)
    assert 'duplicate key value violates unique constraint "shop_product_name_key"' in text(response)


@DB
def test_a_group_whose_explanation_fails_still_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    import integrity.events.explain

    def broken(g: EventGroup) -> Any:
        raise RuntimeError("boom")

    def broken_many(groups: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(integrity.events.explain, "explain", broken)
    monkeypatch.setattr(integrity.events.explain, "explain_many", broken_many)
    made = group("shop_product_name_key")

    listed = client_for("viewer").get(LIST)
    detail = client_for("superuser").get(url(GROUP, id=made.pk))

    assert cell(event_rows(listed.content)[0], "cause") == "—"
    assert detail.status_code == 200
    assert "No explanation available" in text(detail)


@DB
@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "Which group? The id parameter is missing."),
        ({"id": "abc"}, 400, "'abc' is not a valid event group id"),
        ({"id": "-1"}, 400, "'-1' is not a valid event group id"),
        ({"id": "١٢"}, 400, "is not a valid event group id"),  # digits, but not ASCII ones
        ({"id": "9" * 40}, 400, "is not a valid event group id"),
        ({"id": "999999"}, 404, "There is no event group 999999"),
    ],
)
def test_an_unknown_or_invalid_group_says_so(params: dict[str, str], status: int, message: str) -> None:
    response = client_for("viewer").get(url(GROUP, **params))

    assert response.status_code == status
    assert message in text(response)
    assert "Back to the events" in text(response)


# ---------------------------------------------------------------------------
# 6. The dashboard card
# ---------------------------------------------------------------------------


def card_on(content: bytes, title: str) -> dict[str, str] | None:
    pattern = (
        r'<a class="integrity-card (?P<level>\w+)" href="(?P<href>[^"]*)">\s*'
        r'<span class="integrity-card-value">(?P<value>\d+)</span>\s*'
        rf'<span class="integrity-card-title">{re.escape(title)}</span>\s*'
        r'<span class="integrity-card-detail">(?P<detail>[^<]*)</span>'
    )
    match = re.search(pattern, content.decode())
    return match.groupdict() if match else None


@DB
def test_card_counts_the_groups_of_the_last_24_hours_and_names_the_busiest() -> None:
    now = timezone.now()
    group("shop_product_pkey", ago=timedelta(hours=1), count=40, handled=40)
    group("shop_coupon_code_key", ago=timedelta(hours=23), count=7)
    group("shop_tag_name_key", ago=timedelta(hours=25), count=900)  # busier, but not seen in 24 hours

    (card,) = event_cards(now=now)

    assert (card.value, card.level, card.query) == (2, "critical", "range=24h")
    assert card.detail == "busiest: shop_product_pkey, 40 times in all"


@DB
def test_card_is_a_warning_when_the_application_handled_every_error() -> None:
    group("shop_product_pkey", ago=timedelta(hours=1), count=3, handled=3)

    (card,) = event_cards()

    assert (card.value, card.level) == (1, "warning")


@DB
def test_card_is_ok_without_errors_in_24_hours() -> None:
    group("shop_product_pkey", ago=timedelta(days=2), count=3)

    (card,) = event_cards()

    assert (card.value, card.level, card.detail) == (0, "ok", "no group seen in the last 24 hours")


@DB
@pytest.mark.parametrize(("role", "shown"), [("viewer", True), ("superuser", True), ("staff", False)])
def test_dashboard_shows_the_card_to_those_who_may_see_events(role: str, shown: bool) -> None:
    group("shop_product_pkey", ago=timedelta(hours=1), count=2)

    client = client_for(role)
    response = client.get(DASHBOARD)

    card = card_on(response.content, "IntegrityError groups, 24 h")
    if not shown:
        assert card is None
        return
    assert card is not None
    assert (card["value"], card["level"], card["href"]) == ("1", "critical", f"{LIST}?range=24h")
    # The card's number is the number of rows its link shows.
    assert len(event_rows(client.get(card["href"]).content)) == 1
