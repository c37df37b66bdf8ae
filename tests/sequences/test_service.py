"""The sequence service (integrity.sequences) on real PostgreSQL.

Sequence values are not transactional: ``setval``/``nextval`` survive the
rollback that ends each test. Every test therefore sets the sequences it reads
to a known value first, and ``restore_sequences`` puts every sequence of both
PostgreSQL databases back as it was afterwards, so no other test sees the
values left here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.apps.registry import Apps
from django.contrib.admin.models import LogEntry
from django.core.management.color import no_style
from django.db import DatabaseError, IntegrityError, connection, connections, models, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from demo.helpdesk.models import Ticket
from demo.metrics.models import ArchivedEntry, Entry, Invoice, LegacyCounter, Reading
from demo.shop.models import Coupon, Product, Tag
from integrity import sequences
from integrity.models import SequenceResync
from integrity.sequences import SequenceInfo, SequenceNotFound, TableBusy
from tests.helpers import COUPON_SEQ, PG_ALIASES, info, next_of, waiting_writers
from tests.helpers import set_sequence_next as set_next
from tests.helpers import sql_rows as run

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.usefixtures("restore_sequences")]

INT4_MAX = 2**31 - 1


# --- helpers: plain SQL, independent of the code under test -----------------


def serial_sequence(table: str, column: str = "id", using: str = "default") -> str:
    return run("SELECT pg_get_serial_sequence(%s, %s)", [table, column], using)[0][0]


def audit_count() -> int:
    return sum(SequenceResync.objects.using(alias).count() for alias in PG_ALIASES)


@pytest.fixture
def role() -> str:
    """A login-less role with no privilege at all (dropped by the test's rollback)."""
    name = f"integrity_test_{uuid.uuid4().hex[:12]}"
    run(f"CREATE ROLE {name}")
    return name


@contextmanager
def as_role(name: str) -> Iterator[None]:
    run(f"SET ROLE {name}")
    try:
        yield
    finally:
        run("RESET ROLE")


def coupons(*ids: int) -> None:
    """Rows with explicit ids, as an import or a data migration writes them."""
    Coupon.objects.bulk_create(Coupon(id=i, code=f"c{i}") for i in ids)


@pytest.fixture
def coupon_seq() -> str:
    """shop.Coupon's sequence, restarted at 1 (the table itself is empty)."""
    assert serial_sequence("shop_coupon") == COUPON_SEQ
    assert not Coupon.objects.exists()
    set_next(COUPON_SEQ, 1)
    return COUPON_SEQ


# --- statuses ---------------------------------------------------------------


def test_status_ok_after_normal_inserts(coupon_seq):
    for code in "abc":
        Coupon.objects.create(code=code)
    row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("ok", 4, 3)
    assert (row.table, row.sequence, row.kind) == ("public.shop_coupon", COUPON_SEQ, "identity")
    assert not row.problem


def test_status_ahead_when_newest_rows_were_deleted(coupon_seq):
    for code in "abc":
        Coupon.objects.create(code=code)
    Coupon.objects.filter(id=3).delete()
    row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("ahead", 4, 2)
    assert not row.problem  # a gap never makes an insert fail


def test_status_behind_after_rows_with_explicit_ids(coupon_seq):
    coupons(1, 2, 3, 4, 5)
    row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("behind", 1, 5)
    assert row.problem
    # What the user would hit: the next insert collides.
    with pytest.raises(IntegrityError), transaction.atomic():
        Coupon.objects.create(code="new")


def test_status_behind_when_next_value_equals_max(coupon_seq):
    coupons(1, 2)
    set_next(coupon_seq, 2)
    assert info("shop.Coupon").status == "behind"


def test_status_empty(coupon_seq):
    row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("empty", 1, None)


def test_status_unreadable_for_a_role_without_privileges(coupon_seq, role):
    coupons(1, 2, 3)
    as_owner = sequences.collect_alias("default")
    with as_role(role):
        report = sequences.collect_alias("default")
    # Nothing is dropped and nothing crashes, even the table in schema "archive"
    # (which the role may not even look into).
    assert {(i.model, i.column) for i in report.sequences} == {
        (i.model, i.column) for i in as_owner.sequences
    }
    assert {i.status for i in report.sequences} == {"unreadable"}
    row = next(i for i in report.sequences if i.model == "shop.Coupon")
    assert (row.next_value, row.max_value, row.capacity, row.capacity_level) == (None, None, None, "ok")
    assert row.problem
    archived = next(i for i in report.sequences if i.model == "metrics.ArchivedEntry")
    assert (archived.table, archived.sequence) == ("archive.entry", "archive.entry_id_seq")


def test_unreadable_when_only_the_table_is_readable(coupon_seq, role):
    coupons(1, 2, 3)
    run(f"GRANT SELECT ON shop_coupon TO {role}")
    with as_role(role):
        row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("unreadable", None, 3)


def test_unreadable_when_only_the_sequence_is_readable(coupon_seq, role):
    coupons(1, 2, 3)
    run(f"GRANT SELECT ON SEQUENCE {coupon_seq} TO {role}")
    with as_role(role):
        row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("unreadable", 1, None)


def test_readable_with_both_privileges(coupon_seq, role):
    coupons(1, 2, 3)
    run(f"GRANT SELECT ON shop_coupon TO {role}")
    run(f"GRANT SELECT ON SEQUENCE {coupon_seq} TO {role}")
    with as_role(role):
        row = info("shop.Coupon")
    assert (row.status, row.next_value, row.max_value) == ("behind", 1, 3)


# --- capacity and type mismatch ---------------------------------------------


@pytest.mark.parametrize(
    ("last_id", "level"),
    [(1_000_000_000, "ok"), (1_700_000_000, "warning"), (2_000_000_000, "critical")],
)
def test_capacity_level_of_an_int4_identity(last_id, level):
    seq = serial_sequence("metrics_reading")
    Reading.objects.create(id=last_id, value=1.0)
    run("SELECT setval(%s::regclass, %s, true)", [seq, last_id])
    row = info("metrics.Reading")
    assert (row.column_type, row.sequence_type, row.sequence_max) == ("integer", "integer", INT4_MAX)
    assert (row.status, row.next_value, row.max_value) == ("ok", last_id + 1, last_id)
    assert row.capacity == pytest.approx(last_id / INT4_MAX, abs=1e-6)
    assert row.capacity_level == level
    assert row.problem is (level != "ok")
    assert not row.type_mismatch


def test_capacity_counts_values_handed_out_even_if_the_rows_are_gone():
    seq = serial_sequence("metrics_reading")
    run("SELECT setval(%s::regclass, %s, true)", [seq, 2_000_000_000])
    row = info("metrics.Reading")
    assert (row.status, row.capacity_level) == ("empty", "critical")


@override_settings(INTEGRITY_CAPACITY_WARNING=0.4, INTEGRITY_CAPACITY_CRITICAL=0.45)
def test_capacity_thresholds_come_from_settings():
    seq = serial_sequence("metrics_reading")
    Reading.objects.create(id=900_000_000, value=1.0)  # 0.419
    run("SELECT setval(%s::regclass, %s, true)", [seq, 900_000_000])
    assert info("metrics.Reading").capacity_level == "warning"
    with override_settings(INTEGRITY_CAPACITY_CRITICAL=0.41):
        assert info("metrics.Reading").capacity_level == "critical"


def test_type_mismatch_bigint_sequence_on_integer_column():
    set_next("public.ticket_sequence", 1)
    row = info("helpdesk.Ticket", "number")
    assert (row.column_type, row.sequence_type) == ("integer", "bigint")
    assert row.sequence_max == 2**63 - 1
    assert row.type_mismatch and row.problem
    assert info("helpdesk.Ticket", "id").type_mismatch is False


def test_capacity_is_measured_against_the_column_not_the_bigint_sequence():
    Ticket.objects.create(subject="late", number=2_000_000_000)
    run("SELECT setval('public.ticket_sequence', 2000000000, true)")
    row = info("helpdesk.Ticket", "number")
    assert row.capacity == pytest.approx(2_000_000_000 / INT4_MAX, abs=1e-6)
    assert row.capacity_level == "critical"


# --- kinds ------------------------------------------------------------------


def test_serial_column_of_a_hand_made_table():
    seq = serial_sequence("legacy_counter")
    assert seq == "public.legacy_counter_id_seq"
    LegacyCounter.objects.bulk_create(LegacyCounter(id=i, name=f"n{i}") for i in (1, 2, 3))
    set_next(seq, 1)
    row = info("metrics.LegacyCounter")
    assert (row.kind, row.column_type, row.sequence_type) == ("serial", "integer", "integer")
    assert (row.sequence, row.status, row.max_value) == (seq, "behind", 3)
    result = sequences.resync("default", "metrics.LegacyCounter", "id")
    assert (result.value_before, result.value_after) == (1, 4)
    assert LegacyCounter.objects.create(name="new").pk == 4


def test_m2m_through_table():
    Through = Product.tags.through
    seq = serial_sequence("shop_product_tags")
    product = Product.objects.create(id=10_001, name="Desk")
    tags = [Tag.objects.create(id=10_000 + i, name=f"tag{i}") for i in range(4)]
    Through.objects.bulk_create(Through(id=i, product=product, tag=tags[i - 1]) for i in (1, 2, 3))
    set_next(seq, 1)
    row = info("shop.Product_tags")
    assert (row.model, row.table, row.kind) == ("shop.Product_tags", "public.shop_product_tags", "identity")
    assert (row.sequence, row.status, row.max_value) == (seq, "behind", 3)
    result = sequences.resync("default", "shop.Product_tags", "id")
    assert result.value_after == 4
    product.tags.add(tags[3])
    assert Through.objects.get(tag=tags[3]).pk == 4


def test_non_pk_column_fed_by_a_nextval_default():
    Ticket.objects.bulk_create(Ticket(subject=f"t{n}", number=n) for n in (1, 2, 3))
    set_next("public.ticket_sequence", 1)
    rows = {i.column: i for i in sequences.collect_alias("default", [Ticket]).sequences}
    assert set(rows) == {"id", "number"}
    number = rows["number"]
    # CREATE SEQUENCE ... OWNED BY + DEFAULT nextval() is what serial does: the
    # catalog cannot tell them apart, so the kind is "serial".
    assert (number.kind, number.sequence, number.table) == (
        "serial",
        "public.ticket_sequence",
        "public.helpdesk_ticket",
    )
    assert (number.status, number.next_value, number.max_value) == ("behind", 1, 3)
    assert rows["id"].sequence == "public.helpdesk_ticket_id_seq"
    result = sequences.resync("default", "helpdesk.Ticket", "number")
    assert (result.value_before, result.value_after) == (1, 4)
    assert next_of("public.helpdesk_ticket_id_seq") == rows["id"].next_value  # the key's sequence untouched
    # Django sends NULL for number, so the column default is exercised in SQL.
    assert run("INSERT INTO helpdesk_ticket (subject) VALUES ('new') RETURNING number") == [(4,)]


# --- same table name in two schemas -----------------------------------------


def test_same_table_name_in_two_schemas_is_never_mixed():
    set_next("public.entry_id_seq", 1)
    set_next("archive.entry_id_seq", 1)
    Entry.objects.bulk_create(Entry(id=i, note="imported") for i in (1, 2, 3, 4, 5))
    ArchivedEntry.objects.create(note="a")
    ArchivedEntry.objects.create(note="b")
    report = sequences.collect_alias("default", [Entry, ArchivedEntry])
    rows = {i.model: i for i in report.sequences}
    assert len(report.sequences) == 2
    public, archived = rows["metrics.Entry"], rows["metrics.ArchivedEntry"]
    assert (public.table, public.sequence, public.max_value, public.next_value, public.status) == (
        "public.entry",
        "public.entry_id_seq",
        5,
        1,
        "behind",
    )
    assert (archived.table, archived.sequence, archived.max_value, archived.next_value, archived.status) == (
        "archive.entry",
        "archive.entry_id_seq",
        2,
        3,
        "ok",
    )

    result = sequences.resync("default", "metrics.Entry", "id")
    assert (result.value_before, result.value_after, result.info.sequence) == (1, 6, "public.entry_id_seq")
    assert next_of("archive.entry_id_seq") == 3
    assert Entry.objects.create(note="new").pk == 6


def test_resync_of_the_table_in_the_other_schema():
    set_next("public.entry_id_seq", 1)
    set_next("archive.entry_id_seq", 1)
    Entry.objects.create(note="a")  # public: ok at 2
    ArchivedEntry.objects.bulk_create(ArchivedEntry(id=i, note="old") for i in (1, 2, 3, 4, 5, 6, 7))
    assert info("metrics.ArchivedEntry").status == "behind"
    result = sequences.resync("default", "metrics.ArchivedEntry", "id")
    assert (result.value_before, result.value_after) == (1, 8)
    assert (result.info.table, result.info.status) == ("archive.entry", "ok")
    assert next_of("public.entry_id_seq") == 2
    assert ArchivedEntry.objects.create(note="new").pk == 8


# --- MINVALUE ---------------------------------------------------------------


def test_minvalue_sequence_on_an_empty_table():
    seq = serial_sequence("metrics_invoice")
    set_next(seq, 1000)
    row = info("metrics.Invoice")
    assert (row.status, row.next_value, row.max_value) == ("empty", 1000, None)
    assert (row.start, row.sequence_min) == (1000, 1000)

    result = sequences.resync("default", "metrics.Invoice", "id")
    assert (result.value_before, result.value_after, result.changed) == (1000, 1000, False)
    assert result.record_id is None
    assert next_of(seq) == 1000
    assert Invoice.objects.create(amount=5).pk == 1000


def test_sqlsequencereset_fails_on_that_table():
    """Why resync does not copy sqlsequencereset: setval(seq, 1) is below MINVALUE 1000."""
    set_next(serial_sequence("metrics_invoice"), 1000)
    [sql] = connection.ops.sequence_reset_sql(no_style(), [Invoice])
    with pytest.raises(DatabaseError, match="out of bounds"), transaction.atomic():
        run(sql)


def test_lowering_an_empty_minvalue_table_goes_back_to_start_not_one():
    seq = serial_sequence("metrics_invoice")
    set_next(seq, 1005)
    result = sequences.resync("default", "metrics.Invoice", "id", lower=True)
    assert (result.value_before, result.value_after) == (1005, 1000)
    assert Invoice.objects.create(amount=5).pk == 1000


# --- forward only -----------------------------------------------------------


def test_resync_moves_a_behind_sequence_to_max_plus_one(coupon_seq):
    coupons(1, 2, 3, 4, 5)
    result = sequences.resync("default", "shop.Coupon", "id")
    assert (result.value_before, result.value_after, result.changed) == (1, 6, True)
    assert (result.info.status, result.info.next_value) == ("ok", 6)
    assert next_of(coupon_seq) == 6
    assert Coupon.objects.create(code="new").pk == 6


def test_resync_leaves_an_ahead_sequence_alone(coupon_seq):
    coupons(1, 2, 3)
    set_next(coupon_seq, 10)
    result = sequences.resync("default", "shop.Coupon", "id")
    assert (result.value_before, result.value_after, result.changed) == (10, 10, False)
    assert result.record_id is None and audit_count() == 0
    assert next_of(coupon_seq) == 10
    assert result.info.status == "ahead"


def test_resync_of_an_ok_sequence_changes_nothing(coupon_seq):
    coupons(1, 2, 3)
    set_next(coupon_seq, 4)
    result = sequences.resync("default", "shop.Coupon", "id")
    assert (result.value_before, result.value_after) == (4, 4)
    assert audit_count() == 0


def test_lower_closes_the_gap_of_an_ahead_sequence(coupon_seq):
    coupons(1, 2, 3)
    set_next(coupon_seq, 10)
    result = sequences.resync("default", "shop.Coupon", "id", lower=True)
    assert (result.value_before, result.value_after) == (10, 4)
    assert result.info.status == "ok"
    record = SequenceResync.objects.get(pk=result.record_id)
    assert (record.value_before, record.value_after, record.lowered) == (10, 4, True)
    assert Coupon.objects.create(code="new").pk == 4


def test_lower_never_raises_a_behind_sequence(coupon_seq):
    coupons(1, 2, 3)
    result = sequences.resync("default", "shop.Coupon", "id", lower=True)
    assert (result.value_before, result.value_after) == (1, 1)
    assert result.info.status == "behind"
    assert next_of(coupon_seq) == 1
    assert audit_count() == 0


def test_resync_refuses_a_target_beyond_the_sequence_range():
    seq = serial_sequence("metrics_reading")
    Reading.objects.create(id=INT4_MAX, value=1.0)
    set_next(seq, 1)
    with pytest.raises(ValueError, match="outside the sequence's range"):
        sequences.resync("default", "metrics.Reading", "id")
    assert next_of(seq) == 1
    assert audit_count() == 0


# --- descending sequences (a model of an isolated registry, table made here) ---


def _descending_model() -> type[models.Model]:
    run("CREATE SEQUENCE it_desc_seq INCREMENT -1 MAXVALUE -1 START -1")
    run("CREATE TABLE it_desc (id bigint PRIMARY KEY DEFAULT nextval('it_desc_seq'))")
    run("ALTER SEQUENCE it_desc_seq OWNED BY it_desc.id")
    meta = type("Meta", (), {"app_label": "it_desc", "apps": Apps(), "db_table": "it_desc"})
    return type("Desc", (models.Model,), {"__module__": __name__, "Meta": meta})


@pytest.mark.parametrize(
    ("next_value", "status"), [(None, "empty"), (-1, "behind"), (-3, "behind"), (-4, "ok"), (-9, "ahead")]
)
def test_descending_sequence_statuses(next_value, status):
    desc = _descending_model()
    if next_value is not None:
        run("INSERT INTO it_desc (id) VALUES (-1), (-2), (-3)")
        set_next("it_desc_seq", next_value)
    [row] = sequences.collect_alias("default", [desc]).sequences
    assert (row.kind, row.increment, row.status) == ("serial", -1, status)
    assert row.max_value == (None if next_value is None else -3)  # MIN for a descending sequence


# --- concurrency ------------------------------------------------------------


class Inserters:
    """Threads inserting coupons with the default id in a loop, each on its own connection."""

    def __init__(self, count: int) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.phase = "before"
        self.ids: list[int] = []
        self.collisions: list[str] = []  # the phase each failed insert started in
        self.crashes: list[BaseException] = []
        self.threads = [threading.Thread(target=self._loop) for _ in range(count)]

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                phase = self.phase
                try:
                    pk = Coupon.objects.create(code="live").pk
                except IntegrityError:
                    with self.lock:
                        self.collisions.append(phase)
                else:
                    with self.lock:
                        self.ids.append(pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.crashes.append(exc)
        finally:
            connection.close()

    def __enter__(self) -> Inserters:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


PREFILLED = 100_000  # far more than the inserters can burn through before the resync
THREADS = 4


def _prefill_behind() -> None:
    run("INSERT INTO shop_coupon (id, code) SELECT g, 'old' FROM generate_series(1, %s) g", [PREFILLED])
    set_next(COUPON_SEQ, 1)


def _assert_rows(inserted: list[int]) -> None:
    assert sorted(inserted) == list(range(PREFILLED + 1, PREFILLED + len(inserted) + 1))
    assert Coupon.objects.count() == PREFILLED + len(inserted)
    assert set(Coupon.objects.filter(code="live").values_list("id", flat=True)) == set(inserted)


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_inserts_wait_for_the_resync_lock_and_then_never_collide():
    _prefill_behind()
    with Inserters(THREADS) as inserters:
        assert wait_until(lambda: len(inserters.collisions) >= THREADS), "the sequence should be behind"
        # Keep resync's lock past its return: the enclosing transaction holds it.
        with transaction.atomic():
            result = sequences.resync("default", "shop.Coupon", "id")
            assert wait_until(lambda: waiting_writers("shop_coupon") == THREADS), "inserts should wait"
            collisions_while_locked = len(inserters.collisions)
            inserted_while_locked = len(inserters.ids)
        inserters.phase = "after"
        assert wait_until(lambda: len(inserters.ids) >= 200)
    assert not inserters.crashes
    assert result.value_after == PREFILLED + 1
    assert inserted_while_locked == 0
    # The waiting inserts and every later one went through.
    assert len(inserters.collisions) == collisions_while_locked
    _assert_rows(inserters.ids)


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_no_insert_collides_once_resync_has_returned():
    _prefill_behind()
    with Inserters(THREADS) as inserters:
        assert wait_until(lambda: len(inserters.collisions) >= THREADS)
        result = sequences.resync("default", "shop.Coupon", "id")
        inserters.phase = "after"
        assert wait_until(lambda: len(inserters.ids) >= 200)
    assert not inserters.crashes
    assert result.changed and result.value_after == PREFILLED + 1
    assert "after" not in inserters.collisions
    _assert_rows(inserters.ids)
    assert SequenceResync.objects.get().value_after == PREFILLED + 1


def _open_writer(hold: str) -> Any:
    """A second connection whose open transaction keeps a writer's lock on shop_coupon."""
    wrapper = connections["default"]
    other = wrapper.get_new_connection(wrapper.get_connection_params())
    other.execute(hold)
    return other


@override_settings(INTEGRITY_LOCK_TIMEOUT_MS=200)
@pytest.mark.parametrize(
    "hold",
    [
        "LOCK TABLE shop_coupon IN ROW EXCLUSIVE MODE",
        "INSERT INTO shop_coupon (id, code) VALUES (999, 'uncommitted')",
    ],
)
def test_resync_raises_table_busy_when_a_writer_holds_the_table(coupon_seq, hold):
    coupons(1, 2, 3)
    # A resync that ignored its lock timeout fails here instead of hanging.
    run("SET LOCAL statement_timeout = '20s'")
    other = _open_writer(hold)
    try:
        with pytest.raises(TableBusy, match="shop_coupon"):
            sequences.resync("default", "shop.Coupon", "id")
    finally:
        other.rollback()
        other.close()
    assert next_of(coupon_seq) == 1
    assert audit_count() == 0
    # With the writer gone the same call goes through.
    assert sequences.resync("default", "shop.Coupon", "id").value_after == 4


# --- query count ------------------------------------------------------------


def make_tables(count: int) -> list[type[models.Model]]:
    """``count`` models of an isolated registry, with their tables; table i holds i + 1 rows."""
    registry = Apps()
    made = []
    for i in range(count):
        meta = type("Meta", (), {"app_label": "it_count", "apps": registry, "db_table": f"it_count_{i}"})
        attrs = {"__module__": __name__, "name": models.CharField(max_length=10), "Meta": meta}
        made.append(type(f"Counted{i}", (models.Model,), attrs))
    with connection.schema_editor() as editor:
        for model in made:
            editor.create_model(model)
    for i in range(count):
        run(f"INSERT INTO it_count_{i:d} (name) SELECT 'x' FROM generate_series(1, %s)", [i + 1])
    return made


@pytest.mark.parametrize("count", [1, 50])
def test_collect_alias_query_count_does_not_grow_with_models(count):
    made = make_tables(count)
    with (
        CaptureQueriesContext(connections["default"]) as default_queries,
        CaptureQueriesContext(connections["other"]) as other_queries,
    ):
        report = sequences.collect_alias("default", made)
    sql = [q["sql"].split()[0] for q in default_queries.captured_queries]
    # The catalog and the one statement reading every sequence; in a bounded read (issue 11): a
    # savepoint setting the timeouts, rolled back, and one around the statement, for its fallback,
    # rolled back too (its locks end with it: issue 15).
    assert sql == [
        "SAVEPOINT", "SELECT", "WITH", "SAVEPOINT", "SELECT", "ROLLBACK", "RELEASE", "ROLLBACK", "RELEASE"
    ]  # fmt: skip
    assert len(other_queries.captured_queries) == 0
    rows = {i.table: i for i in report.sequences}
    assert set(rows) == {f"public.it_count_{i}" for i in range(count)}
    for i in range(count):  # each table's own values, none shifted to a neighbour
        row = rows[f"public.it_count_{i}"]
        assert (row.model, row.max_value, row.next_value, row.status) == (
            f"it_count.Counted{i}",
            i + 1,
            i + 2,
            "ok",
        )


def test_collect_alias_of_every_model_is_two_queries():
    with CaptureQueriesContext(connections["default"]) as queries:
        report = sequences.collect_alias("default")
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0] not in ("SAVEPOINT", "RELEASE", "ROLLBACK")
    ]
    assert len(reads) == 3  # the timeouts of the bounded read (issue 11), the catalog, every sequence
    assert reads[0].startswith("SELECT set_config('lock_timeout'")
    assert len(report.sequences) > 20


