"""Admin registration (``integrity/admin.py``): routes, the admin index, the audit log."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from demo.shop.models import Coupon, Product
from integrity.models import SequenceResync
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    AUDIT,
    COUPON_KEY,
    DB,
    LIST,
    LOWER,
    PRODUCT_KEY,
    RESYNC,
    RESYNC_ALL,
    clean_sequences,
    client_for,
    login_redirect,
    make_ahead,
    make_behind,
    snapshot,
    text,
)


@pytest.fixture
def two_changes() -> SequenceResync:
    """A resync of Product and a lowering of Coupon, made through the pages by "resyncer"."""
    make_behind(Product, 8)
    make_ahead(Coupon, 3, 10)
    client = client_for("resyncer")
    assert client.post(RESYNC, {"key": PRODUCT_KEY}).status_code == 302
    assert client.post(LOWER, {"key": COUPON_KEY}).status_code == 302
    return SequenceResync.objects.get(lowered=True)


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("integrity_sequence_changelist", LIST),
        ("integrity_sequence_resync", RESYNC),
        ("integrity_sequence_resync_all", RESYNC_ALL),
        ("integrity_sequence_lower", LOWER),
        ("integrity_sequenceresync_changelist", AUDIT),
    ],
)
def test_named_routes_on_both_sites(name: str, url: str) -> None:
    assert reverse(f"admin:{name}") == url
    assert reverse(f"second:{name}") == url.replace("/admin/", "/second-admin/")
    assert reverse(f"admin:{name}", current_app="second") == url.replace("/admin/", "/second-admin/")


@DB
@pytest.mark.parametrize("url", [f"{LIST}add/", f"{LIST}1/change/", f"{LIST}1/delete/", f"{LIST}1/history/"])
def test_the_sequence_page_has_no_add_change_or_delete_routes(url: str) -> None:
    assert client_for("superuser").get(url).status_code == 404


@DB
@pytest.mark.parametrize("url", [LIST, RESYNC, RESYNC_ALL, LOWER, AUDIT])
def test_every_route_is_behind_the_admin_login(url: str) -> None:
    """Routes go through admin_site.admin_view: strangers are sent to log in, not served a 403."""
    response = client_for("non_staff").get(url)

    assert login_redirect(response, url)


# ---------------------------------------------------------------------------
# The admin index
# ---------------------------------------------------------------------------


def _index_links(content: bytes) -> set[str]:
    return set(re.findall(r'href="(/admin/integrity/[^"]*)"', content.decode()))


@DB
@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("staff", set()),
        ("viewer", {"/admin/integrity/", LIST}),
        ("auditor", {"/admin/integrity/", AUDIT}),
        (
            "superuser",
            {
                "/admin/integrity/",
                LIST,
                AUDIT,
                "/admin/integrity/duplicaterule/",
                "/admin/integrity/mergerecord/",
                "/admin/integrity/eventgroup/",
                "/admin/integrity/job/",  # the jobs of the operations the user may run
            },
        ),
    ],
)
def test_admin_index_lists_the_pages_the_user_may_see(role: str, links: set[str]) -> None:
    response = client_for(role).get("/admin/")

    assert response.status_code == 200
    assert _index_links(response.content) == links
    assert ("Data integrity" in text(response)) is bool(links)
    assert f"{AUDIT}add/" not in response.content.decode()


@DB
def test_recent_actions_show_the_resyncs(two_changes: SequenceResync) -> None:
    assert two_changes.user is not None
    client = client_for("superuser")
    client.force_login(two_changes.user)  # "My actions" are the resyncer's

    response = client.get("/admin/")

    body = text(response)
    assert f"{two_changes.sequence}: 10 → 4" in body
    assert "public.shop_product_id_seq: 1 → 9" in body
    assert f'href="{AUDIT}{two_changes.pk}/change/"' in response.content.decode()


# ---------------------------------------------------------------------------
# The audit log
# ---------------------------------------------------------------------------


@DB
def test_audit_log_lists_every_change_newest_first(two_changes: SequenceResync) -> None:
    response = client_for("auditor").get(AUDIT)

    assert response.status_code == 200
    body = text(response)
    assert "2 sequence resyncs" in body
    rows = re.findall(r'<tr>\s*<th class="field-when[^"]*">.*?</tr>', response.content.decode(), re.S)
    assert len(rows) == 2
    newest, oldest = (
        " ".join(re.sub(r"<(?!wbr)[^>]*>", " ", row).replace("<wbr>", "").split()) for row in rows
    )
    # What changed first (a narrow screen shows it), the sequence, the values, then who and where.
    assert newest.endswith("lowered shop.Coupon.id public.shop_coupon_id_seq 10 4 resyncer default")
    assert oldest.endswith("moved forward shop.Product.id public.shop_product_id_seq 1 9 resyncer default")
    assert "Add sequence resync" not in body


@DB
@pytest.mark.parametrize(
    ("query", "sequences"),
    [
        ("lowered__exact=1", ["public.shop_coupon_id_seq"]),
        ("lowered__exact=0", ["public.shop_product_id_seq"]),
        ("model=shop.Product", ["public.shop_product_id_seq"]),
        ("q=coupon", ["public.shop_coupon_id_seq"]),
        ("database=default", ["public.shop_coupon_id_seq", "public.shop_product_id_seq"]),
    ],
)
def test_audit_log_filters_and_search(query: str, sequences: list[str], two_changes: SequenceResync) -> None:
    response = client_for("auditor").get(f"{AUDIT}?{query}")

    assert response.status_code == 200
    notes = re.findall(
        r'<td class="field-sequence_name">.*?<div class="integrity-note">(.*?)</div>',
        response.content.decode(),
    )
    shown = [re.sub(r"<[^>]*>", "", note) for note in notes]
    assert shown == sequences


@DB
def test_audit_record_is_read_only(two_changes: SequenceResync) -> None:
    client = client_for("superuser")
    change_url = f"{AUDIT}{two_changes.pk}/change/"
    before = snapshot()

    page = client.get(change_url)
    post = client.post(change_url, {"value_after": "1", "lowered": ""})
    delete = client.post(f"{AUDIT}{two_changes.pk}/delete/", {"post": "yes"})
    add = client.get(f"{AUDIT}add/")
    bulk_delete = client.post(
        AUDIT, {"action": "delete_selected", "_selected_action": [two_changes.pk], "post": "yes"}
    )

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (post.status_code, delete.status_code, add.status_code) == (403, 403, 403)
    assert bulk_delete.status_code in (200, 302)  # the action does not exist: nothing deleted
    assert SequenceResync.objects.count() == 2
    assert snapshot() == before
    two_changes.refresh_from_db()
    assert (two_changes.value_before, two_changes.value_after) == (10, 4)


@DB
def test_audit_log_on_the_second_site(two_changes: SequenceResync) -> None:
    response = client_for("superuser").get("/second-admin/integrity/sequenceresync/")

    assert response.status_code == 200
    assert "2 sequence resyncs" in text(response)
    assert (
        f'href="/second-admin/integrity/sequenceresync/{two_changes.pk}/change/' in response.content.decode()
    )


@DB
def test_log_entries_point_at_the_audit_rows(two_changes: SequenceResync) -> None:
    entries = LogEntry.objects.order_by("action_time")

    assert [e.get_admin_url() for e in entries] == [
        f"{AUDIT}{r.pk}/change/" for r in SequenceResync.objects.order_by("created_at", "id")
    ]
    assert all(e.user == two_changes.user for e in entries)


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize(
    "url",
    [
        "/admin/integrity/duplicaterule/merge/",
        "/admin/integrity/duplicaterule/merge-all/",
        "/admin/integrity/sequence/resync/",
        "/admin/integrity/mergerecord/1/undo/",
    ],
)
def test_opening_a_post_only_address_directly_is_an_admin_page_saying_what_to_do(url: str) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.create_superuser("boss", password="x"))
    response = client.get(url)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    page = response.content.decode()
    assert 'id="content-main"' in page and "breadcrumbs" in page  # the admin's page, not a blank 405
    assert "only takes the form of its page" in page


@pytest.mark.django_db(databases="__all__")
def test_a_403_names_the_permission_that_is_missing() -> None:
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_duplicaterule"))
    client = Client()
    client.force_login(user)
    response = client.post("/admin/integrity/duplicaterule/merge/", {"rule": "x"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "integrity.merge_duplicates" in page
    assert 'id="content-main"' in page
