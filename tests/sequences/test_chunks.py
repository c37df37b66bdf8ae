"""Sequence status at scale: the status statement is cut in chunks, with the same answer as one statement.

One UNION ALL arm per sequence broke past about 5,000 sequences ("stack depth
limit exceeded"). Here 10,200 real sequences (17 tables of 600 serial columns
each, made in the test's transaction and rolled back with it) are read.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from demo.shop.models import Product
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


@pytest.fixture
def backend() -> PostgresSequenceBackend:
    found = for_connection(connection)
    assert isinstance(found, PostgresSequenceBackend)
    return found


def make_tables(tables: int) -> list[str]:
    run("CREATE SCHEMA it_many")
    columns = ", ".join(f"c{c} serial" for c in range(COLUMNS))
    for t in range(tables):
        run(f"CREATE TABLE it_many.t{t} ({columns})")
        # Row t + 1 of each table: every column's MAX is its table's number, the sequences untouched.
        values = ", ".join(str(t + 1) for _ in range(COLUMNS))
        run(f"INSERT INTO it_many.t{t} VALUES ({values})")
    return [f'"it_many"."t{t}"' for t in range(tables)]


@pytest.fixture
def many_sequences() -> list[str]:
    return make_tables(TABLES)


def test_ten_thousand_sequences_in_chunks_with_one_statement_each(backend, many_sequences):
    links = backend.links(many_sequences)
    assert len(links) == TABLES * COLUMNS
    with CaptureQueriesContext(connection) as queries:
        states = backend.states(links)
    assert len(queries) == -(-len(links) // STATES_CHUNK)  # one statement per chunk, no more
    assert len(states) == len(links)
    for link, state in zip(links, states, strict=True):
        table = int(link.table.removeprefix("t"))
        assert state == SequenceState(last_value=1, is_called=False, column_extreme=table + 1), link


def test_chunks_give_the_answer_of_one_statement(backend):
    links = backend.links(make_tables(1))[: STATES_CHUNK + 7]
    run("SELECT setval('it_many.t0_c3_seq', 99)")  # one sequence ahead, one behind (the rest)
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