# --- routers and aliases ----------------------------------------------------


def test_other_alias_lists_only_the_models_routed_there():
    [report] = sequences.collect(["other"])
    assert (report.database, report.vendor, report.supported) == ("other", "postgresql", True)
    labels = {i.model for i in report.sequences}
    assert {"helpdesk.Ticket", "helpdesk.Comment", "integrity.SequenceResync"} <= labels
    assert not [label for label in labels if label.split(".")[0] in {"shop", "metrics", "clinic"}]
    assert {i.database for i in report.sequences} == {"other"}


def test_each_alias_reports_its_own_values():
    set_next("public.helpdesk_ticket_id_seq", 1, using="other")
    set_next("public.helpdesk_ticket_id_seq", 1, using="default")
    Ticket.objects.using("other").bulk_create(Ticket(id=i, subject="s") for i in (1, 2, 3))
    assert info("helpdesk.Ticket", using="other").status == "behind"
    assert info("helpdesk.Ticket", using="default").status == "empty"
    result = sequences.resync("other", "helpdesk.Ticket", "id")
    assert (result.value_after, result.info.database) == (4, "other")
    assert next_of("public.helpdesk_ticket_id_seq", using="default") == 1


def test_sqlite_alias_is_reported_unsupported():
    [report] = sequences.collect(["legacy"])
    assert (report.database, report.vendor, report.supported, report.sequences) == (
        "legacy",
        "sqlite",
        False,
        [],
    )


