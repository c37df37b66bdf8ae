"""The chunked scan gives the one-statement scan's answer, unit by unit, on real PostgreSQL.

Tiny ``chunk_rows`` cut small tables into many units, so groups straddle
every boundary: key ranges (with an index on the keys, created inside the
test's transaction) and table chunks (pages) are each compared with
``scan()``, group for group. The enforcing indexes are dropped first, as in
test_service.py, to let duplicates in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from demo.crm.models import Customer, Device, Membership, Mentorship
from integrity.duplicates import ScanTimedOut, scan
from integrity.duplicates.chunked import CHUNKS, ONE, RANGES, ChunkedScan, scan_chunked
from integrity.duplicates.rules import Rule, get_rule, rules_for
from tests.helpers import run_all as sql

pytestmark = pytest.mark.django_db(databases="__all__")

NAME_CI = "default:crm.Customer:configured:customer_name_ci"
MENTORSHIP = "default:crm.Mentorship:unique_together:mentee,mentor"
MEMBERSHIP = "default:crm.Membership:crm_membership_active_code_uniq"
DEVICE = "default:crm.Device:crm_device_vendor_serial_uniq"


def configured(model: str, fields: list[str], **options: object) -> Rule:
    """The configured rule ``model``/``fields`` (settings overridden only while it is derived)."""
    spec = {"model": model, "fields": fields, "name": "t", **options}
    with override_settings(INTEGRITY_DUPLICATE_RULES=[spec]):
        [rule] = [r for r in rules_for(["default"]) if r.name == "configured:t"]
    return rule


def one_statement(rule: Rule, sample: int = 10) -> tuple[Any, ...]:
    found = scan(rule, limit=100_000, sample=sample)
    return found.groups, found.total_groups, found.total_rows


def chunked(rule: Rule, method: str, chunk_rows: int = 3, **options: Any) -> ChunkedScan:
    found = scan_chunked(rule, method=method, chunk_rows=chunk_rows, limit=100_000, **options)
    assert found.method == method
    return found


def assert_same(rule: Rule, methods: tuple[str, ...] = (RANGES, CHUNKS), **options: Any) -> list[ChunkedScan]:
    expected = one_statement(rule, options.get("sample", 10))
    assert expected[1], "the data has groups"
    results = []
    for method in methods:
        found = chunked(rule, method, **options)
        assert (found.groups, found.total_groups, found.total_rows) == expected, method
        assert found.complete and found.chunks_done == found.chunks_total > 1, method
        results.append(found)
    return results


def many_names(count: int, groups: int) -> list[int]:
    """``count`` customers over several pages, named so that every group is spread over the table."""
    made = Customer.objects.bulk_create(
        Customer(email=f"{i}@x", name=f"Name {(i * 7) % groups}" if i % 3 else f"Only {i}")
        for i in range(count)
    )
    return [c.pk for c in made]


def temp_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema()")
        return [r[0] for r in cursor.fetchall()]


# --- the same answer ----------------------------------------------------------------------------


def test_groups_straddling_every_boundary_are_one_group():
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    many_names(900, 40)
    rule = configured("crm.Customer", ["name"])
    ranges, chunks = assert_same(rule, chunk_rows=50)
    assert chunks.chunks_total > 4  # several pages, then as many partitions
    assert ranges.chunks_total > 10  # each range at least 50 rows, and every row of its last key


def test_key_ranges_end_where_the_statistics_say_when_they_are_fresh():
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    # Mostly unique names: the few duplicated ones (the most common values) hold fewer rows than a range.
    Customer.objects.bulk_create(
        Customer(email=f"{i}@x", name=f"Name {i % 30}" if i % 15 == 0 else f"Only {i}") for i in range(1200)
    )
    rule = configured("crm.Customer", ["name"])
    counted = chunked(rule, RANGES, chunk_rows=100)
    assert counted.ends == "index"  # never analysed
    sql("ANALYZE crm_customer", "SELECT pg_stat_reset_single_table_counters('crm_customer'::regclass)")
    [by_statistics] = assert_same(rule, methods=(RANGES,), chunk_rows=100)
    assert by_statistics.ends == "statistics"
    assert 6 <= by_statistics.chunks_total <= 20  # about 1,200 / 100 rows each
    assert by_statistics.groups == counted.groups


def test_an_expression_rule_by_ranges_of_its_expression_index_and_by_pages():
    sql("CREATE INDEX chunked_name_ci ON crm_customer (lower(btrim(name)))")
    many_names(700, 30)
    Customer.objects.create(email="A@x", name=" name 3")  # Lower(Trim(name)) joins it to "Name 3"
    assert_same(get_rule(NAME_CI), chunk_rows=40)


def test_a_sample_of_first_pks_in_pk_order_across_chunks():
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    pks = many_names(800, 5)
    rule = configured("crm.Customer", ["name"])
    ranges, _chunks = assert_same(rule, chunk_rows=30, sample=3)
    first = ranges.groups[0]
    assert len(first.pks) == 3 and first.pks == sorted(first.pks) and set(first.pks) <= set(pks)


def test_nulls_distinct_composite_keys_drop_rows_with_a_null_part(django_user_model):
    sql(
        "DROP INDEX crm_mentorship_mentor_mentee_uniq",
        "CREATE INDEX chunked_pair ON crm_mentorship (mentor_id, mentee_id)",
    )
    users = [django_user_model.objects.create(username=f"u{i}") for i in range(6)]
    Mentorship.objects.bulk_create(
        Mentorship(mentee=users[i % 6], mentor=None if i % 4 == 0 else users[(i * 5) % 6], topic="t")
        for i in range(400)
    )
    # The index is (mentor, mentee), the rule (mentee, mentor): ranges follow the index, keys come back in rule order.
    assert_same(get_rule(MENTORSHIP), chunk_rows=7)


def test_nulls_not_distinct_groups_the_nulls_and_is_never_cut_by_key_ranges():
    sql(
        "ALTER TABLE crm_device DROP CONSTRAINT crm_device_vendor_serial_uniq",
        "CREATE INDEX chunked_dev ON crm_device (vendor, serial)",
    )
    Device.objects.bulk_create(
        Device(vendor=None if i % 3 == 0 else f"v{i % 4}", serial=f"S{i % 9}") for i in range(600)
    )
    rule = get_rule(DEVICE)
    [found] = assert_same(rule, methods=(CHUNKS,), chunk_rows=20)
    assert any(g.key[0] is None for g in found.groups)
    assert scan_chunked(rule, chunk_rows=20).method == CHUNKS  # key ranges cannot hold NULL keys
    with pytest.raises(ValueError, match="no index"):
        scan_chunked(rule, chunk_rows=20, method=RANGES)


def test_a_conditional_rule_counts_only_matching_rows():
    sql("DROP INDEX crm_membership_active_code_uniq", "CREATE INDEX chunked_code ON crm_membership (code)")
    Membership.objects.bulk_create(Membership(code=f"C{i % 13}", active=i % 5 != 0) for i in range(700))
    assert_same(get_rule(MEMBERSHIP), chunk_rows=25)


def test_one_key_with_more_rows_than_a_range_holds():
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    Customer.objects.bulk_create(
        Customer(email=f"{i}@x", name="same" if i < 50 else f"n{i % 20}") for i in range(90)
    )
    assert_same(configured("crm.Customer", ["name"]), methods=(RANGES,), chunk_rows=10)


def test_the_largest_groups_are_kept_in_the_one_statement_order():
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    many_names(600, 25)
    rule = configured("crm.Customer", ["name"])
    page = scan(rule, limit=7)
    for method in (RANGES, CHUNKS):
        found = scan_chunked(rule, method=method, chunk_rows=40, limit=7)
        assert (found.groups, found.total_groups, found.total_rows) == (
            page.groups,
            page.total_groups,
            page.total_rows,
        )


def test_no_index_picks_table_chunks_and_a_small_table_one_statement():
    many_names(500, 20)
    rule = configured("crm.Customer", ["name"])
    assert scan_chunked(rule, chunk_rows=40).method == CHUNKS
    small = scan_chunked(rule)
    assert (small.method, small.chunks_done, small.chunks_total, small.complete) == (ONE, 1, 1, True)
    assert (small.groups, small.total_groups, small.total_rows) == one_statement(rule)


def test_an_empty_table():
    rule = configured("crm.Customer", ["name"])
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    for method in (RANGES, CHUNKS, None):
        found = scan_chunked(rule, method=method, chunk_rows=5)
        assert (found.groups, found.total_groups, found.total_rows, found.complete) == ([], 0, 0, True)
    assert temp_tables() == []


# --- progress, stop, bounded work -----------------------------------------------------------------


@pytest.mark.parametrize("method", [RANGES, CHUNKS])
def test_progress_after_every_unit_and_a_stop_after_the_first(method):
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    many_names(600, 20)
    rule = configured("crm.Customer", ["name"])
    calls: list[tuple[int, int]] = []
    full = scan_chunked(rule, method=method, chunk_rows=40, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == list(range(1, full.chunks_done + 1))
    assert calls[-1] == (full.chunks_done, full.chunks_done)
    assert all(d <= t for d, t in calls)

    before = Customer.objects.count()
    stopped = scan_chunked(rule, method=method, chunk_rows=40, should_stop=lambda: True)
    assert (stopped.complete, stopped.chunks_done) == (False, 1)
    assert stopped.chunks_total > 1
    assert stopped.total_groups <= full.total_groups
    assert set(map(repr, stopped.groups)) <= set(map(repr, full.groups))
    assert Customer.objects.count() == before and temp_tables() == []


@pytest.mark.parametrize("method", [RANGES, CHUNKS])
def test_statements_per_unit_are_constant(method):
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    many_names(900, 30)
    rule = configured("crm.Customer", ["name"])

    def statements(chunk_rows: int) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as ctx:
            found = scan_chunked(rule, method=method, chunk_rows=chunk_rows)
        return len(ctx.captured_queries), found.chunks_done

    # Range units of more rows than a group has (one unit each); table chunks of one page and of two.
    (q1, c1), (q2, c2) = (
        statements(70 if method == RANGES else 600),
        statements(40 if method == RANGES else 300),
    )
    assert c2 > c1
    # Per unit, in the test's transaction: savepoint, its timeouts, its statement(s), the timeouts back,
    # release. A key range has two (where it ends, its groups), and a third when it has groups among
    # the largest so far (into the temporary table); a table chunk or a partition has one.
    low, high = (6, 7) if method == RANGES else (5, 5)
    assert low * (c2 - c1) <= q2 - q1 <= high * (c2 - c1)


@pytest.fixture
def other() -> Iterator[psycopg.Connection[Any]]:
    """Another connection, as a long ALTER TABLE would be: it can hold ACCESS EXCLUSIVE on crm_customer."""
    conn = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    conn.execute("SET lock_timeout = '10s'")
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("method", [RANGES, CHUNKS])
def test_a_unit_waiting_on_a_lock_raises_and_leaves_nothing(method, other):
    other.execute("LOCK TABLE crm_customer IN ACCESS EXCLUSIVE MODE")
    rule = configured("crm.Customer", ["name"])
    with override_settings(INTEGRITY_READ_LOCK_TIMEOUT_MS=100), pytest.raises(ScanTimedOut):
        scan_chunked(rule, method=method, chunk_rows=40)
    other.rollback()
    assert temp_tables() == []
    assert Customer.objects.count() == 0  # the connection answers


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("method", [RANGES, CHUNKS])
def test_a_unit_after_the_first_that_cannot_finish_in_time(method, other):
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    try:
        many_names(600, 20)
        rule = configured("crm.Customer", ["name"])

        def lock_after_the_first_unit() -> bool:
            other.execute("LOCK TABLE crm_customer IN ACCESS EXCLUSIVE MODE")  # units hold no lock in between
            return False

        with override_settings(INTEGRITY_READ_LOCK_TIMEOUT_MS=100), pytest.raises(ScanTimedOut):
            scan_chunked(rule, method=method, chunk_rows=40, should_stop=lock_after_the_first_unit)
        other.rollback()
        assert temp_tables() == []
        assert not connection.in_atomic_block and Customer.objects.count() == 600
    finally:
        sql("DROP INDEX chunked_name")


# --- outside a transaction: one snapshot ------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.parametrize("method", [RANGES, CHUNKS])
def test_outside_a_transaction_every_unit_reads_the_snapshot_of_the_start(method):
    sql("CREATE INDEX chunked_name ON crm_customer (name)")
    try:
        many_names(600, 20)
        rule = configured("crm.Customer", ["name"])
        expected = one_statement(rule)
        written = threading.Event()

        def write_between_units() -> bool:
            if not written.is_set():
                # Another connection adds a new group and grows another one mid-scan: not in this scan.
                other = connections.create_connection("default")
                try:
                    with other.cursor() as cursor:
                        cursor.execute(
                            "INSERT INTO crm_customer (email, name) VALUES ('n1@x', 'Late'), ('n2@x', 'Late'), "
                            "('n3@x', 'Name 1'), ('n4@x', 'Only 3')"
                        )
                finally:
                    other.close()
                written.set()
            return False

        found = scan_chunked(rule, method=method, chunk_rows=40, should_stop=write_between_units)
        assert (found.groups, found.total_groups, found.total_rows) == expected
        # Written: the group "Late" (2 rows), a second "Only 3" (2), one more "Name 1" (1).
        assert one_statement(rule)[1:] == (expected[1] + 2, expected[2] + 5)
        assert temp_tables() == [] and not connection.in_atomic_block
    finally:
        sql("DROP INDEX chunked_name")
