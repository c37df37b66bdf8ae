"""Sequence status at scale: chunks of statements, with the same answer as one statement.

One UNION ALL arm per sequence broke past about 5,000 sequences ("stack depth
limit exceeded"), and reading 10,000 tables in the caller's one transaction
would hold more locks than PostgreSQL's lock table has ("out of shared
memory"). Here 10,200 real sequences (17 tables of 600 serial columns each,
committed once for the module and dropped after it) are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from demo.shop.models import Product
from integrity import reads
from integrity.sequences import service
from integrity.sequences.backend import STATES_CHUNK, SequenceState
from integrity.sequences.postgresql import PostgresSequenceBackend
from integrity.sequences.service import for_connection
from tests.helpers import held

pytestmark = pytest.mark.django_db

TABLES, COLUMNS = 17, 600  # 10,200 sequences: twice what one statement could take


def run(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture(scope="module")
def many_sequences(django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[str]]:
    """``TABLES`` committed tables (the status reads' own connection must see them); row 1 holds t + 1."""
    with django_db_blocker.unblock():
        side = connections.create_connection("default")
        try:
            with side.cursor() as cursor:
                cursor.execute("CREATE SCHEMA it_many")
                columns = ", ".join(f"c{c} serial" for c in range(COLUMNS))
                for t in range(TABLES):
                    cursor.execute(f"CREATE TABLE it_many.t{t} ({columns})")
                    cursor.execute(f"INSERT INTO it_many.t{t} VALUES ({', '.join([str(t + 1)] * COLUMNS)})")
            yield [f'"it_many"."t{t}"' for t in range(TABLES)]
        finally:
            try:
                with (
                    side.cursor() as cursor
                ):  # a table at a time: 10,200 sequences at once overflow the lock table
                    for t in range(TABLES):
                        cursor.execute(f"DROP TABLE IF EXISTS it_many.t{t}")
                    cursor.execute("DROP SCHEMA it_many")
            finally:
                side.close()


@pytest.fixture
def backend() -> PostgresSequenceBackend:
    found = for_connection(connection)
    assert isinstance(found, PostgresSequenceBackend)
    return found


def expected(link: Any) -> SequenceState:
    return SequenceState(last_value=1, is_called=False, column_extreme=int(link.table.removeprefix("t")) + 1)


def test_ten_thousand_sequences_read_inside_the_callers_transaction(backend, many_sequences):
    links = backend.links(many_sequences)
    assert len(links) == TABLES * COLUMNS
    # As a page reads (the guard): in one bounded transaction, which must not keep 10,000 locks.
    with reads.bounded("default"):
        states = service.read_states("default", backend, links)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = pg_backend_pid() AND c.relnamespace = 'it_many'::regnamespace"
            )
            (still_held,) = cursor.fetchone()
    assert states == [expected(link) for link in links]
    # Each chunk's locks end with it: 30,000 kept to the end (10,000 tables) overflow the lock table.
    assert still_held == 0


def test_the_backend_runs_one_statement_per_chunk(backend, many_sequences):
    links = backend.links(many_sequences[:2])
    with CaptureQueriesContext(connection) as queries:
        states = backend.states(links)
    assert len(queries) == -(-len(links) // STATES_CHUNK)
    assert states == [expected(link) for link in links]


def test_chunks_give_the_answer_of_one_statement(backend, many_sequences):
    links = backend.links(many_sequences[:1])[: STATES_CHUNK + 7]
    run("SELECT setval('it_many.t0_c3_seq', 99)")  # one sequence ahead (rolled back with the test)
    whole = [s for i in range(0, len(links), 100) for s in backend.states(links[i : i + 100])]
    assert backend.states(links) == whole
    assert whole[3] == SequenceState(last_value=99, is_called=True, column_extreme=1)


def statuses(report: service.AliasReport) -> dict[tuple[str, str], str]:
    return {(info.model, info.column): info.status for info in report.sequences}


@override_settings(INTEGRITY_READ_LOCK_TIMEOUT_MS=300, INTEGRITY_READ_STATEMENT_TIMEOUT_MS=3000)
def test_a_busy_chunk_is_read_link_by_link_and_only_its_locked_table_is_busy(monkeypatch):
    whole = statuses(service.collect_alias("default"))
    monkeypatch.setattr(service, "STATES_CHUNK", 3)
    assert statuses(service.collect_alias("default")) == whole  # chunks of 3: the same answer
    with held(Product._meta.db_table):
        chunked = statuses(service.collect_alias("default"))
    assert chunked[("shop.Product", "id")] == "busy"
    assert {k: v for k, v in chunked.items() if k[0] != "shop.Product"} == {
        k: v for k, v in whole.items() if k[0] != "shop.Product"
    }
