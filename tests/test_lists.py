"""The lists as Django admin changelists (``integrity/lists.py``): filters, search, counts, times, users, bulk resync.

Through the test client on the real admin URLconf and the embedded
PostgreSQL; what a request changed is read back from the database.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.template import Context, Template
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demo.shop.models import Coupon, Product, Tag
from integrity.lists import relative_time
from integrity.models import Event, SequenceResync
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    AUDIT,
    COUPON_KEY,
    DB,
    LIST,
    PRODUCT_KEY,
    RESYNC_ALL,
    clean_sequences,
    client_for,
    csrf_token_of,
    group,
    make_ahead,
    make_behind,
    make_user,
    merge_record,
    next_of,
    resync_record,
    sequence_of,
    table_rows,
    text,
)

RESYNC_SELECTED = "/admin/integrity/sequence/resync-selected/"
RULES = "/admin/integrity/duplicaterule/"
EVENTS = "/admin/integrity/eventgroup/"
MERGES = "/admin/integrity/mergerecord/"
TAG_KEY = "default:shop.Tag:id"


def selected(content: bytes) -> dict[str, list[str]]:
    """The sidebar's highlighted choices: filter title → the query of its link."""
    page = content.decode()
    found: dict[str, list[str]] = {}
    for block in re.findall(r'<details data-filter-title="([^"]*)" open>(.*?)</details>', page, re.S):
        title, body = block
        links = re.findall(r'<li class="selected">\s*<a href="([^"]*)">([^<]*)</a>', body)
        found[html.unescape(title)] = [html.unescape(label) for _href, label in links]
    return found


def choice_href(content: bytes, title: str, label: str) -> str:
    """The link of one choice of one filter, as a click follows it."""
    page = content.decode()
    body = re.search(rf'<details data-filter-title="{re.escape(title)}" open>(.*?)</details>', page, re.S)
    assert body, title
    hrefs = re.findall(rf'<a href="([^"]*)">{re.escape(label)}</a>', body.group(1))
    assert len(hrefs) == 1, (title, label)
    return html.unescape(hrefs[0])


def count_text(content: bytes) -> str:
    match = re.search(rb'<span class="integrity-count">([^<]*)</span>', content)
    assert match, "no count under the table"
    return match.group(1).decode()


@pytest.fixture
def behind_and_ahead() -> None:
    make_behind(Product, 8)
    make_behind(Tag, 3)
    make_ahead(Coupon, 3, 10)


# ---------------------------------------------------------------------------
# Times and users
# ---------------------------------------------------------------------------


def test_relative_time_reads_how_long_ago_with_the_absolute_time_and_zone_in_its_title() -> None:
    now = timezone.now()
    then = now - timedelta(minutes=3, seconds=20)

    shown = str(relative_time(then, now))

    local = timezone.localtime(then)
    assert f'title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"' in shown
    assert f'datetime="{then.isoformat()}"' in shown
    assert re.sub(r"<[^>]*>", "", shown).replace("\xa0", " ") == "3 minutes ago"
    assert re.sub(r"<[^>]*>", "", str(relative_time(now - timedelta(seconds=5), now))) == "just now"
    assert re.sub(r"<[^>]*>", "", str(relative_time(now + timedelta(hours=2), now))).replace("\xa0", " ") == (
        "in 2 hours"
    )
    assert str(relative_time(None)) == "—"


@DB
def test_the_resync_log_shows_the_user_by_name_linked_for_who_may_see_users() -> None:
    ada = User.objects.create_user("ada", first_name="Ada", last_name="Lovelace")
    resync_record(ada, value_after=1_234_567)

    as_superuser = client_for("superuser").get(AUDIT).content.decode()  # may see users
    as_auditor = client_for("auditor").get(AUDIT).content.decode()

    assert f'<a href="/admin/auth/user/{ada.pk}/change/">Ada Lovelace</a>' in as_superuser
    assert "<span>Ada Lovelace</span>" in as_auditor and "/admin/auth/user/" not in as_auditor
    assert "1,234,567" in as_auditor  # values with separators, as on the sequences page
    assert "<time datetime=" in as_auditor


@DB
def test_the_merge_log_links_the_survivor_to_its_change_page() -> None:
    merge_record()

    body = client_for("superuser").get(MERGES).content.decode()
    viewer = client_for("viewer", ["view_mergerecord"]).get(MERGES).content.decode()

    assert '<a href="/admin/crm/company/12/change/">12</a>' in body
    assert '<td class="field-survivor">12</td>' in viewer  # may not see companies: no link


@DB
@pytest.mark.parametrize(("page", "rows"), [(AUDIT, "sequence"), (MERGES, "merge")])
def test_the_logs_cost_the_same_queries_for_2_rows_as_for_20(page: str, rows: str) -> None:
    client = client_for("superuser")
    user = User.objects.get(username="superuser")

    def add(n: int) -> None:
        for i in range(n):
            if rows == "sequence":
                resync_record(user, sequence=f"s{i}")
            else:
                merge_record(user, survivor=str(i), removed=[i + 100])

    add(2)
    with CaptureQueriesContext(connections["default"]) as few:
        assert client.get(page).status_code == 200
    add(18)
    with CaptureQueriesContext(connections["default"]) as many:
        assert client.get(page).status_code == 200

    assert len(many) == len(few)


