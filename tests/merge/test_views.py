"""HTTP tests of merging (``integrity/views_merge.py``): real requests through the admin, real PostgreSQL.

People of ``tests.merging`` share an email (a configured rule); orders,
profiles and seats reference them. Each test asserts what the page says and
what the database holds afterwards.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client, override_settings

from integrity.models import MergeRecord
from tests.helpers import (
    client_for,
    login_redirect,
    make_user,
    text,
)
from tests.merge.addresses import GROUP, KEY, MERGE, MERGE_ALL, MERGER, RECORDS, RULE
from tests.merging.models import Order, Person, Profile, Seat

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("email_rule"),
]


@pytest.fixture
def people() -> list[Person]:
    """Three people with one email; the second has two orders, the third one order and a nickname."""
    a = Person.objects.create(email="ann@x", name="Ann")
    b = Person.objects.create(email="ann@x", name="Ann L.")
    c = Person.objects.create(email="ann@x", name="", nickname="annie")
    Person.objects.create(email="other@x", name="Other")
    Order.objects.create(person=b, total=1)
    Order.objects.create(person=b, total=2)
    Order.objects.create(person=c, total=3)
    return [a, b, c]


def merger() -> Client:
    return client_for("staff", MERGER)


def state() -> tuple[Any, ...]:
    return (
        sorted(Person.objects.values_list("pk", "name", "nickname")),
        sorted(Order.objects.values_list("pk", "person_id")),
        sorted(Profile.objects.values_list("pk", "person_id")),
        sorted(Seat.objects.values_list("pk", "person_id")),
        MergeRecord.objects.count(),
    )


def form(survivor: Person, remove: list[Person], **extra: Any) -> dict[str, Any]:
    return {"rule": KEY, "survivor": survivor.pk, "remove": [p.pk for p in remove], **extra}


def token_of(response: Any) -> str:
    match = re.search(r'name="token" value="([0-9a-f]+)"', response.content.decode())
    assert match, response.content.decode()
    return match.group(1)


# ---------------------------------------------------------------------------
# The form on the group page
# ---------------------------------------------------------------------------


def test_group_page_offers_the_merge_form_with_the_most_referenced_member_as_default(
    people: list[Person],
) -> None:
    a, b, c = people
    response = merger().get(GROUP, {"rule": KEY, "pk": str(a.pk)})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="merge-form"' in body
    assert re.search(rf'name="survivor" value="{b.pk}" id="survivor-{b.pk}" checked', body)
    assert 'data-field-choice="nickname"' in body  # the members differ there
    assert 'data-field-choice="email"' not in body  # they share the key


def test_group_page_has_no_merge_form_without_the_permission(people: list[Person]) -> None:
    response = client_for("staff", ["view_duplicaterule"]).get(GROUP, {"rule": KEY, "pk": str(people[0].pk)})
    assert response.status_code == 200
    assert 'id="merge-form"' not in response.content.decode()


# ---------------------------------------------------------------------------
# Preview, confirm, record, undo
# ---------------------------------------------------------------------------


def test_preview_changes_nothing_and_confirm_merges_then_undo_restores(people: list[Person]) -> None:
    a, b, c = people
    client = merger()
    before = state()
    preview = client.post(MERGE, form(b, [a, c], **{"field-nickname": c.pk}))
    assert preview.status_code == 200
    page = text(preview)
    assert "2 rows of merging.Person will be merged into row" in page
    assert "merging.Order.person" in page
    assert state() == before

    done = client.post(
        MERGE, form(b, [a, c], **{"field-nickname": c.pk, "step": "confirm", "token": token_of(preview)})
    )
    assert done.status_code == 302
    record = MergeRecord.objects.get()
    assert done["Location"] == f"{RECORDS}{record.pk}/change/"
    assert list(Person.objects.filter(email="ann@x").values_list("pk", "nickname")) == [(b.pk, "annie")]
    assert Order.objects.filter(person=b).count() == 3
    assert record.user is not None and record.survivor == str(b.pk)

    record_page = client.get(done["Location"])
    assert "Merged 2 rows of merging.Person into row" in text(record_page)
    assert 'value="Undo this merge…"' in record_page.content.decode()

    confirm_page = client.post(f"{RECORDS}{record.pk}/undo/")
    assert confirm_page.status_code == 200 and 'value="Yes, undo the merge"' in confirm_page.content.decode()
    assert Person.objects.filter(email="ann@x").count() == 1  # the first POST only asks

    undone = client.post(f"{RECORDS}{record.pk}/undo/", {"confirm": "1"})
    assert undone.status_code == 302
    assert state()[:4] == before[:4]
    record.refresh_from_db()
    assert record.undone_at is not None
    again = client.post(f"{RECORDS}{record.pk}/undo/", {"confirm": "1"})
    assert again.status_code == 409 and "undone already" in text(again)


def test_stale_preview_is_refused_with_the_new_preview(people: list[Person]) -> None:
    a, b, c = people
    client = merger()
    preview = client.post(MERGE, form(a, [b, c]))
    Order.objects.create(person=c, total=9)  # a referencing row added meanwhile
    before = state()
    response = client.post(MERGE, form(a, [b, c], step="confirm", token=token_of(preview)))
    assert response.status_code == 409
    assert "The data changed since the preview" in text(response)
    assert token_of(response) != token_of(preview)
    assert state() == before


def test_tampered_token_is_refused(people: list[Person]) -> None:
    a, b, c = people
    before = state()
    response = merger().post(MERGE, form(a, [b, c], step="confirm", token="0" * 40))
    assert response.status_code == 409
    assert state() == before


def test_conflicts_need_a_choice_before_the_merge_runs(people: list[Person]) -> None:
    a, b, c = people
    Seat.objects.create(person=a, number=1, row="A")
    seat_b = Seat.objects.create(person=b, number=1, row="B")
    client = merger()
    preview = client.post(MERGE, form(a, [b, c]))
    body = preview.content.decode()
    conflict = re.search(r'data-conflict="([0-9a-f]+)"', body)
    assert conflict and "merging.Seat" in text(preview)
    before = state()
    refused = client.post(MERGE, form(a, [b, c], step="confirm", token=token_of(preview)))
    assert refused.status_code == 409 and "Choose which row to keep" in text(refused)
    assert state() == before
    bad = client.post(
        MERGE,
        form(a, [b, c], step="confirm", token=token_of(preview), **{f"keep-{conflict.group(1)}": "999999"}),
    )
    assert bad.status_code == 400
    assert state() == before
    keep = {f"keep-{conflict.group(1)}": seat_b.pk}
    # A row chosen after the preview counted: the confirm shows the preview of that choice, and does nothing.
    changed = client.post(MERGE, form(a, [b, c], step="confirm", token=token_of(preview), **keep))
    assert changed.status_code == 409
    assert "The rows to keep were changed after the preview counted them" in text(changed)
    assert state() == before
    done = client.post(MERGE, form(a, [b, c], step="confirm", token=token_of(changed), **keep))
    assert done.status_code == 302
    assert list(Seat.objects.values_list("pk", "person_id", "row")) == [(seat_b.pk, a.pk, "B")]


# ---------------------------------------------------------------------------
# Bad input: a clear message, a 4xx, nothing changed
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("unknown rule", 404, "There is no duplicate rule"),
        ("pk of the wrong type", 400, "is not a valid primary key"),
        ("survivor outside the group", 400, "are not duplicates of row"),
        ("member outside the group", 400, "are not duplicates of row"),
        ("gone", 404, "do not exist (any more)"),
        ("no duplicates", 400, "at least one duplicate"),
        ("unknown field", 400, "has no field"),
        ("field from a stranger", 400, "is not one of the rows being merged"),
    ],
)
def test_bad_input(people: list[Person], case: str, status: int, message: str) -> None:
    a, b, c = people
    other = Person.objects.get(email="other@x")
    data = {
        "unknown rule": {**form(a, [b]), "rule": "default:merging.Person:nope"},
        "pk of the wrong type": {**form(a, [b]), "survivor": "abc"},
        "survivor outside the group": form(other, [b]),
        "member outside the group": form(a, [b, other]),
        "gone": {**form(a, [b]), "remove": [987654]},
        "no duplicates": {**form(a, []), "remove": []},
        "unknown field": form(a, [b], **{"field-shoe_size": b.pk}),
        "field from a stranger": form(a, [b], **{"field-nickname": other.pk}),
    }[case]
    before = state()
    response = merger().post(MERGE, data)
    assert response.status_code == status, text(response)
    assert message in text(response)
    assert state() == before


def test_merge_is_post_only_with_csrf(people: list[Person]) -> None:
    a, b, c = people
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(merger_user())
    assert strict.get(MERGE, form(a, [b])).status_code == 405
    before = state()
    response = strict.post(MERGE, form(a, [b], step="confirm", token="x"))
    assert response.status_code == 403
    assert state() == before


def merger_user() -> Any:

    return make_user("staff", MERGER)


# ---------------------------------------------------------------------------
# Localized numbers: the forms post primary keys and counters as typed
# ---------------------------------------------------------------------------


def inputs(response: Any, name: str) -> list[str]:
    """The values of every input named ``name`` in the page, in order."""
    return re.findall(rf'name="{re.escape(name)}" value="([^"]*)"', response.content.decode())


@override_settings(USE_THOUSAND_SEPARATOR=True)
def test_primary_keys_of_a_thousand_and_more_post_unlocalized_and_the_merge_goes_through() -> None:
    """With USE_THOUSAND_SEPARATOR a pk 1234 must not post as "1,234" (the merge would be refused)."""
    keep = Person.objects.create(pk=1234, email="big@x", name="Big")
    gone = Person.objects.create(pk=1235, email="big@x", name="", nickname="bigger")
    Order.objects.create(person=gone, total=1)
    client = merger()
    group = client.get(GROUP, {"rule": KEY, "pk": str(keep.pk)})
    assert group.status_code == 200
    assert inputs(group, "survivor") == ["1234", "1235"]
    assert inputs(group, "remove") == ["1234", "1235"]
    assert "1234" in inputs(group, "field-nickname")

    preview = client.post(MERGE, {"rule": KEY, "survivor": "1235", "remove": inputs(group, "remove")})
    assert preview.status_code == 200, text(preview)
    assert inputs(preview, "survivor") == ["1235"]
    assert inputs(preview, "remove") == ["1234"]

    confirm = {
        "rule": KEY,
        "survivor": inputs(preview, "survivor")[0],
        "remove": inputs(preview, "remove"),
        "token": token_of(preview),
        "step": "confirm",
    }
    response = client.post(MERGE, confirm)
    assert response.status_code == 302, text(response)
    assert list(Person.objects.filter(email="big@x").values_list("pk", flat=True)) == [1235]
    assert Order.objects.get().person_id == 1235


@override_settings(USE_THOUSAND_SEPARATOR=True, INTEGRITY_MERGE_BATCH=1)
def test_merge_all_counter_of_a_thousand_and_more_posts_unlocalized(people: list[Person]) -> None:
    """The "merge every group" progress carries its count in a hidden input: 1001 must not come back as 0."""
    for i in range(2):
        Person.objects.create(email=f"g{i}@x")
        Person.objects.create(email=f"g{i}@x")
    client = merger()
    run = {"rule": KEY, "policy": "oldest", "step": "run"}
    first = client.post(MERGE_ALL, {**run, "done": "1000"}, headers={"HX-Request": "true"})
    assert "1,001 groups merged, 2 to go" in text(first)  # shown localized…
    assert inputs(first, "done") == ["1001"]  # …posted as typed
    second = client.post(MERGE_ALL, {**run, "done": inputs(first, "done")[0]}, headers={"HX-Request": "true"})
    assert "1,002 groups merged, 1 to go" in text(second)


# ---------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------

ROLES = {
    "anonymous": (None, "login"),
    "staff": ([], 403),
    "viewer": (["view_duplicaterule"], 403),
    "merge without view": (["merge_duplicates"], 403),
    "merger": (MERGER, 200),
    "superuser": (None, 200),
}


@pytest.mark.parametrize("role", list(ROLES))
def test_permission_matrix_of_the_merge_preview(people: list[Person], role: str) -> None:
    a, b, c = people
    codenames, expected = ROLES[role]
    client = (
        Client()
        if role == "anonymous"
        else client_for("superuser" if role == "superuser" else "staff", codenames)
    )
    before = state()
    response = client.post(MERGE, form(a, [b, c]))
    if expected == "login":
        assert login_redirect(response, MERGE)
    else:
        assert response.status_code == expected
    assert state() == before


@pytest.mark.parametrize("role", list(ROLES))
def test_permission_matrix_of_the_undo(people: list[Person], role: str) -> None:
    from integrity import merge
    from integrity.duplicates.rules import get_rule

    a, b, c = people
    record = merge.merge(get_rule(KEY), a.pk, [b.pk, c.pk])
    codenames, expected = ROLES[role]
    client = (
        Client()
        if role == "anonymous"
        else client_for("superuser" if role == "superuser" else "staff", codenames)
    )
    before = state()
    response = client.post(f"{RECORDS}{record.pk}/undo/", {"confirm": "1"})
    if expected == "login":
        assert login_redirect(response, f"{RECORDS}{record.pk}/undo/")
        assert state() == before
    elif expected == 403:
        assert response.status_code == 403
        assert state() == before
    else:
        assert response.status_code == 302
        assert Person.objects.filter(email="ann@x").count() == 3


def test_unknown_record_is_a_404(people: list[Person]) -> None:
    client = client_for("superuser")
    assert client.post(f"{RECORDS}424242/change/").status_code == 405  # the record page only shows
    assert client.get(f"{RECORDS}424242/change/").status_code == 404
    assert client.post(f"{RECORDS}424242/undo/", {"confirm": "1"}).status_code == 404
    assert client.post(f"{RECORDS}abc/undo/", {"confirm": "1"}).status_code == 404


# ---------------------------------------------------------------------------
# Merge every group of a rule
# ---------------------------------------------------------------------------


def test_merge_all_previews_then_runs_in_batches_and_can_stop(people: list[Person]) -> None:
    for i in range(3):
        Person.objects.create(email=f"g{i}@x")
        Person.objects.create(email=f"g{i}@x")
    client = merger()
    rule_page = client.get(RULE, {"rule": KEY})
    assert 'id="merge-all-form"' in rule_page.content.decode()
    preview = client.post(MERGE_ALL, {"rule": KEY, "policy": "oldest", "step": "preview"})
    assert preview.status_code == 200
    assert "4 groups, 9 rows" in text(preview)
    assert Person.objects.count() == 10

    stopped = client.post(MERGE_ALL, {"rule": KEY, "policy": "oldest", "step": "stop", "done": "0"})
    assert "Stopped: 0 groups merged" in text(stopped)
    assert Person.objects.count() == 10

    with override_settings(INTEGRITY_MERGE_BATCH=2):
        first = client.post(
            MERGE_ALL, {"rule": KEY, "policy": "oldest", "step": "run"}, headers={"HX-Request": "true"}
        )
    assert "2 groups merged, 2 to go" in text(first)
    assert 'id="merge-all-continue"' in first.content.decode()
    assert MergeRecord.objects.count() == 2
    rest = client.post(
        MERGE_ALL,
        {"rule": KEY, "policy": "oldest", "step": "run", "done": "2"},
        headers={"HX-Request": "true"},
    )
    assert "Done: 4 groups merged." in text(rest)
    assert Person.objects.count() == 5
    assert Person.objects.filter(email="ann@x").get().pk == people[0].pk  # oldest kept


def test_merge_all_refuses_an_unknown_policy(people: list[Person]) -> None:
    response = merger().post(MERGE_ALL, {"rule": KEY, "policy": "random", "step": "run"})
    assert response.status_code == 400
    assert Person.objects.count() == 4


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_rows_locked_by_another_transaction_are_a_409_and_nothing_changes(people: list[Person]) -> None:
    from django.db import connections

    a, b, c = people
    client = merger()
    preview = client.post(MERGE, form(a, [b, c]))
    before = state()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM merging_person WHERE id = %s FOR UPDATE", [c.pk])
            with override_settings(INTEGRITY_LOCK_TIMEOUT_MS=100):
                response = client.post(MERGE, form(a, [b, c], step="confirm", token=token_of(preview)))
            cursor.execute("ROLLBACK")
    finally:
        other.close()
    assert response.status_code == 409
    assert "are being changed by another transaction" in text(response)
    assert state() == before


def test_the_merge_log_lists_each_merge_and_links_its_record(people: list[Person]) -> None:
    from integrity import merge
    from integrity.duplicates.rules import get_rule

    a, b, c = people
    record = merge.merge(get_rule(KEY), a.pk, [b.pk, c.pk])
    response = merger().get(RECORDS)
    assert response.status_code == 200
    found = re.findall(r'<td class="field-(\w+)[^"]*">(.*?)</td>', response.content.decode(), re.S)
    cells = {name: " ".join(re.sub(r"<[^>]*>", "", cell).split()) for name, cell in found}
    assert cells == {
        "who": "—",  # merged by code, not a person
        "model": "merging.Person",
        "survivor": str(a.pk),
        "merged": f"{b.pk}, {c.pk}",
        "repointed": "3",
        "deleted": "2",
        "status": "merged",
    }
    assert f'href="{RECORDS}{record.pk}/change/' in response.content.decode()
    assert client_for("viewer", ["view_duplicaterule", "merge_duplicates"]).get(RECORDS).status_code == 403
