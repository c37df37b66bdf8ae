"""HTTP tests of what the merge pages show: the preview of a choice, the record's deleted rows, merge-all's end,
the group page's pager. Real requests through the admin, real PostgreSQL (as ``test_views``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from integrity.models import MergeRecord
from tests.helpers import client_for, text
from tests.merge.addresses import GROUP, KEY, MERGE, MERGE_ALL, MERGER, PAGER, RECORDS
from tests.merging.models import Order, Person, Seat

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("email_rule"),
]


def merger() -> Any:
    return client_for("staff", MERGER)


def totals(response: Any) -> dict[str, str]:
    found = re.findall(r'<dd data-total="(\w+)">([^<]*)</dd>', response.content.decode())
    return dict(found)


def token_of(response: Any) -> str:
    match = re.search(r'name="token" value="([0-9a-f]+)"', response.content.decode())
    assert match
    return match.group(1)


# ---------------------------------------------------------------------------
# The preview counts the choices as made
# ---------------------------------------------------------------------------


def test_a_choice_previewed_without_javascript_counts_it_and_its_confirm_does_exactly_that() -> None:
    a = Person.objects.create(email="ann@x", name="Ann")
    b = Person.objects.create(email="ann@x", name="Ann B")
    mine = Seat.objects.create(person=a, number=1, row="A")
    Seat.objects.create(person=b, number=1, row="B")
    Order.objects.create(person=b, total=1)
    client = merger()
    base = {"rule": KEY, "survivor": a.pk, "remove": [b.pk]}

    first = client.post(MERGE, base)
    body = first.content.decode()
    conflict = re.search(r'data-conflict="([0-9a-f]+)"', body)
    assert conflict is not None
    # The choice re-reads the preview with JavaScript; without, a button does.
    assert 'hx-vals=\'{"step": "preview"}\'' in body and 'hx-trigger="change"' in body
    assert '<button type="submit" name="step" value="preview" class="button">' in body
    assert totals(first) == {"moved": "2", "deleted": "1", "changed": "0"}
    assert "Choose the row to keep in the conflict below" in text(first)

    chosen = client.post(MERGE, {**base, "step": "preview", f"keep-{conflict[1]}": mine.pk})
    assert chosen.status_code == 200
    # The duplicate's seat is deleted (not moved): one reference fewer moves, one row more goes.
    assert totals(chosen) == {"moved": "1", "deleted": "2", "changed": "0"}
    assert "Choose the row to keep" not in text(chosen)
    assert Seat.objects.count() == 2  # a preview changes nothing

    done = client.post(
        MERGE, {**base, "step": "confirm", "token": token_of(chosen), f"keep-{conflict[1]}": mine.pk}
    )
    assert done.status_code == 302
    record = MergeRecord.objects.get()
    assert (record.repointed, record.deleted) == (1, 2)
    assert totals(client.get(done["Location"])) == totals(chosen)
    assert list(Seat.objects.values_list("pk", "person_id")) == [(mine.pk, a.pk)]


# ---------------------------------------------------------------------------
# The record shows the deleted rows before the Undo
# ---------------------------------------------------------------------------


def test_the_record_shows_the_deleted_rows_by_field_before_its_undo() -> None:
    a = Person.objects.create(email="ann@x", name="Ann")
    b = Person.objects.create(email="ann@x", name=" Ann <b>", nickname="annie")
    client = merger()
    preview = client.post(MERGE, {"rule": KEY, "survivor": a.pk, "remove": [b.pk]})
    done = client.post(
        MERGE,
        {"rule": KEY, "survivor": a.pk, "remove": [b.pk], "step": "confirm", "token": token_of(preview)},
    )
    page = client.get(done["Location"])
    body = page.content.decode()

    block = re.search(
        r'<table class="integrity-table integrity-deleted-rows" data-model="merging.Person">.*?</table>',
        body,
        re.S,
    )
    assert block is not None
    headers = re.findall(r'<th scope="col">([^<]*)</th>', block[0])
    assert headers[0] == "ID" and {"name", "nickname", "email"} <= set(headers)  # verbose names
    cells = re.sub(r"<[^>]*>", "", block[0])
    assert "annie" in cells and "&lt;b&gt;" in cells  # the values, escaped
    assert '<span class="integrity-invisible" title="U+0020 SPACE">␣</span>Ann' in block[0]
    assert "1 row of persons" in text(page)
    assert body.index("integrity-deleted-rows") < body.index('value="Undo this merge…"')


# ---------------------------------------------------------------------------
# Merge every group: the progress bar and, at the end, the records made
# ---------------------------------------------------------------------------


def test_merge_all_shows_a_progress_bar_and_links_the_records_it_made() -> None:
    for i in range(3):
        Person.objects.create(email=f"g{i}@x")
        Person.objects.create(email=f"g{i}@x")
    client = merger()
    with override_settings(INTEGRITY_MERGE_BATCH=2):
        first = client.post(
            MERGE_ALL, {"rule": KEY, "policy": "oldest", "step": "run"}, headers={"HX-Request": "true"}
        )
    body = first.content.decode()
    assert '<progress id="merge-all-bar" max="3" value="2"' in body
    assert re.search(
        r'<button type="button" id="merge-all-stop-js" class="button"', body
    )  # admin-styled Stop
    carried = dict(re.findall(r'<input type="hidden" name="(first|last)" value="(\d+)">', body))
    records = list(MergeRecord.objects.order_by("pk").values_list("pk", flat=True))
    assert carried == {"first": str(records[0]), "last": str(records[1])}

    rest = client.post(
        MERGE_ALL,
        {"rule": KEY, "policy": "oldest", "step": "run", "done": "2", **carried},
        headers={"HX-Request": "true"},
    )
    body = rest.content.decode()
    last = MergeRecord.objects.order_by("pk").last()
    assert last is not None
    assert '<progress id="merge-all-bar" max="3" value="3"' in body
    assert "Done: 3 groups merged." in text(rest)
    assert f'<a href="{RECORDS}{records[0]}/change/">#{records[0]}</a>' in body
    assert f'<a href="{RECORDS}{last.pk}/change/">#{last.pk}</a>' in body
    log = re.search(r'<a href="([^"]+)">See them in the merge log</a>', body)
    assert log is not None
    listed = client.get(log[1].replace("&amp;", "&"))
    assert listed.status_code == 200 and "3 merge log" in text(listed)  # the model's three, nothing else


# ---------------------------------------------------------------------------
# The group page: its title, and previous / next group
# ---------------------------------------------------------------------------


@pytest.fixture
def groups() -> list[list[Person]]:
    """Three groups: the largest first (3 rows), then two of 2 rows ordered by email."""
    big = [Person.objects.create(email="c@x") for _ in range(3)]
    one = [Person.objects.create(email="a@x") for _ in range(2)]
    two = [Person.objects.create(email="b@x") for _ in range(2)]
    Person.objects.create(email="alone@x")
    return [big, one, two]


def test_the_group_page_is_titled_by_its_key_and_size_and_places_itself_lazily(
    groups: list[list[Person]],
) -> None:
    big, one, two = groups
    client = client_for("staff", ["view_duplicaterule"])
    page = client.get(GROUP, {"rule": KEY, "pk": str(one[1].pk)})
    body = page.content.decode()
    assert "<h1>email = &#x27;a@x&#x27; – 2 rows</h1>" in body
    pager_url = f"{PAGER}?rule={KEY.replace(':', '%3A')}&amp;pk={one[0].pk}"
    assert f'hx-get="{pager_url}"' in body  # placed by its own request: the page runs no scan
    assert f'href="{pager_url}&amp;to=next"' in body

    with CaptureQueriesContext(connection) as sql:
        placed = client.get(PAGER, {"rule": KEY, "pk": str(one[0].pk)}, headers={"HX-Request": "true"})
    assert placed.status_code == 200
    assert "Group 2 of 3" in text(placed)
    assert (
        f'href="{GROUP}?rule={KEY.replace(":", "%3A")}&amp;pk={big[0].pk}" rel="prev"'
        in placed.content.decode()
    )
    assert (
        f'href="{GROUP}?rule={KEY.replace(":", "%3A")}&amp;pk={two[0].pk}" rel="next"'
        in placed.content.decode()
    )
    assert len([q for q in sql if "HAVING COUNT(*) > 1" in q["sql"].upper()]) == 1  # one scan

    first = client.get(PAGER, {"rule": KEY, "pk": str(big[2].pk)}, headers={"HX-Request": "true"})
    assert "Group 1 of 3" in text(first) and 'rel="prev"' not in first.content.decode()


def test_without_javascript_next_and_previous_redirect_to_the_neighbour(groups: list[list[Person]]) -> None:
    big, one, two = groups
    client = client_for("staff", ["view_duplicaterule"])
    nxt = client.get(PAGER, {"rule": KEY, "pk": str(one[0].pk), "to": "next"})
    assert (
        nxt.status_code == 302 and nxt["Location"] == f"{GROUP}?rule={KEY.replace(':', '%3A')}&pk={two[0].pk}"
    )
    back = client.get(PAGER, {"rule": KEY, "pk": str(one[0].pk), "to": "previous"})
    assert back["Location"] == f"{GROUP}?rule={KEY.replace(':', '%3A')}&pk={big[0].pk}"
    end = client.get(PAGER, {"rule": KEY, "pk": str(two[0].pk), "to": "next"}, follow=True)
    assert "That was the last group of this rule." in text(end)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"to": "sideways"}, 400, "Go to the next or the previous group."),
        ({"rule": "nope"}, 404, "There is no duplicate rule"),
        ({"pk": "x"}, 400, "is not a valid primary key"),
        ({"pk": "999999"}, 404, "is not in any duplicate group"),
    ],
)
def test_the_pager_refuses_bad_input(
    groups: list[list[Person]], query: dict[str, str], status: int, message: str
) -> None:
    client = client_for("staff", ["view_duplicaterule"])
    response = client.get(PAGER, {"rule": KEY, "pk": str(groups[0][0].pk), **query})
    assert response.status_code == status
    assert message in text(response)


def test_the_pager_checks_its_permission(groups: list[list[Person]]) -> None:
    response = client_for("staff", []).get(PAGER, {"rule": KEY, "pk": str(groups[0][0].pk)})
    assert response.status_code == 403
