"""Merges on schemas ``_meta`` does not fully describe: every table of the database compared.

The references come from the database's catalog (tables without a model, in
another schema, with every ``ON DELETE`` action), from proxies and generic
foreign keys of every shape, along multi-table inheritance chains. Each test
dumps every table of every non-system schema before the merge, after it
(exactly the planned rows changed) and after the undo (identical), or checks
that a refusal comes in the preview (HTTP 409, CLI exit 1) with nothing
changed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client, override_settings

from integrity.duplicates.relations import relations_to
from integrity.merge import execute as merge
from integrity.merge import undo as merge_undo
from integrity.merge.exceptions import MergeRefused
from integrity.models import MergeRecord
from tests.helpers import client_for, text
from tests.helpers import integrity_command as run
from tests.shapes.dump import Dump, changes, dump_all, without_bookkeeping
from tests.shapes.models import (
    Label,
    Lonely,
    Member,
    Org,
    OrgProxy,
    Pair,
    Pizzeria,
    Place,
    Restaurant,
    Review,
    Seat,
    Tag,
)

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.usefixtures("shape_rules", "constraints_checked"),
]

MERGE = "/admin/integrity/duplicaterule/merge/"
RULES = {
    "Org": "name",
    "Place": "name",
    "Restaurant": "cuisine",
    "Pizzeria": "oven",
    "Lonely": "name",
    "Pair": "name",
}


@pytest.fixture
def shape_rules() -> Any:
    """The rules, and the admin's user and session, made before any test takes its first dump."""
    global _client
    rules = [{"model": f"shapes.{m}", "fields": [f], "name": f} for m, f in RULES.items()]
    with override_settings(INTEGRITY_DUPLICATE_RULES=rules):
        _client = client_for("staff", ["view_duplicaterule", "merge_duplicates", "view_mergerecord"])
        _client.get("/admin/")
        yield


_client: Client | None = None


def key(model: type[Any]) -> str:
    return f"default:shapes.{model.__name__}:configured:{RULES[model.__name__]}"


def sql(statement: str, params: list[Any] | None = None) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def merger() -> Client:
    assert _client is not None
    return _client


def form(model: type[Any], survivor: Any, remove: list[Any], **extra: Any) -> dict[str, Any]:
    return {"rule": key(model), "survivor": survivor.pk, "remove": [r.pk for r in remove], **extra}


def merged_in_the_admin(model: type[Any], survivor: Any, remove: list[Any]) -> MergeRecord:
    """Preview (200), then confirm (302 to the record) as an admin does; the record."""
    client = merger()
    preview = client.post(MERGE, form(model, survivor, remove))
    assert preview.status_code == 200, text(preview)
    token = preview.context["plan"].token
    done = client.post(MERGE, form(model, survivor, remove, step="confirm", token=token))
    assert done.status_code == 302, text(done)
    return MergeRecord.objects.latest("pk")


def refused_everywhere(model: type[Any], survivor: Any, remove: list[Any], *needles: str) -> None:
    """The preview and the confirm answer 409 and the command exits 1, each naming ``needles``; nothing changed."""
    before = dump_all()
    client = merger()
    preview = client.post(MERGE, form(model, survivor, remove))
    confirm = client.post(MERGE, form(model, survivor, remove, step="confirm", token="0" * 40))
    for response in (preview, confirm):
        assert response.status_code == 409, text(response)
        for needle in needles:
            assert needle in text(response)
    label = f"shapes.{model.__name__}"
    args = ["merge", label, "--rule", f"configured:{RULES[model.__name__]}", "--keep", str(survivor.pk)]
    code, _out, err = run(*args, "--remove", *[str(r.pk) for r in remove])
    assert code == 1, err
    for needle in needles:
        assert needle in err
    assert dump_all() == before
    assert not MergeRecord.objects.exists()


