"""HTTP tests of the sequence pages (``integrity/views.py``) through Django's test client.

Every request is real: the admin URLconf, sessions, CSRF, messages and the
embedded PostgreSQL. Sequence state is read back with plain SQL (not through
the app) to prove what a request changed or left alone.

The helpers at the top are shared by ``test_admin``, ``test_tables``,
``test_dashboard`` and ``test_templatetags``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.db import connections
from django.db.models import Model
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from demo.helpdesk.models import Ticket
from demo.metrics.models import Invoice, Reading
from demo.shop.models import Coupon, Product, Tag
from integrity.models import SequenceResync
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    AUDIT,
    COUPON_KEY,
    DASHBOARD,
    DB,
    FACTORIES,
    LIST,
    LOWER,
    PG_ALIASES,
    PRODUCT_KEY,
    RESYNC,
    RESYNC_ALL,
    Row,
    clean_sequences,
    client_for,
    csrf_token_of,
    fill,
    login_redirect,
    make_ahead,
    make_behind,
    sequence_of,
    set_next,
    snapshot,
    table_rows,
    text,
)

# ---------------------------------------------------------------------------
# Sequence state, read and written with plain SQL (independent of the app)
# ---------------------------------------------------------------------------


def next_value(model: type[Model], column: str = "id", using: str = "default") -> int:
    """The value the sequence hands out next, read straight from the sequence."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT last_value, is_called FROM {sequence_of(model, column, using)}")
        last_value, is_called = cursor.fetchone()
    return int(last_value) + 1 if is_called else int(last_value)


# ---------------------------------------------------------------------------
# Users and clients
# ---------------------------------------------------------------------------

ROLES = ("anonymous", "non_staff", "staff", "viewer", "resyncer", "superuser")


# ---------------------------------------------------------------------------
# Reading pages
# ---------------------------------------------------------------------------


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def behind_and_ahead() -> None:
    """Product behind (8 rows, next 1), Coupon ahead (3 rows, next 10)."""
    make_behind(Product, 8)
    make_ahead(Coupon, 3, 10)


# ---------------------------------------------------------------------------
# 1. Permission matrix
# ---------------------------------------------------------------------------

ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "dashboard": ("get", DASHBOARD, None),
    "list": ("get", LIST, None),
    "resync": ("post", RESYNC, {"key": PRODUCT_KEY}),
    "resync_all_get": ("get", RESYNC_ALL, None),
    "resync_all_post": ("post", RESYNC_ALL, {"key": [PRODUCT_KEY]}),
    "lower_get": ("get", f"{LOWER}?key={COUPON_KEY}", None),
    "lower_post": ("post", LOWER, {"key": COUPON_KEY}),
    "audit_log": ("get", AUDIT, None),
}
CHANGING = {"resync", "resync_all_post", "lower_post"}
# What a user who is let in sees on each page (as page text).
SHOWN = {
    "dashboard": "1 Sequences behind the next insert collides",
    "list": "1 sequence is behind its data.",
    "resync_all_get": "public.shop_product_id_seq",
    "lower_get": "Next value now: 10",
    "audit_log": "0 sequence resyncs",
}

# What each role gets on each endpoint. "login": redirect to the admin login page.
ALLOWED_RESYNC = {
    "dashboard": 200,
    "list": 200,
    "resync": 302,
    "resync_all_get": 200,
    "resync_all_post": 302,
    "lower_get": 200,
    "lower_post": 302,
}
MATRIX: dict[str, dict[str, int | str]] = {
    "anonymous": dict.fromkeys(ENDPOINTS, "login"),
    "non_staff": dict.fromkeys(ENDPOINTS, "login"),
    # The admin's app_index would raise Http404 when the user may see nothing of the app: 403, as documented.
    "staff": dict.fromkeys(ENDPOINTS, 403),
    "viewer": {**dict.fromkeys(ENDPOINTS, 403), "dashboard": 200, "list": 200},
    # The audit log has its own permission (view_sequenceresync).
    "resyncer": {**ALLOWED_RESYNC, "audit_log": 403},
    "superuser": {**ALLOWED_RESYNC, "audit_log": 200},
}