def test_collect_covers_every_alias_by_default():
    assert [r.database for r in sequences.collect()] == list(connections) == ["default", "other", "legacy"]


# --- audit ------------------------------------------------------------------


def test_changed_resync_is_audited_with_the_user(coupon_seq, admin_user):
    coupons(1, 2, 3)
    result = sequences.resync("default", "shop.Coupon", "id", user=admin_user)
    record = SequenceResync.objects.get()
    assert record.pk == result.record_id
    assert (record.user, record.database, record.model, record.table, record.column, record.sequence) == (
        admin_user,
        "default",
        "shop.Coupon",
        "public.shop_coupon",
        "id",
        COUPON_SEQ,
    )
    assert (record.value_before, record.value_after, record.lowered) == (1, 4, False)
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id) == (admin_user, str(record.pk))


def test_resync_without_a_user_is_audited_without_log_entry(coupon_seq):
    coupons(1, 2, 3)
    sequences.resync("default", "shop.Coupon", "id")
    assert SequenceResync.objects.get().user is None
    assert not LogEntry.objects.exists()


def test_unchanged_resync_writes_nothing(coupon_seq, admin_user):
    coupons(1, 2, 3)
    set_next(coupon_seq, 4)
    sequences.resync("default", "shop.Coupon", "id", user=admin_user)
    set_next(coupon_seq, 9)
    sequences.resync("default", "shop.Coupon", "id", user=admin_user)
    assert audit_count() == 0
    assert not LogEntry.objects.exists()


