"""The sequence table (``integrity/tables.py``) as rendered on the list page.

Sorting and pagination go through django-tables2's query string (prefix
``seq-``), exactly as a click on a header or a page link does.
"""

from __future__ import annotations

import re

import pytest
from django.db import connections
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from demo.helpdesk.models import Ticket
from demo.metrics.models import Reading
from demo.shop.models import Coupon, Product, Tag
from integrity import sequences
from integrity.duplicates import Group
from integrity.duplicates.rules import get_rule
from integrity.duplicates.tables import GroupPages, GroupTable, dom_id, key_text
from integrity.sequences.tables import SequenceTable
from tests.helpers import (  # noqa: F401 - clean_sequences is an autouse fixture
    COUPON_KEY,
    DB,
    LIST,
    LOWER,
    PRODUCT_KEY,
    RESYNC,
    Row,
    clean_sequences,
    client_for,
    fill,
    make_ahead,
    make_behind,
    make_user,
    set_next,
    table_rows,
    text,
)


@pytest.fixture
def varied() -> None:
    make_behind(Product, 8)
    make_behind(Tag, 3)
    make_behind(Ticket, 5, using="other")
    make_ahead(Coupon, 3, 10)
    fill(Reading, range(1, 3))
    set_next(Reading, 2_000_000_000)


def _number(cell: str) -> int | None:
    return None if cell == "—" else int(cell.replace(",", ""))


def _links(content: bytes, label: str) -> list[str]:
    """hrefs of the links with this text, entities decoded."""
    pattern = rf'<a href="([^"]*)"[^>]*>\s*{re.escape(label)}\s*</a>'
    return [h.replace("&amp;", "&") for h in re.findall(pattern, content.decode())]


# ---------------------------------------------------------------------------
# Sorting
# ---------------------------------------------------------------------------


@DB
@pytest.mark.parametrize("column", ["model", "database", "table", "sequence"])
def test_sorting_by_a_text_column(column: str, varied: None) -> None:
    client = client_for("viewer")

    ascending = table_rows(client.get(LIST, {"seq-sort": column}).content)
    descending = table_rows(client.get(LIST, {"seq-sort": f"-{column}"}).content)

    values = [r[column] for r in ascending]
    assert values == sorted(values)
    assert len(set(values)) > 1
    assert [r[column] for r in descending] == sorted(values, reverse=True)


@DB
@pytest.mark.parametrize("column", ["next_value", "max_value"])
def test_sorting_by_a_number_column_is_numeric(column: str, varied: None) -> None:
    client = client_for("viewer")

    rows = table_rows(client.get(LIST, {"seq-sort": f"-{column}"}).content)

    values = [_number(r[column]) for r in rows]
    numbers = [v for v in values if v is not None]
    assert numbers == sorted(numbers, reverse=True)  # 2,000,000,000 before 76, not "9" before "76"
    assert len(numbers) > 3


@DB
def test_header_link_sorts_and_keeps_the_filters(varied: None) -> None:
    client = client_for("viewer")
    page = client.get(LIST, {"app": "shop"})
    (href,) = _links(page.content, "Model")
    assert "app=shop" in href and "seq-sort=model" in href

    sorted_page = client.get(f"{LIST}{href}")

    rows = table_rows(sorted_page.content)
    assert [r["model"] for r in rows] == sorted(r["model"] for r in rows)
    assert {r["model"].split(".")[0] for r in rows} == {"shop"}
    # The header now offers the reverse order.
    (reverse,) = _links(sorted_page.content, "Model")
    assert "seq-sort=-model" in reverse


@DB
def test_unknown_sort_keeps_the_default_order(varied: None) -> None:
    client = client_for("viewer")

    default = [r.key for r in table_rows(client.get(LIST).content)]
    unknown = [r.key for r in table_rows(client.get(LIST, {"seq-sort": "nope"}).content)]
    actions = [r.key for r in table_rows(client.get(LIST, {"seq-sort": "actions"}).content)]

    assert unknown == default
    assert actions == default
    assert default[0] in (PRODUCT_KEY, "other:helpdesk.Ticket:id", "default:shop.Tag:id")


# ---------------------------------------------------------------------------
# Pagination
# ---------------------------------------------------------------------------


@DB
def test_pagination_walks_every_row_once(varied: None) -> None:
    client = client_for("viewer")
    everything = [r.key for r in table_rows(client.get(LIST, {"show": "all"}).content)]
    assert len(everything) > 10

    seen: list[str] = []
    with override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5):
        url = f"{LIST}?show=all"
        for _ in range(len(everything)):
            page = client.get(url)
            rows = table_rows(page.content)
            assert 1 <= len(rows) <= 5
            seen += [r.key for r in rows]
            nexts = _links(page.content, "next")
            if not nexts:
                break
            url = f"{LIST}{nexts[0]}"

    assert seen == everything
    assert len(everything) // 5 >= 2