@DB
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(role: str, endpoint: str, behind_and_ahead: None) -> None:
    method, url, data = ENDPOINTS[endpoint]
    expected = MATRIX[role][endpoint]
    client = client_for(role)
    before = snapshot()

    response = getattr(client, method)(url, data) if data else getattr(client, method)(url)

    if expected == "login":
        assert login_redirect(response, url), (response.status_code, response.get("Location"))
    else:
        assert response.status_code == expected
    body = text(response)
    changed = expected == 302 and endpoint in CHANGING
    if not changed:
        assert snapshot() == before
    if expected == 200:
        assert SHOWN[endpoint] in body
    if expected in ("login", 403, 404):
        assert "Sequences behind" not in body
        assert "shop.Product" not in body
    if endpoint in ("resync", "resync_all_post") and changed:
        assert next_value(Product) == 9
        assert next_value(Coupon) == 10
    if endpoint == "lower_post" and changed:
        assert next_value(Coupon) == 4
        assert next_value(Product) == 1


# ---------------------------------------------------------------------------
# 2. CSRF
# ---------------------------------------------------------------------------


@DB
def test_resync_without_csrf_token_is_refused_and_changes_nothing(behind_and_ahead: None) -> None:
    client = client_for("superuser", enforce_csrf_checks=True)
    client.get(LIST)  # sets the CSRF cookie, as a browser would have it
    before = snapshot()

    response = client.post(RESYNC, {"key": PRODUCT_KEY})

    assert response.status_code == 403
    assert "CSRF" in text(response)
    assert snapshot() == before


@DB
def test_resync_with_the_token_from_the_row_form_works(behind_and_ahead: None) -> None:
    client = client_for("superuser", enforce_csrf_checks=True)
    page = client.get(LIST)
    row = next(r for r in table_rows(page.content) if r.key == PRODUCT_KEY)
    assert row.forms == [RESYNC]

    response = client.post(RESYNC, {"key": PRODUCT_KEY, "csrfmiddlewaretoken": csrf_token_of(page.content)})

    assert response.status_code == 302
    assert next_value(Product) == 9


@DB
@pytest.mark.parametrize(
    ("page", "post", "key"),
    [
        (RESYNC_ALL, RESYNC_ALL, PRODUCT_KEY),
        (f"{LOWER}?key={COUPON_KEY}", LOWER, COUPON_KEY),
    ],
)
def test_confirmation_forms_need_their_csrf_token(
    page: str, post: str, key: str, behind_and_ahead: None
) -> None:
    client = client_for("superuser", enforce_csrf_checks=True)
    confirmation = client.get(page)
    assert confirmation.status_code == 200
    before = snapshot()

    refused = client.post(post, {"key": key})
    assert refused.status_code == 403
    assert snapshot() == before

    accepted = client.post(post, {"key": key, "csrfmiddlewaretoken": csrf_token_of(confirmation.content)})
    assert accepted.status_code == 302
    assert snapshot() != before


# ---------------------------------------------------------------------------
# 3. Methods
# ---------------------------------------------------------------------------


@DB
@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("get", RESYNC, "POST"),
        ("post", LIST, "GET"),
        ("put", RESYNC_ALL, "GET, POST"),
        ("delete", LOWER, "GET, POST"),
    ],
)
def test_wrong_method_is_405_and_changes_nothing(
    method: str, url: str, allowed: str, behind_and_ahead: None
) -> None:
    client = client_for("superuser")
    before = snapshot()

    response = getattr(client, method)(url, {"key": PRODUCT_KEY} if method == "get" else None)

    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert snapshot() == before


# ---------------------------------------------------------------------------
# 4. Resync one sequence
# ---------------------------------------------------------------------------