def rows_of(d: Dump, table: str, **where: Any) -> list[dict[str, Any]]:
    rows = [json.loads(r) for r in d[table]]
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def moved(d: Dump, table: str, pk: Any, **values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the row as it was, the row with ``values``): one row re-pointed."""
    [row] = rows_of(d, table, id=pk)
    return row, {**row, **values}


def expect(*pairs: tuple[dict[str, Any], dict[str, Any]], gone: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "gone": sorted([*(old for old, _new in pairs), *gone], key=json.dumps),
        "new": sorted((new for _old, new in pairs), key=json.dumps),
    }


def normalized(found: dict[str, Any]) -> dict[str, Any]:
    return {t: {k: sorted(v, key=json.dumps) for k, v in c.items()} for t, c in found.items()}


def undone_exactly(record: MergeRecord, before: Dump) -> None:
    merge_undo.undo(record)
    assert without_bookkeeping(dump_all()) == without_bookkeeping(before)


def ct(model: type[Any]) -> int:
    return ContentType.objects.get_for_model(model, for_concrete_model=False).pk


# ---------------------------------------------------------------------------
# Tables without a model, proxies, generic foreign keys
# ---------------------------------------------------------------------------


LINKS = "legacy.org_links"
BADGES = 'legacy.org "badge%"'


def orgs() -> tuple[Org, Org, Org]:
    return (
        Org.objects.create(name="acme", code="A"),
        Org.objects.create(name="acme", code="B"),
        Org.objects.create(name="other"),
    )


def test_every_reference_of_the_catalog_and_of_meta_moves_and_the_undo_restores_every_table() -> None:
    a, b, c = orgs()
    sql(
        f"INSERT INTO {LINKS} (id, on_cascade, on_set_null, on_set_default, on_restrict, on_no_action, by_code, note) "
        "VALUES (1, %s, %s, %s, %s, %s, 'B', 'all b'), (2, %s, NULL, NULL, NULL, NULL, NULL, 'c'), "
        "(3, %s, NULL, NULL, NULL, NULL, 'A', 'a')",
        [b.pk] * 5 + [c.pk, a.pk],
    )
    sql('INSERT INTO legacy."org ""badge%%""" (id, org_id, color) VALUES (1, %s, %s)', [b.pk, "red"])
    mine, theirs = (
        Member.objects.create(org=OrgProxy.objects.get(pk=b.pk), name="m"),
        Member.objects.create(org_id=c.pk, name="n"),
    )
    seat = Seat.objects.create(org=b, number=1, label="x")
    Seat.objects.create(org=a, number=2, label="y")
    proxy_tag = Tag.objects.create(target=OrgProxy.objects.get(pk=b.pk), text="proxy")
    concrete_tag = Tag.objects.create(target=b, text="concrete")
    other_tag = Tag.objects.create(target=OrgProxy.objects.get(pk=c.pk), text="other")
    label = Label.objects.create(target=b, text="text id")
    assert (proxy_tag.content_type_id, concrete_tag.content_type_id) == (ct(OrgProxy), ct(Org))
    before = dump_all()

    record = merged_in_the_admin(Org, a, [b])

    after = dump_all()
    [org_b] = rows_of(before, "public.shapes_org", id=b.pk)
    assert normalized(changes(before, after)) == {
        LINKS: expect(
            moved(
                before,
                LINKS,
                1,
                on_cascade=a.pk,
                on_set_null=a.pk,
                on_set_default=a.pk,
                on_restrict=a.pk,
                on_no_action=a.pk,
                by_code="A",
            )
        ),
        BADGES: expect(moved(before, BADGES, 1, org_id=a.pk)),
        "public.shapes_label": expect(moved(before, "public.shapes_label", label.pk, object_id=str(a.pk))),
        "public.shapes_member": expect(moved(before, "public.shapes_member", mine.pk, org_id=a.pk)),
        "public.shapes_org": expect(gone=[org_b]),
        "public.shapes_seat": expect(moved(before, "public.shapes_seat", seat.pk, org_id=a.pk)),
        "public.shapes_tag": expect(
            moved(before, "public.shapes_tag", proxy_tag.pk, object_id=a.pk),
            moved(before, "public.shapes_tag", concrete_tag.pk, object_id=a.pk),
        ),
    }
    assert (
        Member.objects.get(pk=theirs.pk).org_id == c.pk and Tag.objects.get(pk=other_tag.pk).object_id == c.pk
    )
    assert record.repointed == 12  # six columns of one raw row, and six other rows
    undone_exactly(record, before)


def test_a_row_whose_primary_key_is_the_reference_moves_and_comes_back() -> None:
    a, b, _c = orgs()
    sql("INSERT INTO legacy.org_profile (org_id, bio) VALUES (%s, 'b')", [b.pk])
    before = dump_all()
    record = merged_in_the_admin(Org, a, [b])
    [row] = rows_of(before, "legacy.org_profile")
    assert normalized(changes(before, dump_all()))["legacy.org_profile"] == expect(
        (row, {**row, "org_id": a.pk})
    )
    undone_exactly(record, before)


def test_the_preview_lists_the_references_only_the_catalog_and_proxies_know() -> None:
    a, b, _c = orgs()
    sql(f"INSERT INTO {LINKS} (on_cascade, on_restrict) VALUES (%s, %s)", [b.pk, b.pk])
    Member.objects.create(org_id=b.pk, name="m")
    Tag.objects.create(target=OrgProxy.objects.get(pk=b.pk), text="proxy")
    preview = merger().post(MERGE, form(Org, a, [b]))
    assert preview.status_code == 200
    moves = {m.relation.label: m.moving for m in preview.context["moves"]}
    assert moves == {
        "legacy.org_links.on_cascade": 1,
        "legacy.org_links.on_restrict": 1,
        "shapes.Member.org": 1,
        "shapes.Tag.object_id (as shapes.OrgProxy)": 1,
    }
    for label in moves:
        assert label in text(preview)