@DB
@override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5)
def test_pagination_keeps_the_filter(varied: None) -> None:
    client = client_for("viewer")
    everything = [
        r.key
        for r in table_rows(
            client.get(LIST, {"database": "default", "seq-per_page": "1000", "show": "all"}).content
        )
    ]

    first = client.get(LIST, {"database": "default", "show": "all"})
    (second_href,) = _links(first.content, "2")
    second = client.get(f"{LIST}{second_href}")

    assert "database=default" in second_href
    keys = [r.key for r in table_rows(first.content)] + [r.key for r in table_rows(second.content)]
    assert keys == everything[:10]
    assert all(k.startswith("default:") for k in keys)


@DB
@override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5)
@pytest.mark.parametrize(("per_page", "rows"), [("-1", 5), ("0", 5), ("x", 5), ("7", 7)])
def test_bad_per_page_in_the_query_string_falls_back_to_the_setting(
    per_page: str, rows: int, varied: None
) -> None:
    response = client_for("viewer").get(LIST, {"seq-per_page": per_page, "show": "all"})

    assert response.status_code == 200
    assert len(table_rows(response.content)) == rows


@DB
@override_settings(INTEGRITY_SEQUENCES_PER_PAGE=5)
@pytest.mark.parametrize("page", ["999", "x"])
def test_out_of_range_page_still_renders(page: str, varied: None) -> None:
    response = client_for("viewer").get(LIST, {"seq-page": page})

    assert response.status_code == 200
    assert 1 <= len(table_rows(response.content)) <= 5


# ---------------------------------------------------------------------------
# Cells and actions
# ---------------------------------------------------------------------------


def _row(content: bytes, key: str) -> Row:
    return next(r for r in table_rows(content) if r.key == key)


@DB
def test_cells_show_numbers_badges_and_meters(varied: None) -> None:
    response = client_for("viewer").get(LIST)
    body = response.content.decode()

    product = _row(response.content, PRODUCT_KEY)
    assert (product["next_value"], product["max_value"], product["status"]) == ("1", "8", "behind")
    assert product["table"] == "public.shop_product"
    assert product["sequence"] == "public.shop_product_id_seq"
    assert product["types"] == "bigint ← bigint"
    assert product.attrs["id"] == "seq-default-shop-Product-id"
    reading = _row(response.content, "default:metrics.Reading:id")
    assert reading["next_value"] == "2,000,000,000"
    assert reading["max_value"] == "2"
    assert reading["capacity"] == "93.1%"
    assert '<span class="integrity-meter critical" title="critical"><span style="width: 93.1%">' in body
    ticket_number = _row(response.content, "default:helpdesk.Ticket:number")
    assert ticket_number["types"] == "integer ← bigint type mismatch"
    assert ticket_number["max_value"] == "—"
    assert '<span class="integrity-badge status-behind">behind</span>' in body


@DB
def test_actions_per_status(varied: None) -> None:
    set_next(Tag, 1)
    fill(Tag, range(0))  # empty, sequence at its start: nothing to do
    response = client_for("resyncer").get(LIST, {"show": "all"})

    product = _row(response.content, PRODUCT_KEY)
    assert product.forms == [RESYNC] and product.keys == [PRODUCT_KEY]
    assert product["actions"] == "Resync"
    coupon = _row(response.content, COUPON_KEY)
    assert coupon.forms == [] and coupon.links == [f"{LOWER}?key=default%3Ashop.Coupon%3Aid"]
    assert coupon["actions"] == ""  # a gap is no call to action: "Lower" is in the row's details
    tag = _row(response.content, "default:shop.Tag:id")
    assert (tag.status, tag["actions"], tag.forms, tag.links) == ("empty", "", [], [])
    reading = _row(response.content, "default:metrics.Reading:id")  # sequence far past its 2 rows: a gap
    assert reading.status == "ahead"
    assert reading.links == [f"{LOWER}?key=default%3Ametrics.Reading%3Aid"]


@DB
def test_empty_table_with_a_used_sequence_offers_lower() -> None:
    fill(Coupon, range(0))
    set_next(Coupon, 50)

    coupon = _row(client_for("resyncer").get(LIST, {"show": "all"}).content, COUPON_KEY)

    assert coupon.status == "empty"
    assert coupon.links == [f"{LOWER}?key=default%3Ashop.Coupon%3Aid"]


@DB
def test_resync_form_carries_a_csrf_token(varied: None) -> None:
    response = client_for("resyncer").get(LIST)

    forms = re.findall(r"<form method=\"post\".*?</form>", response.content.decode())
    assert forms
    for form in forms:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]*)"', form)
        assert token is not None and len(token.group(1)) == 64


@DB
def test_resync_form_takes_its_token_from_the_request(varied: None) -> None:
    """The htmx row partial is rendered outside RequestConfig, with ``table.request`` set by the view."""
    user = make_user("resyncer")
    info = next(i for r in sequences.collect(["default"]) for i in r.sequences if i.key == PRODUCT_KEY)
    table = SequenceTable([info], resync_url=RESYNC, lower_url=LOWER, can_resync=True)
    request = RequestFactory().get(LIST)
    request.user = user
    table.request = request

    html = table.render_actions(info)

    assert f'action="{RESYNC}"' in html
    assert re.search(r'name="csrfmiddlewaretoken" value="[^"]{64}"', html)