def test_resync_on_the_other_alias_is_audited_with_that_alias(admin_user):
    set_next("public.helpdesk_ticket_id_seq", 1, using="other")
    Ticket.objects.using("other").bulk_create(Ticket(id=i, subject="s") for i in (1, 2))
    sequences.resync("other", "helpdesk.Ticket", "id", user=admin_user)
    record = SequenceResync.objects.get()
    assert (record.database, record.value_before, record.value_after) == ("other", 1, 3)


# --- bad input --------------------------------------------------------------

BAD_INPUT = [
    pytest.param("nope", "shop.Coupon", "id", "Unknown database", id="unknown-alias"),
    pytest.param("default", "shop.Nope", "id", "Unknown model", id="unknown-model"),
    pytest.param("default", "shop.Coupon", "code", "No sequence feeds", id="column-without-sequence"),
    pytest.param("default", "shop.Coupon", "nope", "No sequence feeds", id="unknown-column"),
    pytest.param("other", "shop.Coupon", "id", "does not live on", id="model-not-on-alias"),
    pytest.param("legacy", "shop.Coupon", "id", "does not live on", id="unsupported-alias"),
]


@pytest.mark.parametrize(("alias", "label", "column", "message"), BAD_INPUT)
def test_find_rejects_bad_input(alias, label, column, message):
    with pytest.raises(SequenceNotFound, match=message):
        sequences.find(alias, label, column)