def test_relations_to_a_model_include_foreign_keys_to_its_proxies_and_proxy_content_types() -> None:
    labels = {r.label for r in relations_to("default", Org)}
    assert {
        "shapes.Member.org",
        "shapes.Tag.object_id",
        "shapes.Tag.object_id (as shapes.OrgProxy)",
    } <= labels


def test_a_reference_written_after_the_re_pointing_aborts_the_merge_before_any_action_fires() -> None:
    a, b, _c = orgs()
    sql(f"INSERT INTO {LINKS} (id, on_cascade) VALUES (1, %s)", [b.pk])
    before = dump_all()

    def sneak(step: str) -> None:
        if step == "repointed":
            sql(f"INSERT INTO {LINKS} (id, on_cascade) VALUES (2, %s)", [b.pk])

    rule = __import__("integrity.duplicates.rules", fromlist=["get_rule"]).get_rule(key(Org))
    with pytest.raises(MergeRefused, match="legacy.org_links.on_cascade"):
        merge.merge(rule, a.pk, [b.pk], step=sneak)
    assert dump_all() == before


def test_a_value_the_survivor_takes_over_under_an_immediate_cascade_is_refused_in_the_preview() -> None:
    a = Org.objects.create(name="acme")  # no code: it takes the duplicate's, which a raw row references
    b = Org.objects.create(name="acme", code="B")
    sql(f"INSERT INTO {LINKS} (by_code) VALUES ('B')")
    refused_everywhere(Org, a, [b], "legacy.org_links.by_code", "ON DELETE CASCADE")


def test_a_table_without_a_primary_key_is_refused_in_the_preview() -> None:
    a, b = Lonely.objects.create(name="x"), Lonely.objects.create(name="x")
    sql("INSERT INTO legacy.lonely_notes (lonely_id, body) VALUES (%s, 'kept')", [b.pk])
    refused_everywhere(Lonely, a, [b], "legacy.lonely_notes.lonely_id", "primary key")


def test_a_foreign_key_of_two_columns_is_refused_in_the_preview() -> None:
    a, b = Pair.objects.create(name="x", code="1"), Pair.objects.create(name="x", code="2")
    sql("INSERT INTO legacy.pair_refs (pair_id, pair_code) VALUES (%s, '2')", [b.pk])
    refused_everywhere(Pair, a, [b], "legacy.pair_refs", "pair_id, pair_code", "several columns")


# ---------------------------------------------------------------------------
# Unique indexes only the database has
# ---------------------------------------------------------------------------


def test_a_database_only_unique_index_conflict_is_refused_in_the_preview() -> None:
    a, b, _c = orgs()
    Seat.objects.create(org=a, number=1, label="p")
    Seat.objects.create(org=b, number=1, label="q")
    refused_everywhere(Org, a, [b], "shapes_seat_org_number_db_only", "shapes_seat")


def test_an_expression_unique_index_conflict_is_refused_in_the_preview() -> None:
    a, b, _c = orgs()
    Seat.objects.create(org=a, number=1, label="Front")
    Seat.objects.create(org=b, number=2, label="front")
    refused_everywhere(Org, a, [b], "shapes_seat_org_lower_label", "lower")


def test_rows_outside_a_partial_unique_index_move() -> None:
    a, b, _c = orgs()
    Seat.objects.create(org=a, number=1, label="")
    moving = Seat.objects.create(org=b, number=2, label="")
    before = dump_all()
    record = merged_in_the_admin(Org, a, [b])
    assert normalized(changes(before, dump_all()))["public.shapes_seat"] == expect(
        moved(before, "public.shapes_seat", moving.pk, org_id=a.pk)
    )
    undone_exactly(record, before)


def test_a_unique_index_of_a_table_without_a_model_is_refused_in_the_preview() -> None:
    a, b, _c = orgs()
    sql('INSERT INTO legacy."org ""badge%%""" (org_id) VALUES (%s), (%s)', [a.pk, b.pk])
    refused_everywhere(Org, a, [b], '"legacy"."org ""badge%"""', 'org "badge%"_org_id_key (org_id)')


# ---------------------------------------------------------------------------
# Multi-table inheritance
# ---------------------------------------------------------------------------