@DB
def test_form_resync_redirects_to_the_list_with_a_message(behind_and_ahead: None) -> None:
    client = client_for("resyncer")

    response = client.post(RESYNC, {"key": PRODUCT_KEY})

    assert response.status_code == 302
    assert response["Location"] == LIST
    assert next_value(Product) == 9
    page = client.get(response["Location"])
    assert messages_of(page) == [f"Sequence {sequence_of(Product)} (Product.id): next value 1 → 9."]
    assert f"Sequence {sequence_of(Product)} (Product.id): next value 1 → 9." in text(page)
    # Fixed, it no longer needs action: gone from the default view, "ok" among all.
    assert PRODUCT_KEY not in {r.key for r in table_rows(page.content)}
    page = client.get(LIST, {"show": "all"})
    row = next(r for r in table_rows(page.content) if r.key == PRODUCT_KEY)
    assert row.status == "ok"
    assert row["next_value"] == "9"


@DB
def test_form_resync_goes_back_to_a_safe_next_url_only(behind_and_ahead: None) -> None:
    client = client_for("resyncer")

    back = client.post(RESYNC, {"key": PRODUCT_KEY, "next": f"{LIST}?status=behind"})
    assert back["Location"] == f"{LIST}?status=behind"

    elsewhere = client.post(RESYNC, {"key": PRODUCT_KEY, "next": "https://evil.example/"})
    assert elsewhere["Location"] == LIST