@DB
def test_empty_result_shows_the_empty_text(varied: None) -> None:
    response = client_for("viewer").get(LIST, {"status": "unreadable"})

    assert response.status_code == 200
    assert table_rows(response.content) == []
    assert "No sequence matches these filters." in text(response)


# ---------------------------------------------------------------------------
# Duplicates: RuleTable, GroupPages, GroupTable
# ---------------------------------------------------------------------------

RULES_PAGE = "/admin/integrity/duplicaterule/"
NAME_RULE = {"model": "shop.Product", "fields": ["name"], "case_insensitive": True, "name": "name_ci"}
NAME_KEY = "default:shop.Product:configured:name_ci"


def _scans(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "HAVING COUNT(*) > 1" in q["sql"].upper()]


@pytest.fixture
def product_names() -> None:
    """Under Lower(name): {b x3}, {a x2}, {c x2}; d alone."""
    Product.objects.bulk_create(Product(name=n) for n in ["b", "B", "b", "a", "A", "c", "C", "d"])


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[NAME_RULE])
def test_group_pages_give_the_total_and_the_page_from_one_scan(product_names: None) -> None:
    pages = GroupPages(get_rule(NAME_KEY), offset=1, limit=2)

    with CaptureQueriesContext(connections["default"]) as captured:
        total = len(pages)
        page = pages[1:3]
        walked = list(pages)

    assert total == 3
    assert [(g.key, g.size) for g in page] == [(("a",), 2), (("c",), 2)]  # largest first, then by key
    assert walked == page  # iterating never walks past the scanned page
    assert len(_scans(captured)) == 1


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[NAME_RULE])
def test_group_pages_scan_again_only_for_another_slice(product_names: None) -> None:
    pages = GroupPages(get_rule(NAME_KEY), offset=0, limit=1)
    assert len(pages) == 3

    with CaptureQueriesContext(connections["default"]) as captured:
        first = pages[0:1]
        second = pages[1]

    assert [g.key for g in first] == [("b",)]
    assert second.key == ("a",)
    assert len(_scans(captured)) == 1  # only the index outside the scanned page
    with pytest.raises(IndexError):
        pages[3]


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[NAME_RULE])
def test_group_table_shows_null_and_empty_keys_and_caps_the_primary_keys() -> None:
    rule = get_rule(NAME_KEY)
    table = GroupTable([], rule=rule, group_url="/groups/")

    null = table.row_html(Group((None,), 4, [7, 9]))
    empty = table.row_html(Group(("",), 2, [3, 5]))

    assert '<code class="null">NULL</code>' in null
    assert '7, 9 <span class="integrity-note">and 2 more</span>' in null
    assert 'href="/groups/?rule=default%3Ashop.Product%3Aconfigured%3Aname_ci&amp;pk=7"' in null
    assert '<code class="">&quot;&quot;</code>' in empty
    assert "more" not in empty
    assert '<span class="dup-key-name">Lower(name)</span>' in null


def test_dom_ids_are_stable_and_tell_keys_apart() -> None:
    assert dom_id("default:shop.Product:unique:name") == dom_id("default:shop.Product:unique:name")
    assert dom_id("default:a.B:c.d") != dom_id("default:a.B:c:d")
    assert re.fullmatch(r"dup-[0-9a-f]{12}", dom_id("default:x.Y:z"))


def test_key_text_makes_null_and_empty_visible() -> None:
    assert (key_text(None), key_text(""), key_text(0), key_text("x")) == ("NULL", '""', "0", "x")


@DB
@override_settings(
    INTEGRITY_DUPLICATE_RULES=[
        {"model": "shop.Product", "fields": ["name"], "name": 'x"><script>alert(1)</script>'}
    ]
)
def test_rule_table_escapes_what_it_shows() -> None:
    key = 'default:shop.Product:configured:x"><script>alert(1)</script>'

    client = client_for("superuser")
    response = client.get(RULES_PAGE)

    body = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in body
    assert f'data-rule="{escape(key)}"' in body
    rule_page = client.get(f"{RULES_PAGE}rule/", {"rule": key})
    assert rule_page.status_code == 200
    assert "<script>alert(1)</script>" not in rule_page.content.decode()


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[NAME_RULE])
def test_rule_table_rows_render_in_one_pass_per_page() -> None:
    """RuleTable.page_html renders rows itself: each row is one <tr> with every column's cell."""
    response = client_for("superuser").get(RULES_PAGE, {"rule-per_page": 3})

    rows = re.findall(
        r'<tr id="dup-[0-9a-f]{12}" data-rule="[^"]+" data-state="\w+">(.*?)</tr>', response.content.decode()
    )
    assert len(rows) == 3
    for row in rows:
        classes = re.findall(r'<td class="([^"]+)">', row)
        assert classes == ["model", "enforcement", "num groups", "num rows", "rule", "kind", "database"]