# ---------------------------------------------------------------------------
# The sequences list: sidebar, search, counts
# ---------------------------------------------------------------------------


@DB
def test_the_sequence_sidebar_highlights_the_default_and_one_click_filters(behind_and_ahead: None) -> None:
    client = client_for("viewer")

    first = client.get(LIST)
    assert selected(first.content)["status"] == ["Needs action"]
    assert selected(first.content)["app"] == ["All"]

    behind = client.get(f"{LIST}{choice_href(first.content, 'status', 'behind')}")
    assert selected(behind.content)["status"] == ["behind"]
    assert {r.status for r in table_rows(behind.content)} == {"behind"}

    shop = client.get(f"{LIST}{choice_href(behind.content, 'app', 'shop')}")
    assert (selected(shop.content)["status"], selected(shop.content)["app"]) == (["behind"], ["shop"])
    assert sorted(r["model"] for r in table_rows(shop.content)) == ["shop.Product", "shop.Tag"]
    assert "Clear all filters" in text(shop)

    everything = client.get(f"{LIST}{choice_href(first.content, 'status', 'All')}")
    assert selected(everything.content)["status"] == ["All"]
    assert len(table_rows(everything.content)) > len(table_rows(first.content))


@DB
def test_sequence_search_keeps_the_rows_whose_names_hold_every_word(behind_and_ahead: None) -> None:
    response = client_for("viewer").get(LIST, {"show": "all", "q": "shop product"})

    rows = table_rows(response.content)
    assert response.status_code == 200
    assert rows and all("shop" in r["model"].lower() and "product" in r["table"] for r in rows)
    assert 'value="shop product" id="searchbar"' in response.content.decode()
    # The search keeps the filters, and the filters keep the search.
    assert parse_qs(urlsplit(choice_href(response.content, "app", "shop")).query)["q"] == ["shop product"]


@DB
@override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5)
def test_the_sequence_table_counts_every_row_under_its_pages(behind_and_ahead: None) -> None:
    client = client_for("viewer")
    every = client.get(LIST, {"show": "all", "seq-per_page": "1000"})
    total = len(table_rows(every.content))

    first = client.get(LIST, {"show": "all"})

    assert total > 10
    assert count_text(first.content) == f"{total} sequences"
    assert len(table_rows(first.content)) == 5
    assert '<span class="this-page" aria-current="page">1</span>' in first.content.decode()
    assert count_text(client.get(LIST, {"status": "ahead"}).content) == "1 sequence"


@DB
@override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5)
def test_the_sequence_list_costs_the_same_queries_per_page_whatever_the_page_size(
    behind_and_ahead: None,
) -> None:
    client = client_for("resyncer")
    client.get(LIST)  # warm the caches (content types, permissions)

    with CaptureQueriesContext(connections["default"]) as small:
        client.get(LIST, {"show": "all"})
    with CaptureQueriesContext(connections["default"]) as large:
        client.get(LIST, {"show": "all", "seq-per_page": "100"})

    assert len(large) == len(small)


# ---------------------------------------------------------------------------
# Resync selected
# ---------------------------------------------------------------------------


@DB
def test_only_a_user_who_may_resync_gets_the_checkboxes(behind_and_ahead: None) -> None:
    as_viewer = client_for("viewer").get(LIST).content.decode()
    as_resyncer = client_for("resyncer").get(LIST).content.decode()

    assert 'class="action-select"' not in as_viewer and "Resync selected" not in as_viewer
    assert f'value="{PRODUCT_KEY}" form="sequence-bulk" class="action-select"' in as_resyncer
    assert 'id="sequence-bulk"' in as_resyncer and "Resync selected" in as_resyncer


@DB
def test_resync_selected_confirms_what_will_change_then_resyncs_only_that(behind_and_ahead: None) -> None:
    client = client_for("resyncer", enforce_csrf_checks=True)
    token = csrf_token_of(client.get(LIST).content)

    confirm = client.post(
        RESYNC_SELECTED,
        {"csrfmiddlewaretoken": token, "key": [PRODUCT_KEY, COUPON_KEY, "default:shop.Gone:id"]},
    )

    assert confirm.status_code == 200
    shown = text(confirm)
    assert 'value="Yes, resync 1 sequence"' in confirm.content.decode()
    assert "Not changed: 2 selected sequences" in shown
    # The statements it will run, to copy (only the sequence that moves).
    assert 'SELECT setval(\'"public"."shop_product_id_seq"\'::regclass' in shown
    assert "shop_coupon_id_seq\"'::regclass" not in shown
    assert (
        "public.shop_coupon_id_seq (Coupon.id): ahead of its data (a gap, harmless): a resync never lowers a sequence"
        in shown
    )
    assert "shop.Gone.id (default): no such sequence" in shown
    # The confirmation changes nothing.
    assert SequenceResync.objects.count() == 0
    assert next_of(sequence_of(Product)) == 1
    form_keys = re.findall(r'<input type="hidden" name="key" value="([^"]+)">', confirm.content.decode())
    assert form_keys == [PRODUCT_KEY]
    assert f'action="{RESYNC_ALL}"' in confirm.content.decode()

    done = client.post(RESYNC_ALL, {"csrfmiddlewaretoken": csrf_token_of(confirm.content), "key": form_keys})

    assert done.status_code == 302
    audit = SequenceResync.objects.get()
    assert (audit.model, audit.value_before, audit.value_after) == ("shop.Product", 1, 9)
    assert audit.user is not None and audit.user.username == "resyncer"
    assert next_of(sequence_of(Product)) == 9
    assert next_of(sequence_of(Coupon)) == 10  # the gap untouched: a resync never lowers
    assert next_of(sequence_of(Tag)) == 1  # behind, but not selected