@DB
def test_htmx_resync_returns_just_the_updated_row(behind_and_ahead: None) -> None:
    client = client_for("resyncer")

    response = client.post(RESYNC, {"key": PRODUCT_KEY}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith("<tr")
    assert body.count("<tr") == 1
    assert "<html" not in body and "<table" not in body
    (row,) = table_rows(response.content)
    assert row.key == PRODUCT_KEY
    assert row.status == "ok"
    assert '<span class="integrity-badge status-ok">ok</span>' in body
    assert row["next_value"] == "9"
    assert row["max_value"] == "8"
    assert row.forms == []  # no Resync button any more
    assert "next value 1 → 9" in text(response)
    assert next_value(Product) == 9


@DB
def test_htmx_resync_updates_the_summary_and_messages_out_of_band(behind_and_ahead: None) -> None:
    make_behind(Tag, 3)  # a second behind sequence: the summary then counts one
    client = client_for("resyncer")

    body = client.post(RESYNC, {"key": PRODUCT_KEY}, headers={"HX-Request": "true"}).content.decode()

    summary = re.search(
        r'<p class="integrity-summary" id="integrity-summary" hx-swap-oob="true">(.*?)</p>', body, re.S
    )
    assert summary is not None
    assert "1 sequence is behind its data." in summary.group(1)
    assert "Resync all behind" in summary.group(1)
    note = re.search(r'<div id="integrity-messages" hx-swap-oob="innerHTML">(.*?)</div>', body, re.S)
    assert note is not None
    assert f"Sequence {sequence_of(Product)} (Product.id): next value 1 → 9." in note.group(1)


@DB
def test_resync_of_an_ok_sequence_changes_nothing_and_says_so() -> None:
    fill(Product, range(1, 4))
    set_next(Product, 4)
    client = client_for("resyncer")
    before = snapshot()

    response = client.post(RESYNC, {"key": PRODUCT_KEY}, follow=True)

    assert messages_of(response) == [
        f"Sequence {sequence_of(Product)} (Product.id) needed no change (next value 4)."
    ]
    assert snapshot() == before  # no audit row either


@DB
def test_resync_writes_an_audit_row_and_a_log_entry(behind_and_ahead: None) -> None:
    client = client_for("resyncer")

    client.post(RESYNC, {"key": PRODUCT_KEY})

    record = SequenceResync.objects.get()
    assert (record.database, record.model, record.column) == ("default", "shop.Product", "id")
    assert (record.value_before, record.value_after, record.lowered) == (1, 9, False)
    assert record.user is not None and record.user.username == "resyncer"
    entry = LogEntry.objects.get()
    assert entry.user == record.user
    assert entry.object_id == str(record.pk)
    assert "Resynced" in entry.change_message and "1 → 9" in entry.change_message


BAD_KEYS = {
    "unknown model": ("default:shop.Nope:id", "Unknown model 'shop.Nope'"),
    "unknown alias": ("nowhere:shop.Product:id", "Unknown database 'nowhere'"),
    "malformed key": ("default:shop.Product", "Malformed sequence key 'default:shop.Product'"),
    "empty key": ("", "Malformed sequence key ''"),
    "column without a sequence": ("default:shop.Product:name", "No sequence feeds shop.Product.name"),
    "model not on that alias": ("other:shop.Product:id", "shop.Product does not live on database 'other'"),
    "unsupported alias": ("legacy:shop.Product:id", "does not live on database 'legacy'"),
    "tampered column": ("default:shop.Product:id; DROP TABLE shop_product", "No sequence feeds"),
    "extra part": ("default:shop.Product:id:x", "Malformed sequence key"),
}


@DB
@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_resync_bad_key_is_400_with_a_clear_message(case: str, behind_and_ahead: None) -> None:
    key, message = BAD_KEYS[case]
    client = client_for("resyncer")
    before = snapshot()

    response = client.post(RESYNC, {"key": key})

    assert response.status_code == 400
    assert message in text(response)
    assert "Nothing was changed" in text(response)
    assert snapshot() == before
    assert next_value(Product) == 1


@DB
@pytest.mark.parametrize("case", ["unknown model", "column without a sequence", "malformed key"])
def test_htmx_resync_error_retargets_the_messages(case: str, behind_and_ahead: None) -> None:
    key, message = BAD_KEYS[case]
    client = client_for("resyncer")
    before = snapshot()

    response = client.post(RESYNC, {"key": key}, headers={"HX-Request": "true"})

    assert response.status_code == 400
    assert response["HX-Retarget"] == "#integrity-messages"
    assert response["HX-Reswap"] == "innerHTML"
    assert message in text(response)
    assert "<html" not in response.content.decode()
    assert snapshot() == before


@pytest.mark.django_db(databases="__all__", transaction=True)
@override_settings(INTEGRITY_LOCK_TIMEOUT_MS=200)
@pytest.mark.parametrize("htmx", [False, True])
def test_resync_of_a_busy_table_is_409_and_changes_nothing(htmx: bool) -> None:
    make_behind(Product, 8)
    client = client_for("resyncer")
    headers = {"HX-Request": "true"} if htmx else {}
    before = snapshot()

    conn = connections["default"]
    other = conn.get_new_connection(conn.get_connection_params())
    try:
        other.execute("BEGIN")
        other.execute("LOCK TABLE shop_product IN ROW EXCLUSIVE MODE")
        response = client.post(RESYNC, {"key": PRODUCT_KEY}, headers=headers)
    finally:
        other.rollback()
        other.close()

    assert response.status_code == 409
    assert 'Table "public"."shop_product" is busy, try again.' in text(response)
    assert text(response).count("busy") == 1
    if htmx:
        assert response["HX-Retarget"] == "#integrity-messages"
    assert snapshot() == before
    assert next_value(Product) == 1

    # Once the lock is gone the same request goes through.
    assert client.post(RESYNC, {"key": PRODUCT_KEY}).status_code == 302
    assert next_value(Product) == 9


# ---------------------------------------------------------------------------
# 5. Resync all
# ---------------------------------------------------------------------------


@pytest.fixture
def three_behind() -> None:
    """Behind: Product and Tag on default, Ticket on other. Ahead: Coupon."""
    make_behind(Product, 8)
    make_behind(Tag, 4)
    make_behind(Ticket, 5, using="other")
    make_ahead(Coupon, 3, 10)


THREE_BEHIND = {"default:shop.Product:id", "default:shop.Tag:id", "other:helpdesk.Ticket:id"}


def _confirm_rows(content: bytes) -> set[str]:
    return set(re.findall(r'name="key" value="([^"]+)"', content.decode()))


@DB
def test_resync_all_get_lists_exactly_the_behind_sequences(three_behind: None) -> None:
    client = client_for("resyncer")

    response = client.get(RESYNC_ALL)

    assert response.status_code == 200
    assert _confirm_rows(response.content) == THREE_BEHIND
    assert 'value="Yes, resync 3 sequences"' in response.content.decode()
    assert next_value(Product) == 1 and next_value(Tag) == 1  # a GET changes nothing


@DB
def test_resync_all_get_with_nothing_behind_says_so() -> None:
    response = client_for("resyncer").get(RESYNC_ALL)

    assert response.status_code == 200
    assert _confirm_rows(response.content) == set()
    assert "No sequence is behind its data: nothing to do." in text(response)


@DB
def test_resync_all_post_moves_every_behind_sequence_and_never_lowers(three_behind: None) -> None:
    client = client_for("resyncer")
    keys = [*sorted(THREE_BEHIND), COUPON_KEY]  # the ahead one too: it must be left alone

    response = client.post(RESYNC_ALL, {"key": keys})

    assert response.status_code == 302
    assert response["Location"] == LIST
    assert next_value(Product) == 9
    assert next_value(Tag) == 5
    assert next_value(Ticket, using="other") == 6
    assert next_value(Coupon) == 10
    assert SequenceResync.objects.filter(lowered=False).count() == 3
    assert not SequenceResync.objects.filter(lowered=True).exists()
    page = client.get(LIST)
    assert messages_of(page) == ["3 sequences resynced."]
    assert "3 sequences resynced." in text(page)
    assert not [r for r in table_rows(page.content) if r.status == "behind"]


@DB
def test_resync_all_reports_keys_it_could_not_resync(three_behind: None) -> None:
    client = client_for("resyncer")

    response = client.post(RESYNC_ALL, {"key": [PRODUCT_KEY, "default:shop.Nope:id"]}, follow=True)

    assert messages_of(response) == [
        "1 sequence resynced.",
        "Not resynced: shop.Nope.id (default): Unknown model 'shop.Nope'.",
    ]
    assert next_value(Product) == 9


@DB
@pytest.mark.parametrize("data", [{}, {"key": []}])
def test_resync_all_post_without_keys_is_400(data: dict[str, Any], three_behind: None) -> None:
    client = client_for("resyncer")
    before = snapshot()

    response = client.post(RESYNC_ALL, data)

    assert response.status_code == 400
    assert "No sequences were selected." in text(response)
    assert snapshot() == before


@DB
def test_resync_all_post_with_a_malformed_key_is_400_and_changes_nothing(three_behind: None) -> None:
    client = client_for("resyncer")
    before = snapshot()

    response = client.post(RESYNC_ALL, {"key": [PRODUCT_KEY, "garbage"]})

    assert response.status_code == 400
    assert "Malformed sequence key 'garbage'" in text(response)
    assert snapshot() == before


# ---------------------------------------------------------------------------
# 6. Lower
# ---------------------------------------------------------------------------


@DB
def test_lower_get_asks_for_confirmation(behind_and_ahead: None) -> None:
    response = client_for("resyncer").get(LOWER, {"key": COUPON_KEY})

    assert response.status_code == 200
    body = text(response)
    assert f"Sequence {sequence_of(Coupon)} feeds shop.Coupon.id on database “default”." in body
    assert "Next value now: 10" in body
    assert "Column MAX: 3" in body
    assert 'value="Yes, lower it"' in response.content.decode()
    assert f'name="key" value="{COUPON_KEY}"' in response.content.decode()
    assert next_value(Coupon) == 10


@DB
def test_lower_post_lowers_to_max_plus_one_and_records_it(behind_and_ahead: None) -> None:
    client = client_for("resyncer")

    response = client.post(LOWER, {"key": COUPON_KEY})

    assert response.status_code == 302
    assert response["Location"] == LIST
    assert next_value(Coupon) == 4
    record = SequenceResync.objects.get()
    assert (record.model, record.value_before, record.value_after, record.lowered) == (
        "shop.Coupon",
        10,
        4,
        True,
    )
    entry = LogEntry.objects.get()
    assert entry.object_id == str(record.pk)
    assert entry.user is not None and entry.user.username == "resyncer"
    assert "Lowered" in entry.change_message and "10 → 4" in entry.change_message
    assert messages_of(client.get(LIST)) == [
        f"Sequence {sequence_of(Coupon)} (Coupon.id): next value 10 → 4."
    ]


@DB
def test_lower_of_a_behind_sequence_does_nothing(behind_and_ahead: None) -> None:
    client = client_for("resyncer")
    page = client.get(LOWER, {"key": PRODUCT_KEY})
    assert "This sequence is not ahead of its data: nothing to lower." in text(page)
    assert "Yes, lower it" not in page.content.decode()
    before = snapshot()

    response = client.post(LOWER, {"key": PRODUCT_KEY}, follow=True)

    assert snapshot() == before
    assert next_value(Product) == 1
    assert messages_of(response) == [
        f"Sequence {sequence_of(Product)} (Product.id) needed no change (next value 1)."
    ]


@DB
def test_lower_below_the_sequence_minimum_is_refused_with_a_message() -> None:
    """Invoice ids start at 1000 (MINVALUE 1000); rows 1..3 imported below it: MAX + 1 is out of range."""
    fill(Invoice, range(1, 4))
    client = client_for("resyncer")
    before = snapshot()

    response = client.post(LOWER, {"key": "default:metrics.Invoice:id"})

    assert response.status_code == 409
    assert "metrics_invoice_id_seq" in text(response)
    assert "outside the sequence's range" in text(response)
    assert snapshot() == before
    assert next_value(Invoice) == 1000


@DB
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("case", ["unknown model", "malformed key", "column without a sequence"])
def test_lower_bad_key_is_400(method: str, case: str, behind_and_ahead: None) -> None:
    key, message = BAD_KEYS[case]
    client = client_for("resyncer")
    before = snapshot()

    response = getattr(client, method)(LOWER, {"key": key})

    assert response.status_code == 400
    assert message in text(response)
    assert snapshot() == before


# ---------------------------------------------------------------------------
# 7. The list page: filters, order, the SQLite alias, buttons
# ---------------------------------------------------------------------------


@pytest.fixture
def mixed() -> None:
    """Behind: Product (default), Ticket (other). Ahead: Coupon. Near overflow: Reading."""
    make_behind(Product, 8)
    make_behind(Ticket, 5, using="other")
    make_ahead(Coupon, 3, 10)
    fill(Reading, range(1, 3))
    set_next(Reading, 2_000_000_000)  # int4 column: 93% of its range used


@DB
@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("status=behind", lambda r: r.status == "behind"),
        ("status=ahead", lambda r: r.status == "ahead"),
        ("app=shop", lambda r: r["model"].startswith("shop.")),
        ("database=other", lambda r: r["database"] == "other"),
        ("capacity=warning", lambda r: r["model"] == "metrics.Reading"),
        ("capacity=critical", lambda r: r["model"] == "metrics.Reading"),
        ("status=behind&database=default", lambda r: r.key == PRODUCT_KEY),
    ],
)
def test_filters_narrow_the_rows(query: str, check: Callable[[Row], bool], mixed: None) -> None:
    client = client_for("viewer")
    everything = table_rows(client.get(LIST, {"show": "all"}).content)

    response = client.get(f"{LIST}?{query}&show=all")

    assert response.status_code == 200
    rows = table_rows(response.content)
    assert rows
    assert {r.key for r in rows} == {r.key for r in everything if check(r)}
    assert len(rows) < len(everything)


