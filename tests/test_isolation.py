"""The writing transactions are exact whatever isolation level the project configured.

Each test runs under READ COMMITTED, REPEATABLE READ and SERIALIZABLE (the
connection's ``OPTIONS["isolation_level"]``, for every connection the test
opens, threads included). Real commits: ``transaction=True``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, transaction
from django.test import override_settings
from psycopg import IsolationLevel

from demo.shop.models import Coupon
from integrity import sequences
from integrity.duplicates.rules import get_rule
from integrity.merge import execute as merge
from integrity.merge.plan import MergeRefused
from integrity.models import MergeRecord
from tests.helpers import client_for
from tests.keys.models import TextRef, UuidRef, UuidThing
from tests.merge.test_execute import in_thread, wait_for_lock_waiter
from tests.merging.models import Note, Person
from tests.sequences.test_service import COUPON_SEQ, restore_sequences, set_next, waiting_writers  # noqa: F401

LEVELS = [IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE]
RULES = [
    {"model": "merging.Person", "fields": ["email"], "name": "email"},
    {"model": "keys.UuidThing", "fields": ["email"], "name": "email"},
]
MERGE = "/admin/integrity/duplicaterule/merge/"
UUID_KEY = "default:keys.UuidThing:configured:email"

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


@pytest.fixture(params=LEVELS, ids=lambda level: level.name.lower())
def isolation(request: pytest.FixtureRequest) -> Iterator[IsolationLevel]:
    """Every new connection to the default database uses this isolation level."""
    options = connections["default"].settings_dict["OPTIONS"]
    saved = dict(options)
    options["isolation_level"] = request.param
    connection.close()
    try:
        with override_settings(INTEGRITY_LOCK_TIMEOUT_MS=20_000, INTEGRITY_DUPLICATE_RULES=RULES):
            yield request.param
    finally:
        options.clear()
        options.update(saved)
        connection.close()


def raw_connection() -> Any:
    wrapper = connections["default"]
    return wrapper.get_new_connection(wrapper.get_connection_params())


def test_resync_reads_max_after_its_lock(isolation: IsolationLevel) -> None:
    Coupon.objects.bulk_create(Coupon(id=i, code=f"c{i}") for i in (1, 2, 3))
    set_next(COUPON_SEQ, 4)
    writer = raw_connection()  # a writer that inserted an explicit id and has not committed yet
    writer.execute("INSERT INTO shop_coupon (id, code) VALUES (500, 'import')")
    try:
        thread, out = in_thread(lambda: sequences.resync("default", "shop.Coupon", "id"))
        assert wait_for_lock_waiter(), "the resync should wait for the writer's lock"
        writer.commit()
        thread.join(30)
    finally:
        writer.close()
    assert "error" not in out, out
    assert out["result"].value_after == 501
    assert Coupon.objects.create(code="next").pk == 501  # no collision


def test_merge_waiting_on_a_row_lock_goes_through(isolation: IsolationLevel) -> None:
    rule = get_rule("default:merging.Person:configured:email")
    a, b = Person.objects.create(email="d@x"), Person.objects.create(email="d@x")
    writer = raw_connection()
    writer.execute("UPDATE merging_person SET name = 'edited' WHERE id = %s", [b.pk])
    try:
        thread, out = in_thread(lambda: merge.merge(rule, a.pk, [b.pk]))
        assert wait_for_lock_waiter(), "the merge should wait for the row lock"
        writer.commit()
        thread.join(30)
    finally:
        writer.close()
    assert "error" not in out, out
    assert isinstance(out["result"], MergeRecord)
    assert list(Person.objects.values_list("pk", flat=True)) == [a.pk]


def test_a_generic_row_written_while_a_callers_transaction_holds_the_merge_is_swept(
    isolation: IsolationLevel,
) -> None:
    """Inside a caller's transaction (as ATOMIC_REQUESTS makes it) the sweep runs after *that* commit."""
    if isolation != IsolationLevel.READ_COMMITTED:
        pytest.skip("a merge nested in a transaction at another level is refused (next test)")
    rule = get_rule("default:merging.Person:configured:email")
    a, b = Person.objects.create(email="d@x"), Person.objects.create(email="d@x")

    locked, go_on = threading.Event(), threading.Event()

    def pause(name: str) -> None:
        if name == "locked":
            locked.set()
            assert go_on.wait(20)

    def outer() -> Any:
        with transaction.atomic():
            return merge.merge(rule, a.pk, [b.pk], step=pause)

    merger, merged = in_thread(outer)
    assert locked.wait(20)
    ct = ContentType.objects.get_for_model(Person)
    inserter, inserted = in_thread(
        lambda: Note.objects.create(content_type=ct, object_id=b.pk, text="late").pk
    )
    assert wait_for_lock_waiter()
    go_on.set()
    merger.join(30)
    inserter.join(30)
    assert isinstance(merged.get("result"), MergeRecord), merged
    assert Note.objects.get(pk=inserted["result"]).object_id == a.pk


