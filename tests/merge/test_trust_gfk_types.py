"""Generic foreign keys hold only the primary keys their object_id column can: UUID and text keys.

``keys.UuidThing`` (UUID keys) and ``keys.CodeThing`` (text keys such as
'abc' and '12') are merged while generic foreign keys with integer, text and
UUID object ids (``keys.IntRef``, ``TextRef``, ``UuidRef``, and the merge
tests' ``merging.Note`` with a bigint, ``merging.Tagged`` with varchar(64))
exist in the project. A column can only reference keys it can hold: the
others are never compared with it, never a 500.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, transaction
from django.test import override_settings

from integrity.duplicates.relations import relations_to
from integrity.duplicates.rules import get_rule
from integrity.merge import execute as merge
from integrity.merge import undo as merge_undo
from integrity.merge.plan import MergeRefused, build_plan
from integrity.models import MergeRecord
from tests.helpers import client_for
from tests.keys.models import CodeThing, IntRef, TextRef, UuidRef, UuidThing
from tests.merge.test_execute import in_thread, merge_holding_its_locks, wait_for_lock_waiter
from tests.merging.models import Note, Tagged

pytestmark = pytest.mark.django_db(databases="__all__")

UUID_KEY = "default:keys.UuidThing:configured:email"
CODE_KEY = "default:keys.CodeThing:configured:email"
RULES = [
    {"model": "keys.UuidThing", "fields": ["email"], "name": "email"},
    {"model": "keys.CodeThing", "fields": ["email"], "name": "email"},
]
MERGE = "/admin/integrity/duplicaterule/merge/"
GROUP = "/admin/integrity/duplicaterule/group/"
MERGER = ["view_duplicaterule", "merge_duplicates", "view_mergerecord"]
TABLES = [
    "keys_uuidthing",
    "keys_codething",
    "keys_intref",
    "keys_textref",
    "keys_uuidref",
    "merging_note",
    "merging_tagged",
]


@pytest.fixture(autouse=True)
def rules() -> Any:
    with override_settings(INTEGRITY_DUPLICATE_RULES=RULES):
        yield


def dump(tables: list[str]) -> dict[str, list[str]]:
    """Every row of these tables, as ``row_to_json``, sorted."""
    out = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT row_to_json(t)::text AS r FROM {table} t ORDER BY r")  # noqa: S608
            out[table] = [r[0] for r in cursor.fetchall()]
    return out


def ct(model: type) -> ContentType:
    return ContentType.objects.get_for_model(model)


def token_of(response: Any) -> str:
    match = re.search(r'name="token" value="([0-9a-f]+)"', response.content.decode())
    assert match, response.content.decode()
    return match.group(1)


@pytest.fixture
def uuids() -> tuple[UuidThing, UuidThing]:
    a, b = UuidThing.objects.create(email="u@x"), UuidThing.objects.create(email="u@x")
    TextRef.objects.create(content_type=ct(UuidThing), object_id=str(b.pk))
    UuidRef.objects.create(content_type=ct(UuidThing), object_id=b.pk)
    Tagged.objects.create(content_type=ct(UuidThing), object_id=str(b.pk), tag="t")
    # Integer object ids with the same content type: they can reference no UuidThing.
    IntRef.objects.create(content_type=ct(UuidThing), object_id=7)
    Note.objects.create(content_type=ct(UuidThing), object_id=2**62, text="n")
    return a, b


def test_uuid_merge_repoints_the_columns_that_can_hold_it_and_undo_restores(uuids: Any) -> None:
    a, b = uuids
    rule = get_rule(UUID_KEY)
    before = dump(TABLES)
    plan = build_plan(rule, a.pk, [b.pk])
    assert plan.moving == 3
    record = merge.merge(rule, a.pk, [b.pk], token=plan.token)
    assert record.repointed == 3
    assert TextRef.objects.get().object_id == str(a.pk)
    assert UuidRef.objects.get().object_id == a.pk
    assert Tagged.objects.get().object_id == str(a.pk)
    assert IntRef.objects.get().object_id == 7 and Note.objects.get().object_id == 2**62
    merge_undo.undo(record)
    assert dump(TABLES) == before


def test_uuid_merge_through_the_page_answers_after_the_commit(uuids: Any) -> None:
    a, b = uuids
    client = client_for("staff", MERGER)
    group = client.get(GROUP, {"rule": UUID_KEY, "pk": str(a.pk)})
    assert group.status_code == 200
    form = {"rule": UUID_KEY, "survivor": str(a.pk), "remove": [str(b.pk)]}
    preview = client.post(MERGE, form)
    assert preview.status_code == 200
    done = client.post(MERGE, {**form, "step": "confirm", "token": token_of(preview)})
    assert done.status_code == 302
    assert not UuidThing.objects.filter(pk=b.pk).exists()
    assert UuidRef.objects.get().object_id == a.pk


@pytest.fixture
def codes() -> tuple[CodeThing, CodeThing, CodeThing]:
    """'abc', '12' and '012' share an email; an integer object id 12 references '12' only."""
    abc = CodeThing.objects.create(code="abc", email="c@x")
    twelve = CodeThing.objects.create(code="12", email="c@x")
    padded = CodeThing.objects.create(code="012", email="c@x")
    IntRef.objects.create(content_type=ct(CodeThing), object_id=12)
    TextRef.objects.create(content_type=ct(CodeThing), object_id="abc")
    TextRef.objects.create(content_type=ct(CodeThing), object_id="012")
    return abc, twelve, padded


def test_group_page_of_text_keys_counts_what_each_column_can_hold(codes: Any) -> None:
    response = client_for("staff", MERGER).get(GROUP, {"rule": CODE_KEY, "pk": "abc"})
    assert response.status_code == 200
    counts = {r.label: r.counts for r in _references(codes)}
    assert counts["keys.IntRef.object_id"] == {"012": 0, "12": 1, "abc": 0}
    assert counts["keys.TextRef.object_id"] == {"012": 1, "12": 0, "abc": 1}


def _references(members: Any) -> Any:
    from integrity.duplicates.service import references

    return references(get_rule(CODE_KEY), sorted(members, key=lambda m: m.pk))


def test_text_key_merge_into_a_key_an_integer_column_can_hold(codes: Any) -> None:
    abc, twelve, padded = codes
    before = dump(TABLES)
    record = merge.merge(get_rule(CODE_KEY), "12", ["abc", "012"])
    assert sorted(TextRef.objects.values_list("object_id", flat=True)) == ["12", "12"]
    assert IntRef.objects.get().object_id == 12
    assert list(CodeThing.objects.values_list("code", flat=True)) == ["12"]
    merge_undo.undo(record)
    assert dump(TABLES) == before


def test_survivor_key_a_referencing_column_cannot_hold_is_refused_in_the_preview(codes: Any) -> None:
    before = dump(TABLES)
    with pytest.raises(MergeRefused, match=r"keys.IntRef.object_id.*cannot hold the survivor's 'abc'"):
        build_plan(get_rule(CODE_KEY), "abc", ["12"])
    client = client_for("staff", MERGER)
    preview = client.post(MERGE, {"rule": CODE_KEY, "survivor": "abc", "remove": ["12"]})
    assert preview.status_code == 400
    assert "cannot hold" in preview.content.decode()
    assert dump(TABLES) == before


def test_a_survivor_key_nothing_needs_to_hold_merges(codes: Any) -> None:
    abc, twelve, padded = codes
    record = merge.merge(get_rule(CODE_KEY), "abc", ["012"])  # no integer object id references '012'
    assert sorted(TextRef.objects.values_list("object_id", flat=True)) == ["abc", "abc"]
    assert record.repointed == 1


@pytest.mark.django_db(transaction=True)
def test_late_generic_rows_after_a_uuid_merge_are_swept_without_error() -> None:
    """The post-commit sweep compares the removed UUID only with columns that can hold it."""
    a, b = UuidThing.objects.create(email="u@x"), UuidThing.objects.create(email="u@x")
    rule = get_rule(UUID_KEY)
    merger, merged, go_on = merge_holding_its_locks(rule, a.pk, [b.pk])

    def insert() -> int:
        with transaction.atomic():
            return UuidRef.objects.create(content_type=ct(UuidThing), object_id=b.pk).pk

    inserter, inserted = in_thread(insert)
    waiting = wait_for_lock_waiter()
    go_on.set()
    merger.join(30)
    inserter.join(30)
    assert waiting
    assert isinstance(merged.get("result"), MergeRecord), merged
    assert UuidRef.objects.get(pk=inserted["result"]).object_id == a.pk
    connections.close_all()


def test_uuid_primary_key_never_reaches_an_integer_column_query(uuids: Any) -> None:
    a, b = uuids
    rel = next(r for r in relations_to("default", UuidThing) if r.label == "keys.IntRef.object_id")
    assert rel.storable([a.pk, b.pk, uuid.uuid4()]) == {}
    assert rel.counts("default", [a.pk]) == {}
    assert not rel.rows("default", [a.pk]).exists()