PROBLEMS = {
    PRODUCT_KEY,  # behind
    "other:helpdesk.Ticket:id",  # behind
    "default:metrics.Reading:id",  # near overflow
    "default:helpdesk.Ticket:number",  # bigint sequence feeding an integer column
    "other:helpdesk.Ticket:number",
}


@DB
def test_status_filter_problem_keeps_problem_rows_only(mixed: None) -> None:
    rows = table_rows(client_for("viewer").get(LIST, {"status": "problem"}).content)

    assert {r.key for r in rows} == PROBLEMS


@DB
def test_problem_rows_come_first_on_every_database(mixed: None) -> None:
    rows = table_rows(client_for("viewer").get(LIST, {"show": "all"}).content)

    # Behind rows of both databases first, then near overflow, then type mismatches,
    # then everything else (whatever database it is on).
    assert {r.key for r in rows[:2]} == {PRODUCT_KEY, "other:helpdesk.Ticket:id"}
    assert rows[2].key == "default:metrics.Reading:id"
    assert {r.key for r in rows[: len(PROBLEMS)]} == PROBLEMS
    assert len(rows) > len(PROBLEMS)


@DB
def test_sqlite_alias_shows_a_notice_and_the_page_still_renders(mixed: None) -> None:
    response = client_for("viewer").get(LIST)

    assert response.status_code == 200
    body = text(response)
    assert "The sequence check is not available for database “legacy” (sqlite) yet" in body
    assert table_rows(response.content)
    assert not [r for r in table_rows(response.content) if r["database"] == "legacy"]