def test_nested_in_a_transaction_that_read_at_another_level_is_refused(isolation: IsolationLevel) -> None:
    rule = get_rule("default:merging.Person:configured:email")
    a, b = Person.objects.create(email="d@x"), Person.objects.create(email="d@x")
    Coupon.objects.bulk_create(Coupon(id=i, code=f"c{i}") for i in (1, 2, 3))
    set_next(COUPON_SEQ, 1)
    with transaction.atomic():
        Coupon.objects.count()  # the caller's transaction has read: its snapshot is taken
        if isolation == IsolationLevel.READ_COMMITTED:
            assert sequences.resync("default", "shop.Coupon", "id").value_after == 4
            assert isinstance(merge.merge(rule, a.pk, [b.pk]), MergeRecord)
            return
        with pytest.raises(sequences.ResyncRefused, match="READ COMMITTED"):
            sequences.resync("default", "shop.Coupon", "id")
        with pytest.raises(MergeRefused, match="READ COMMITTED") as refused:
            merge.merge(rule, a.pk, [b.pk])
        assert refused.value.status == 409
    assert Person.objects.count() == 2


def test_atomic_requests_merge_page_sweeps_late_generic_rows(isolation: IsolationLevel) -> None:
    """ATOMIC_REQUESTS on: the confirm answers, and a row that waited for the merge's lock is re-pointed."""
    a, b = UuidThing.objects.create(email="u@x"), UuidThing.objects.create(email="u@x")
    ct = ContentType.objects.get_for_model(UuidThing)
    blocker = TextRef.objects.create(content_type=ct, object_id=str(b.pk))
    client = client_for("staff", ["view_duplicaterule", "merge_duplicates", "view_mergerecord"])
    form = {"rule": UUID_KEY, "survivor": str(a.pk), "remove": [str(b.pk)]}
    preview = client.post(MERGE, form)
    assert preview.status_code == 200
    token = preview.content.decode().split('name="token" value="', 1)[1].split('"', 1)[0]
    settings_dict = connections.settings["default"]
    settings_dict["ATOMIC_REQUESTS"] = True
    holder = raw_connection()  # keeps the merge waiting (re-pointing a row it holds) once it has its locks
    try:
        holder.execute("SELECT 1 FROM keys_textref WHERE id = %s FOR UPDATE", [blocker.pk])
        page, answer = in_thread(lambda: client.post(MERGE, {**form, "step": "confirm", "token": token}))
        assert wait_for_lock_waiter(), "the merge should wait for the held row"
        inserter, inserted = in_thread(
            lambda: UuidRef.objects.create(content_type=ct, object_id=b.pk).pk  # waits for the merge's lock
        )
        assert wait_until_waiters(2)
        holder.rollback()
        page.join(30)
        inserter.join(30)
    finally:
        settings_dict["ATOMIC_REQUESTS"] = False
        holder.close()
    assert answer["result"].status_code == 302, answer
    assert UuidRef.objects.get(pk=inserted["result"]).object_id == a.pk
    assert TextRef.objects.get().object_id == str(a.pk)


def wait_until_waiters(n: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= n:
                return True
            time.sleep(0.02)
    return False


def test_undo_waiting_on_the_survivors_row_lock_goes_through(isolation: IsolationLevel) -> None:
    from integrity.merge import undo as merge_undo

    rule = get_rule("default:merging.Person:configured:email")
    a, b = Person.objects.create(email="d@x"), Person.objects.create(email="d@x")
    record = merge.merge(rule, a.pk, [b.pk])
    writer = raw_connection()
    writer.execute("UPDATE merging_person SET created = created WHERE id = %s", [a.pk])
    try:
        thread, out = in_thread(lambda: merge_undo.undo(record))
        assert wait_for_lock_waiter(), "the undo should wait for the survivor's row lock"
        writer.commit()
        thread.join(30)
    finally:
        writer.close()
    assert "error" not in out, out
    assert sorted(Person.objects.values_list("pk", flat=True)) == [a.pk, b.pk]