@DB
def test_resync_selected_needs_the_resync_permission(behind_and_ahead: None) -> None:
    response = client_for("viewer").post(RESYNC_SELECTED, {"key": [PRODUCT_KEY]})

    assert response.status_code == 403
    assert "integrity.resync_sequence" in text(response)
    assert SequenceResync.objects.count() == 0


@DB
@pytest.mark.parametrize(
    ("data", "message"), [({}, "No sequences were selected."), ({"key": "nope"}, "Malformed")]
)
def test_resync_selected_refuses_bad_input(
    data: dict[str, str], message: str, behind_and_ahead: None
) -> None:
    response = client_for("resyncer").post(RESYNC_SELECTED, data)

    assert response.status_code == 400
    assert message in text(response)
    assert SequenceResync.objects.count() == 0


@DB
def test_resync_selected_reports_a_refusal_per_row(behind_and_ahead: None) -> None:
    client = client_for("resyncer")

    done = client.post(RESYNC_ALL, {"key": [PRODUCT_KEY, "default:shop.Gone:id"]}, follow=True)

    shown = text(done)
    assert "1 sequence resynced." in shown
    assert "Not resynced: shop.Gone.id (default)" in shown
    assert list(SequenceResync.objects.values_list("model", flat=True)) == ["shop.Product"]


# ---------------------------------------------------------------------------
# The rules and events lists
# ---------------------------------------------------------------------------


@DB
def test_the_rules_sidebar_and_search() -> None:
    client = client_for("superuser")

    first = client.get(RULES)
    assert selected(first.content)["enforcement"] == ["Not enforced"]
    everything = client.get(f"{RULES}{choice_href(first.content, 'enforcement', 'All')}")
    assert selected(everything.content)["enforcement"] == ["All"]

    found = client.get(RULES, {"show": "all", "q": "company"})
    keys = re.findall(r'data-rule="([^"]*)"', found.content.decode())
    every = re.findall(r'data-rule="([^"]*)"', everything.content.decode())
    # The model's rules, and those of other models on a "company" field.
    assert "default:crm.Company:unique:name" in keys and "default:sales.BillingProfile:unique:company" in keys
    assert all("company" in key.lower() for key in keys) and len(keys) < len(every)
    assert re.fullmatch(r"\d+ rules?", count_text(found.content))


@DB
def test_the_events_search_runs_in_sql_and_the_count_is_under_the_table() -> None:
    group("shop_product_name_key")
    group("crm_customer_email_ci_uniq", model="crm.Customer", table="crm_customer")
    client = client_for("superuser")

    found = client.get(EVENTS, {"q": "customer email"})

    assert found.status_code == 200
    assert len(re.findall(r"data-group=", found.content.decode())) == 1
    assert count_text(found.content) == "1 group"
    assert selected(found.content)["state"] == ["Unresolved and regressed"]
    assert selected(found.content)["last seen"] == ["All time"]


@DB
def test_the_sample_table_shows_users_by_name() -> None:
    made = group("shop_product_name_key", samples=2)
    ada = User.objects.create_user("ada", first_name="Ada", last_name="Lovelace")
    Event.objects.filter(group=made).update(user_pk=str(ada.pk))

    body = client_for("superuser").get(f"{EVENTS}group/", {"id": made.pk}).content.decode()

    assert body.count(f'<a href="/admin/auth/user/{ada.pk}/change/">Ada Lovelace</a>') == 2


@DB
def test_a_user_without_a_name_is_shown_by_username() -> None:
    user = make_user("staff", username="grace")
    resync_record(user)

    body = client_for("superuser").get(AUDIT).content.decode()

    assert f'<a href="/admin/auth/user/{user.pk}/change/">grace</a>' in body


def test_the_ago_filter_renders_the_same_time_element_in_templates() -> None:
    then = timezone.now() - timedelta(hours=5)

    rendered = Template("{% load integrity %}{{ then|ago }}").render(Context({"then": then}))

    assert rendered == str(relative_time(then))
    assert "5\xa0hours ago</time>" in rendered