@DB
def test_sqlite_alias_filter_shows_the_notice_and_no_rows(mixed: None) -> None:
    response = client_for("viewer").get(LIST, {"database": "legacy"})

    assert response.status_code == 200
    assert "not available for database “legacy”" in text(response)
    assert table_rows(response.content) == []


@DB
@pytest.mark.parametrize(("role", "buttons"), [("viewer", False), ("resyncer", True), ("superuser", True)])
def test_behind_rows_have_a_resync_button_only_with_the_permission(
    role: str, buttons: bool, mixed: None
) -> None:
    response = client_for(role).get(LIST, {"show": "all"})

    rows = {r.key: r for r in table_rows(response.content)}
    product = rows[PRODUCT_KEY]
    assert product.forms == ([RESYNC] if buttons else [])
    assert product.keys == ([PRODUCT_KEY] if buttons else [])
    assert ("Resync" in product["actions"]) is buttons
    coupon = rows[COUPON_KEY]
    assert coupon.links == ([f"{LOWER}?key=default%3Ashop.Coupon%3Aid"] if buttons else [])
    assert (RESYNC_ALL in response.content.decode()) is buttons
    assert "2 sequences are behind their data." in text(response)


@DB
def test_htmx_attributes_keep_a_no_js_fallback(mixed: None) -> None:
    body = client_for("resyncer").get(LIST).content.decode()

    form = re.search(r"<form [^>]*hx-post[^>]*>", body)
    assert form is not None
    assert f'method="post" action="{RESYNC}"' in form.group(0)
    assert f'hx-post="{RESYNC}"' in form.group(0)
    assert 'hx-target="closest tr"' in form.group(0)


