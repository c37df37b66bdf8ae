"""The events tables (``integrity/tables_events.py``): columns, SQL ordering and pagination, cells."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tables2 import RequestConfig

from integrity.events import tables as tables_events
from integrity.events.tables import PER_PAGE, EventGroupTable, SampleTable, target_text
from integrity.models import Event, EventGroup
from tests.helpers import (
    group,
)

DB = pytest.mark.django_db(databases="__all__")


def configured(table: Any, **params: Any) -> Any:
    RequestConfig(
        RequestFactory().get("/", params), paginate={"per_page": type(table)._meta.per_page}
    ).configure(table)
    return table


def test_columns_are_explicit_and_in_order() -> None:
    table = EventGroupTable(EventGroup.objects.none())

    assert [c.name for c in table.columns] == [
        "last_seen",
        "state",
        "count",
        "kind",
        "model",
        "constraint",
        "database",
        "cause",
        "actions",
    ]
    assert {c.name for c in table.columns if c.orderable} == {
        "last_seen",
        "state",
        "count",
        "kind",
        "model",
        "constraint",
        "database",
    }
    assert table.prefix == "evt-"
    samples = SampleTable(Event.objects.none())
    assert samples.prefix == "smp-"
    assert [c.name for c in samples.columns] == [
        "created_at",
        "method",
        "path",
        "view",
        "user_pk",
        "handled",
        "values",
        "detail",
    ]


def test_target_is_the_constraint_or_the_table_and_columns() -> None:
    assert (
        target_text(EventGroup(constraint="shop_product_pkey", table="shop_product")) == "shop_product_pkey"
    )
    assert target_text(EventGroup(table="shop_order", columns=["quantity", "product_id"])) == (
        "shop_order (quantity, product_id)"
    )
    assert target_text(EventGroup(table="shop_order", columns=[])) == "shop_order"


@DB
def test_sorting_and_pagination_happen_in_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables_events, "explain_groups", lambda groups: {})
    made = [group(f"k{i}_key", ago=timedelta(minutes=i), count=i) for i in range(PER_PAGE + 5)]
    table = configured(
        EventGroupTable(EventGroup.objects.order_by("-last_seen", "-id")), **{"evt-sort": "-count"}
    )

    with CaptureQueriesContext(connection) as captured:
        shown = [row.record.pk for row in table.paginated_rows]

    assert shown == [g.pk for g in sorted(made, key=lambda g: -g.count)[:PER_PAGE]]
    selects = [q["sql"] for q in captured.captured_queries if "integrity_eventgroup" in q["sql"]]
    assert any("ORDER BY" in q and "LIMIT" in q for q in selects), selects


@DB
@pytest.mark.parametrize("per_page", ["0", "-3", "100000"])
def test_a_tampered_page_size_gets_the_default(per_page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables_events, "explain_groups", lambda groups: {})
    for i in range(PER_PAGE + 1):
        group(f"k{i}_key")

    table = configured(EventGroupTable(EventGroup.objects.all()), **{"evt-per_page": per_page})

    assert len(list(table.paginated_rows)) == PER_PAGE


@DB
def test_cause_is_explained_for_the_rows_rendered_only(monkeypatch: pytest.MonkeyPatch) -> None:
    explained: list[int] = []

    class Shown:
        cause = "Because"

    def fake(groups: list[EventGroup]) -> Any:
        explained.extend(g.pk for g in groups)
        return {g.pk: Shown() for g in groups}

    monkeypatch.setattr(tables_events, "explain_groups", fake)
    for i in range(PER_PAGE + 7):
        group(f"k{i}_key", ago=timedelta(minutes=i))
    table = configured(EventGroupTable(EventGroup.objects.order_by("-last_seen")), **{"evt-page": "2"})

    cells = [row.get_cell("cause") for row in table.paginated_rows]

    assert cells == ["Because"] * 7
    assert len(explained) == 7


@DB
def test_group_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables_events, "explain_groups", lambda groups: {})
    made = group(
        "",
        count=1234,
        handled=56,
        kind="foreign key",
        model="",
        fields=[],
        table="legacy_orders",
        columns=["customer_id"],
    )
    table = EventGroupTable(EventGroup.objects.all(), group_url="/g/")
    (row,) = list(table.rows)

    assert str(row.get_cell("count")) == '1,234 <div class="integrity-note">56 handled</div>'
    assert (
        str(row.get_cell("kind")) == '<span class="integrity-badge event-kind-foreign-key">foreign key</span>'
    )
    assert "—" in str(row.get_cell("model"))
    assert str(row.get_cell("constraint")) == "<code>legacy_orders (customer_id)</code>"
    assert row.get_cell("cause") == "—"  # nothing explained it
    assert str(row.get_cell("actions")) == f'<a class="integrity-link" href="/g/?id={made.pk}">Details</a>'
    local = timezone.localtime(made.last_seen)
    assert f'title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}">' in str(row.get_cell("last_seen"))


@DB
def test_cells_are_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables_events, "explain_groups", lambda groups: {})
    group('<script>alert("x")</script>', model="<b>m</b>")
    (row,) = list(EventGroupTable(EventGroup.objects.all()).rows)

    for name in ("constraint", "model"):
        assert "<script>" not in str(row.get_cell(name)) and "<b>" not in str(row.get_cell(name))


@DB
def test_sample_cells_name_each_key_value() -> None:
    made = group("crm_mentorship_pair_key", columns=["mentee_id", "mentor_id"])
    now = timezone.now()
    common = {"group": made, "created_at": now, "database": "default", "origin": "request"}
    Event.objects.create(**common, values=["3", "…"], handled=True, path="/x/<y>/")
    Event.objects.create(**common, values=["1", "2", "extra"], method="POST")
    Event.objects.create(**common, values=[])
    table = SampleTable(made.samples.order_by("id"), columns=made.columns)

    first, second, third = list(table.rows)

    assert str(first.get_cell("values")) == "<code>mentee_id = 3</code> <code>mentor_id = …</code>"
    assert first.get_cell("handled") == "yes"
    assert str(first.get_cell("path")) == "<code>/x/&lt;y&gt;/</code>"
    assert first.get_cell("method") == "—"  # not from a request
    assert str(second.get_cell("values")) == (
        "<code>mentee_id = 1</code> <code>mentor_id = 2</code> <code>extra</code>"
    )
    assert second.get_cell("handled") == "no"
    assert third.get_cell("values") == "—"