def test_restaurants_merge_along_the_whole_chain_and_come_back() -> None:
    r1 = Restaurant.objects.create(name="Chez A", cuisine="thai")
    r2 = Restaurant.objects.create(name="Chez B", cuisine="thai")
    review = Review.objects.create(place_id=r2.pk, restaurant=r2, text="good")
    kept = Review.objects.create(place_id=r1.pk, text="mine")
    sql("INSERT INTO legacy.place_visits (id, place_id, restaurant_id) VALUES (1, %s, %s)", [r2.pk, r2.pk])
    before = dump_all()

    record = merged_in_the_admin(Restaurant, r1, [r2])

    after = dump_all()
    assert normalized(changes(before, after)) == {
        "legacy.place_visits": expect(
            moved(before, "legacy.place_visits", 1, place_id=r1.pk, restaurant_id=r1.pk)
        ),
        "public.shapes_place": expect(gone=rows_of(before, "public.shapes_place", id=r2.pk)),
        "public.shapes_restaurant": expect(
            gone=rows_of(before, "public.shapes_restaurant", place_ptr_id=r2.pk)
        ),
        "public.shapes_review": expect(
            moved(before, "public.shapes_review", review.pk, place_id=r1.pk, restaurant_id=r1.pk)
        ),
    }
    assert Review.objects.get(pk=kept.pk).place_id == r1.pk
    undone_exactly(record, before)


def test_pizzerias_merge_along_a_chain_of_three_from_the_command_line() -> None:
    p1 = Pizzeria.objects.create(name="Uno", cuisine="it", oven="wood")
    p2 = Pizzeria.objects.create(name="Due", cuisine="it", oven="wood")
    review = Review.objects.create(place_id=p2.pk, restaurant_id=p2.pk, text="x")
    sql(
        "INSERT INTO legacy.place_visits (id, place_id, restaurant_id, pizzeria_id) VALUES (1, %s, %s, %s)",
        [p2.pk] * 3,
    )
    before = dump_all()

    code, out, err = run(
        "merge", "shapes.Pizzeria", "--rule", "configured:oven", "--keep", str(p1.pk), "--remove", str(p2.pk)
    )

    assert code == 0, err
    found = normalized(changes(before, dump_all()))
    gone = {
        t: [
            r[
                "place_ptr_id"
                if "place_ptr_id" in r
                else "restaurant_ptr_id"
                if "restaurant_ptr_id" in r
                else "id"
            ]
            for r in c["gone"]
        ]
        for t, c in found.items()
        if not c["new"]
    }
    assert gone == {
        "public.shapes_pizzeria": [p2.pk],
        "public.shapes_place": [p2.pk],
        "public.shapes_restaurant": [p2.pk],
    }
    assert found["legacy.place_visits"] == expect(
        moved(before, "legacy.place_visits", 1, place_id=p1.pk, restaurant_id=p1.pk, pizzeria_id=p1.pk)
    )
    assert found["public.shapes_review"] == expect(
        moved(before, "public.shapes_review", review.pk, place_id=p1.pk, restaurant_id=p1.pk)
    )
    assert set(found) == {*gone, "legacy.place_visits", "public.shapes_review"}
    undone_exactly(MergeRecord.objects.get(), before)


def test_places_with_a_restaurant_child_are_refused_in_the_preview() -> None:
    p = Place.objects.create(name="same")
    r = Restaurant.objects.create(name="same", cuisine="c")
    refused_everywhere(Place, p, [Place.objects.get(pk=r.pk)], "shapes.Restaurant", "multi-table inheritance")


def test_restaurants_with_a_pizzeria_child_are_refused_in_the_preview() -> None:
    r = Restaurant.objects.create(name="one", cuisine="same")
    p = Pizzeria.objects.create(name="two", cuisine="same", oven="gas")
    refused_everywhere(
        Restaurant, r, [Restaurant.objects.get(pk=p.pk)], "shapes.Pizzeria", "multi-table inheritance"
    )


def test_a_generic_reference_to_a_parent_level_written_after_the_merge_is_swept_and_undone() -> None:
    """A row that queued behind the merge's locks with the duplicate's id at the ``Place`` level moves too."""
    from integrity.duplicates.rules import get_rule

    r1 = Restaurant.objects.create(name="Chez A", cuisine="thai")
    r2 = Restaurant.objects.create(name="Chez B", cuisine="thai")
    record = merged_in_the_admin(Restaurant, r1, [r2])
    place = ContentType.objects.get_for_model(Place)
    late = Label.objects.create(content_type=place, object_id=str(r2.pk), text="late")

    merge._sweep_generic(get_rule(key(Restaurant)), record)

    assert Label.objects.get(pk=late.pk).object_id == str(r1.pk)
    record.refresh_from_db()
    merge_undo.undo(record)
    assert Label.objects.get(pk=late.pk).object_id == str(r2.pk)
    assert Place.objects.filter(pk=r2.pk).exists()