@pytest.mark.parametrize(("alias", "label", "column", "message"), BAD_INPUT)
def test_resync_rejects_bad_input_and_changes_nothing(coupon_seq, admin_user, alias, label, column, message):
    coupons(1, 2, 3)
    with pytest.raises(SequenceNotFound, match=message):
        sequences.resync(alias, label, column, user=admin_user)
    assert next_of(coupon_seq) == 1
    assert info("shop.Coupon").status == "behind"
    assert audit_count() == 0
    assert not LogEntry.objects.exists()


def test_find_resolves_a_through_model_and_a_non_pk_column():
    model, link = sequences.find("default", "helpdesk.Ticket", "number")
    assert (model, link.sequence, link.column) == (Ticket, "ticket_sequence", "number")
    model, link = sequences.find("default", "shop.Product_tags", "id")
    assert (model, link.table) == (Product.tags.through, "shop_product_tags")


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_busy_healthy_table_is_never_reported_behind():
    """Sequence value and column MAX must be read together: inserts between two reads look like 'behind'."""
    set_next(COUPON_SEQ, 1)
    seen: list[SequenceInfo] = []
    with Inserters(THREADS) as inserters:
        assert wait_until(lambda: len(inserters.ids) >= 50)
        for _ in range(300):
            seen.append(info("shop.Coupon"))
    assert not inserters.crashes and not inserters.collisions
    assert len(inserters.ids) > 50
    assert [(i.next_value, i.max_value) for i in seen if i.status == "behind"] == []
    assert {i.status for i in seen} <= {"ok", "ahead"}