# ---------------------------------------------------------------------------
# 8. A second AdminSite at /second-admin/
# ---------------------------------------------------------------------------

SECOND = "/second-admin/integrity/sequence/"


def _hrefs(content: bytes) -> list[str]:
    return re.findall(r'(?:href|action|hx-post)="(/[^"]*)"', content.decode())


@DB
def test_second_site_list_links_stay_under_second_admin(mixed: None) -> None:
    response = client_for("superuser").get(SECOND, {"show": "all"})

    assert response.status_code == 200
    rows = {r.key: r for r in table_rows(response.content)}
    assert rows[PRODUCT_KEY].forms == [f"{SECOND}resync/"]
    assert rows[COUPON_KEY].links[0].startswith(f"{SECOND}lower/?key=")
    urls = [u for u in _hrefs(response.content) if not u.startswith("/static/")]
    assert f"{SECOND}resync-all/" in urls
    assert "/second-admin/" in urls  # breadcrumbs: Home
    assert [u for u in urls if u.startswith("/admin/")] == []


@DB
def test_second_site_resync_redirects_under_second_admin(mixed: None) -> None:
    client = client_for("superuser")

    response = client.post(f"{SECOND}resync/", {"key": PRODUCT_KEY})

    assert response.status_code == 302
    assert response["Location"] == SECOND
    assert next_value(Product) == 9
    htmx = client.post(
        f"{SECOND}resync/", {"key": "other:helpdesk.Ticket:id"}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 200
    assert [u for u in _hrefs(htmx.content) if u.startswith("/admin/")] == []
    assert next_value(Ticket, using="other") == 6


@DB
def test_second_site_resync_all_works_under_second_admin(mixed: None) -> None:
    client = client_for("superuser")

    confirm = client.get(f"{SECOND}resync-all/")
    assert _confirm_rows(confirm.content) == {PRODUCT_KEY, "other:helpdesk.Ticket:id"}
    assert [u for u in _hrefs(confirm.content) if u.startswith("/admin/")] == []
    response = client.post(f"{SECOND}resync-all/", {"key": sorted(_confirm_rows(confirm.content))})

    assert response["Location"] == SECOND
    assert next_value(Product) == 9
    assert next_value(Ticket, using="other") == 6


@DB
def test_second_site_sends_strangers_to_its_own_login() -> None:
    response = Client().get(SECOND)

    assert login_redirect(response, SECOND, login="/second-admin/login/")


@DB
def test_second_site_lower_and_errors_link_back_under_second_admin(mixed: None) -> None:
    client = client_for("superuser")

    page = client.get(f"{SECOND}lower/", {"key": COUPON_KEY})
    error = client.post(f"{SECOND}resync/", {"key": "nope"})
    lowered = client.post(f"{SECOND}lower/", {"key": COUPON_KEY})

    assert [u for u in _hrefs(page.content) if u.startswith("/admin/")] == []
    assert error.status_code == 400
    assert [u for u in _hrefs(error.content) if u.startswith("/admin/")] == []
    assert SECOND in _hrefs(error.content)
    assert lowered["Location"] == SECOND
    assert next_value(Coupon) == 4


# ---------------------------------------------------------------------------
# 10. Query count does not grow with the rows
# ---------------------------------------------------------------------------


BOOKKEEPING = re.compile(
    r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK|BEGIN|COMMIT|SELECT set_config\('lock_timeout')"
)


def _list_queries(client: Client, url: str) -> tuple[int, list[Row]]:
    """The reads of a GET (the bounded reads' savepoints and timeouts apart: at most 7 per alias, the
    status statement's savepoint rolled back so that its locks end with it)."""
    with (
        CaptureQueriesContext(connections["default"]) as default,
        CaptureQueriesContext(connections["other"]) as other,
    ):
        response = client.get(url)
    assert response.status_code == 200
    sql = [q["sql"] for q in default.captured_queries + other.captured_queries]
    assert len([q for q in sql if BOOKKEEPING.match(q)]) <= 7 * len(PG_ALIASES)
    return len([q for q in sql if not BOOKKEEPING.match(q)]), table_rows(response.content)


BEHIND_MODELS = [(m, "default") for m in FACTORIES if m is not Invoice] + [
    (Ticket, "other"),
    (Group, "other"),
]


@DB
def test_list_query_count_does_not_grow_with_behind_rows() -> None:
    client = client_for("resyncer")
    for model, alias in BEHIND_MODELS[:2]:
        make_behind(model, 3, using=alias)
    few_queries, few = _list_queries(client, LIST)
    for model, alias in BEHIND_MODELS[2:]:
        make_behind(model, 3, using=alias)

    many_queries, many = _list_queries(client, LIST)

    assert len([r for r in few if r.status == "behind"]) == 2
    assert len([r for r in many if r.status == "behind"]) == len(BEHIND_MODELS) == 12
    assert many_queries == few_queries


@DB
def test_list_query_count_does_not_grow_with_page_size(mixed: None) -> None:
    client = client_for("resyncer")
    with override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5):
        small_queries, small = _list_queries(client, f"{LIST}?show=all")
    with override_settings(INTEGRITY_SEQUENCES_PER_PAGE=25):
        large_queries, large = _list_queries(client, f"{LIST}?show=all")

    assert (len(small), len(large)) == (5, 25)
    assert large_queries == small_queries
    # Two catalog queries per PostgreSQL alias, plus the session/user/permission lookups.
    assert small_queries <= 4 + 6
