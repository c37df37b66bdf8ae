"""HTTP tests of the duplicates pages (``integrity/views_duplicates.py``) through Django's test client.

Every request is real (admin URLconf, sessions, the embedded PostgreSQL).
Rules come from the models and from ``INTEGRITY_DUPLICATE_RULES`` set per
test on the demo's shop models; the crm models bring declared rules in every
enforcement state. Scans are recognised in the captured SQL by their
``GROUP BY``. A timed-out scan is made deterministic with a lock: another
connection holds ACCESS EXCLUSIVE on the table, so the scan waits until its
statement timeout cancels it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.db.models import Model
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from demo import seed
from demo.crm.models import Company, Customer, Mentorship
from demo.shop.models import Coupon, Order, Product, Tag
from integrity.duplicates import enforcement
from integrity.duplicates.invisibles import marked, plain
from integrity.duplicates.rules import rules_for
from tests import helpers
from tests.helpers import (
    VAT_KEY,
    Tr,
    login_redirect,
    rows_of,
    text,
)

DB = pytest.mark.django_db(databases="__all__")

BASE = "/admin/integrity/duplicaterule/"
# A lazy count's placeholder: "counting…" with JavaScript (which fills it in), and without it
# (CSS shows one of the two) a link that says what it does.
PLACEHOLDER = "counting…Count the duplicates of this rule"
RULES_PAGE = BASE
COUNT = f"{BASE}count/"
RULE = f"{BASE}rule/"
GROUP = f"{BASE}group/"
SUMMARY = f"{BASE}summary/"

PRODUCT_RULE = {
    "model": "shop.Product",
    "fields": ["name"],
    "case_insensitive": True,
    "name": "product_name_ci",
}
ORDER_RULE = {"model": "shop.Order", "fields": ["product", "quantity"], "name": "order_line"}
COUPON_RULE = {"model": "shop.Coupon", "fields": ["code"], "name": "coupon_code"}
USER_RULE = {"model": "auth.User", "fields": ["email"], "case_insensitive": True, "name": "user_email_ci"}
SHOP_RULES = [PRODUCT_RULE, ORDER_RULE, COUPON_RULE]
PRODUCT_KEY = "default:shop.Product:configured:product_name_ci"
ORDER_KEY = "default:shop.Order:configured:order_line"
COUPON_KEY = "default:shop.Coupon:configured:coupon_code"
USER_KEY = "default:auth.User:configured:user_email_ci"
TAG_KEY = "default:shop.Tag:unique:name"  # enforced by shop_tag_name_key

shop_rules = override_settings(INTEGRITY_DUPLICATE_RULES=SHOP_RULES)


CODENAMES = {"sequence_viewer": ["view_sequence"], "viewer": ["view_duplicaterule"]}
client_for = partial(helpers.client_for, roles=CODENAMES)
make_user = partial(helpers.make_user, roles=CODENAMES)


def url(path: str, **params: Any) -> str:
    return f"{path}?{urlencode(params)}" if params else path


# ---------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------

ROLES = ("anonymous", "non_staff", "staff", "sequence_viewer", "viewer", "superuser")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@pytest.fixture
def shop() -> dict[str, Product]:
    """Products whose names differ only by case, orders repeating (product, quantity).

    Under product_name_ci: {Apple, apple, APPLE} and {Pear, PEAR}; Fig alone.
    Under order_line: (Apple, 1) x3, (Apple, 2) x2, (Fig, 5) x2; (Pear, 1) alone.
    """
    seed.reset()  # empties the demo tables; TRUNCATE … RESTART IDENTITY rolls back with the test
    names = ["Apple", "apple", "APPLE", "Pear", "PEAR", "Fig"]
    products = {n: Product.objects.create(name=n, price=3) for n in names}
    apple, fig, pear = products["Apple"], products["Fig"], products["Pear"]
    lines = [(apple, 1)] * 3 + [(apple, 2)] * 2 + [(fig, 5)] * 2 + [(pear, 1)]
    Order.objects.bulk_create(Order(product=p, quantity=q) for p, q in lines)
    tags = Tag.objects.bulk_create(Tag(name=n) for n in ("fruit", "red"))
    products["apple"].tags.set(tags)
    return products


@pytest.fixture
def companies() -> dict[str, Company]:
    """One company imported three times (its VAT number repeated: the unique constraint was dropped)."""
    seed.reset()
    rows = [
        ("Acme Ltd", "GB123456789"),
        (" Acme Ltd", "GB123456789"),
        ("acme ltd", "GB123456789"),
        ("Globex GmbH", "DE811907980"),
        ("Globex", "DE811907980"),
        ("Initech", "FR40303265045"),
        ("Hooli", None),
        ("Umbrella", None),
    ]
    made = {name: Company.objects.create(name=name, vat_number=vat) for name, vat in rows}
    Customer.objects.bulk_create(
        [Customer(email=f"c{i}@example.com", name=f"C{i}", company=made["Acme Ltd"]) for i in range(3)]
        + [Customer(email="x@example.com", name="X", company=made["acme ltd"])]
    )
    return made


@contextmanager
def table_locked(model: type[Model]) -> Iterator[None]:
    """Another connection holds ACCESS EXCLUSIVE on the model's table: any read of it waits.

    The test's own transaction must not have touched the table (it would hold
    a lock of its own): NOWAIT makes that a clear error instead of a hang.
    """
    side = connections.create_connection("default")
    try:
        with side.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                f"LOCK TABLE {side.ops.quote_name(model._meta.db_table)} IN ACCESS EXCLUSIVE MODE NOWAIT"
            )
        yield
    finally:
        with side.cursor() as cursor:
            cursor.execute("ROLLBACK")
        side.close()


@contextmanager
def queries() -> Iterator[list[str]]:
    """The SQL run on both PostgreSQL aliases inside the block."""
    found: list[str] = []
    with (
        CaptureQueriesContext(connections["default"]) as default,
        CaptureQueriesContext(connections["other"]) as other,
    ):
        yield found
    found.extend(q["sql"] for q in default.captured_queries + other.captured_queries)


def scans(sql: list[str]) -> list[str]:
    """The duplicate scans: ``GROUP BY … HAVING COUNT(*) > 1`` (reference counts group too, without HAVING)."""
    return [q for q in sql if "HAVING COUNT(*) > 1" in q.upper()]


# ---------------------------------------------------------------------------
# Reading the pages
# ---------------------------------------------------------------------------


def rule_rows(content: bytes) -> dict[str, Tr]:
    return {r.attrs["data-rule"]: r for r in rows_of(content, "data-rule")}


def group_rows(content: bytes) -> list[Tr]:
    return rows_of(content, "data-size")


def field_rows(content: bytes) -> dict[str, Tr]:
    return {r.attrs["data-field"]: r for r in rows_of(content, "data-field")}


def reference_rows(content: bytes) -> dict[str, Tr]:
    return {r.attrs["data-relation"]: r for r in rows_of(content, "data-relation")}


def query_of(href: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}


def count_cell(response: Any) -> tuple[str, dict[str, str]]:
    """The text of a count partial's cell, and its out-of-band rows span (id, text)."""
    body = response.content.decode()
    oob = re.search(r'<span id="([^"]+)" hx-swap-oob="true">([^<]*)</span>', body)
    assert oob is not None, body
    cell = " ".join(re.sub(r"<[^>]*>", " ", body[: oob.start()]).split())
    return cell, {"id": oob.group(1), "text": oob.group(2)}


# ---------------------------------------------------------------------------
# 1. Permission matrix
# ---------------------------------------------------------------------------

ENDPOINTS = {
    "rules": url(RULES_PAGE),
    "count": url(COUNT, rule=PRODUCT_KEY),
    "rule": url(RULE, rule=PRODUCT_KEY),
    "group": None,  # needs the pk of a product: built in the test
    "summary": url(SUMMARY),
}
SHOWN = {
    "rules": "crm.Company",
    "count": "2 groups",
    "rule": "2 groups of duplicates, 5 rows involved",
    "group": "3 rows share the key Lower(name) = apple.",
    "summary": "Duplicate groups",
}
MATRIX: dict[str, int | str] = {
    "anonymous": "login",
    "non_staff": "login",
    "staff": 403,
    "sequence_viewer": 403,  # the sequences' permission does not open the duplicates
    "viewer": 200,
    "superuser": 200,
}


@DB
@shop_rules
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(role: str, endpoint: str, shop: dict[str, Product]) -> None:
    path = ENDPOINTS[endpoint] or url(GROUP, rule=PRODUCT_KEY, pk=shop["Apple"].pk)
    expected = MATRIX[role]
    before = (Product.objects.count(), Order.objects.count())

    with queries() as sql:
        response = client_for(role).get(path)

    if expected == "login":
        assert login_redirect(response, path), (response.status_code, response.get("Location"))
    else:
        assert response.status_code == expected
    body = text(response)
    if expected == 200:
        assert SHOWN[endpoint] in body
    else:
        assert "shop.Product" not in body and "groups" not in body
        assert scans(sql) == []  # nothing was scanned for them
    assert (Product.objects.count(), Order.objects.count()) == before


@DB
@pytest.mark.parametrize("path", [RULES_PAGE, COUNT, RULE, GROUP, SUMMARY])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_pages_only_answer_get(method: str, path: str) -> None:
    response = getattr(client_for("superuser"), method)(path)

    assert response.status_code == 405
    assert response["Allow"] == "GET"


# ---------------------------------------------------------------------------
# 2. The rules page
# ---------------------------------------------------------------------------


@DB
@shop_rules
def test_rules_page_lists_every_rule_with_its_enforcement(shop: dict[str, Product]) -> None:
    response = client_for("viewer").get(RULES_PAGE, {"show": "all"})

    assert response.status_code == 200
    rows = rule_rows(response.content)
    declared = rules_for()
    assert set(rows) == {r.key for r in declared}
    states = enforcement.classify(declared)
    assert {k: r.attrs["data-state"] for k, r in rows.items()} == {k: e.state for k, e in states.items()}

    tag = rows[TAG_KEY]
    assert (tag.cell("model"), tag.cell("database"), tag.cell("rule")) == ("shop.Tag", "default", "name")
    assert tag.cell("kind") == "unique field"
    assert tag.cell("enforcement") == "enforced index shop_tag_name_key"
    vat = rows[VAT_KEY]
    assert (
        vat.cell("enforcement")
        == "missing Drift: the migrations say it exists, the database has no such index."
    )
    product = rows[PRODUCT_KEY]
    assert product.cell("rule") == "Lower(name)"
    assert product.cell("kind") == "configured INTEGRITY_DUPLICATE_RULES (case-insensitive)"
    assert product.cell("enforcement").startswith("configured Configured in INTEGRITY_DUPLICATE_RULES")
    device = rows["default:crm.Device:crm_device_vendor_serial_uniq"]
    assert device.cell("rule") == "vendor, serial NULLs equal"
    membership = rows["default:crm.Membership:crm_membership_active_code_uniq"]
    assert membership.cell("rule") == "code where active=True"
    assert membership.cell("kind") == "UniqueConstraint UniqueConstraint 'crm_membership_active_code_uniq'"
    customer = rows["default:crm.Customer:crm_customer_email_ci_uniq"]
    assert customer.cell("rule") == "Lower(email)"
    assert rows["default:crm.Account:unique:user"].cell("kind") == "unique field OneToOneField"
    assert rows["other:helpdesk.Ticket:unique:number"].cell("database") == "other"


@DB
@shop_rules
def test_rules_page_shows_problems_first() -> None:
    rows = list(rule_rows(client_for("viewer").get(RULES_PAGE, {"show": "all"}).content).values())

    order = {"missing": 0, "invalid": 0, "configured": 1, "enforced": 2}
    ranks = [order[r.attrs["data-state"]] for r in rows]
    assert ranks == sorted(ranks)
    assert {r.attrs["data-state"] for r in rows} >= {"missing", "configured", "enforced"}


@DB
@shop_rules
def test_rules_page_runs_no_scan_and_leaves_counts_to_lazy_requests(shop: dict[str, Product]) -> None:
    client = client_for("viewer")

    with queries() as sql:
        response = client.get(RULES_PAGE)

    assert response.status_code == 200
    assert not [q for q in sql if "GROUP BY" in q.upper()]
    rows = rule_rows(response.content)
    for key, row in rows.items():
        state = row.attrs["data-state"]
        if state in ("missing", "invalid", "configured"):
            # A placeholder that counts itself when it comes into view, and is a plain link without JavaScript.
            (placeholder,) = row.links(PLACEHOLDER)
            assert placeholder["hx-get"] == url(COUNT, rule=key)
            assert placeholder["hx-trigger"] == "revealed"
            assert placeholder["hx-swap"] == "outerHTML"
            assert placeholder["href"] == url(RULE, rule=key)
            assert row.cell("rows") == "…"
            assert set(row.spans) == {f"{row.attrs['id']}-rows"}
            assert '<span class="integrity-if-no-js">Count the duplicates of this rule</span>' in str(
                response.content.decode()
            )
        else:
            assert state == "enforced"
            assert not [a for a in row.anchors if "hx-get" in a]
            assert row.cell("groups") == "— verify"
            assert row.links("verify")[0]["href"] == url(RULE, rule=key, verify="1")
            assert row.cell("rows") == "—"


@DB
def test_rules_page_query_count_does_not_grow_with_rules_or_duplicates() -> None:
    client = client_for("viewer")

    def count(rules: list[dict[str, Any]]) -> int:
        with override_settings(INTEGRITY_DUPLICATE_RULES=rules), queries() as sql:
            assert client.get(RULES_PAGE).status_code == 200
        return len(sql)

    few = count([PRODUCT_RULE])
    many = count(
        [
            PRODUCT_RULE,
            ORDER_RULE,
            COUPON_RULE,
            USER_RULE,
            {"model": "shop.Product", "fields": ["price"]},
            {"model": "crm.Customer", "fields": ["email", "name"], "trim": True},
            {"model": "helpdesk.Ticket", "fields": ["subject"]},
        ]
    )
    seed.reset()
    Product.objects.bulk_create(Product(name="same") for _ in range(50))
    crowded = count([PRODUCT_RULE])

    assert many == few
    assert crowded == few


@DB
@shop_rules
@pytest.mark.parametrize(
    ("query", "states", "apps", "databases"),
    [
        ({"enforcement": "not_enforced"}, {"missing", "invalid", "configured"}, None, None),
        ({"enforcement": "configured"}, {"configured"}, {"shop"}, {"default"}),
        ({"enforcement": "enforced"}, {"enforced"}, None, None),
        ({"app": "shop"}, {"enforced", "configured"}, {"shop"}, {"default"}),
        ({"database": "other"}, {"enforced"}, None, {"other"}),
        ({"app": "crm", "enforcement": "missing"}, {"missing"}, {"crm"}, {"default"}),
    ],
)
def test_rules_page_filters(
    query: dict[str, str], states: set[str], apps: set[str] | None, databases: set[str] | None
) -> None:
    client = client_for("viewer")
    every = rule_rows(client.get(RULES_PAGE, {"show": "all"}).content)

    shown = rule_rows(client.get(RULES_PAGE, {**query, "show": "all"}).content)

    assert shown
    expected = {
        k
        for k, r in every.items()
        if r.attrs["data-state"] in states
        and (apps is None or k.split(":")[1].split(".")[0] in apps)
        and (databases is None or k.split(":")[0] in databases)
    }
    assert set(shown) == expected
    assert {r.attrs["data-state"] for r in shown.values()} <= states


@DB
def test_rules_page_filter_that_matches_nothing_says_so() -> None:
    response = client_for("viewer").get(RULES_PAGE, {"app": "no_such_app"})

    assert response.status_code == 200
    assert rule_rows(response.content) == {}
    assert "No rule matches these filters." in text(response)


@DB
def test_rules_page_says_which_databases_it_cannot_check() -> None:
    response = client_for("viewer").get(RULES_PAGE)

    body = text(response)
    assert "The duplicates check is not available for database “legacy” (sqlite) yet" in body
    assert not [k for k in rule_rows(response.content) if k.startswith("legacy:")]


@DB
@shop_rules
def test_rules_page_summary_counts_the_states() -> None:
    response = client_for("viewer").get(RULES_PAGE, {"show": "all"})

    rows = rule_rows(response.content)
    states = [r.attrs["data-state"] for r in rows.values()]
    missing, invalid = states.count("missing"), states.count("invalid")
    not_enforced = missing + invalid + 3
    assert (
        f"{len(rows)} rules, {states.count('enforced')} enforced by the database. "
        f"{not_enforced} not enforced ({missing} missing, {invalid} invalid, 3 configured)"
    ) in text(response)


@DB
@shop_rules
@pytest.mark.parametrize(
    "query",
    [
        {"rule-page": "abc"},
        {"rule-page": "-1"},
        {"rule-page": "99999"},
        {"rule-per_page": "-1"},
        {"rule-per_page": "0"},
        {"rule-sort": "no_such_column"},
    ],
)
def test_rules_page_survives_tampered_table_parameters(query: dict[str, str]) -> None:
    response = client_for("viewer").get(RULES_PAGE, query)

    assert response.status_code == 200
    assert PRODUCT_KEY in rule_rows(response.content)


@DB
@shop_rules
def test_rules_page_sorts_by_model() -> None:
    client = client_for("viewer")

    ascending = [
        r.cell("model") for r in rule_rows(client.get(RULES_PAGE, {"rule-sort": "model"}).content).values()
    ]
    descending = [
        r.cell("model") for r in rule_rows(client.get(RULES_PAGE, {"rule-sort": "-model"}).content).values()
    ]

    assert ascending == sorted(ascending)
    assert descending == sorted(ascending, reverse=True)


# ---------------------------------------------------------------------------
# 3. The lazy count
# ---------------------------------------------------------------------------


@DB
@shop_rules
def test_count_of_a_rule_with_duplicates_links_to_its_groups(shop: dict[str, Product]) -> None:
    client = client_for("viewer")
    placeholder = rule_rows(client.get(RULES_PAGE).content)[ORDER_KEY]

    with queries() as sql:
        response = client.get(COUNT, {"rule": ORDER_KEY}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert len(scans(sql)) == 1
    cell, rows = count_cell(response)
    assert cell == "3 groups"
    link = re.search(r'<a class="dup-count found" href="([^"]+)">', response.content.decode())
    assert link is not None and link[1] == url(RULE, rule=ORDER_KEY).replace("&", "&amp;")
    # The rows figure lands in the rows cell of the same table row.
    assert rows == {"id": f"{placeholder.attrs['id']}-rows", "text": "7"}
    assert rows["id"] in placeholder.spans
    assert "<html" not in response.content.decode()


@DB
@shop_rules
def test_count_of_a_rule_without_duplicates_says_none(shop: dict[str, Product]) -> None:
    Coupon.objects.bulk_create(Coupon(code=c) for c in ("A", "B", "a"))

    response = client_for("viewer").get(COUNT, {"rule": COUPON_KEY})

    assert response.status_code == 200
    cell, rows = count_cell(response)
    assert (cell, rows["text"]) == ("none", "0")


@DB
@shop_rules
@override_settings(INTEGRITY_SCAN_TIMEOUT_MS=100)
def test_count_that_times_out_offers_a_retry() -> None:
    client = client_for("viewer")

    with table_locked(Coupon), queries() as sql:
        response = client.get(COUNT, {"rule": COUPON_KEY}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    cell, rows = count_cell(response)
    assert cell == "timed out retry"
    assert rows["text"] == "—"
    assert len(scans(sql)) == 1
    retry = re.search(r'<a class="integrity-link" href="([^"]+)" hx-get="([^"]+)"', response.content.decode())
    assert retry is not None
    assert retry[1].replace("&amp;", "&") == url(RULE, rule=COUPON_KEY)  # without JavaScript: the rule page
    assert retry[2].replace("&amp;", "&") == url(COUNT, rule=COUPON_KEY)
    assert "longer than 100 ms" in response.content.decode()

    # Once the lock is gone, the same request counts.
    again = client.get(COUNT, {"rule": COUPON_KEY}, headers={"HX-Request": "true"})
    assert count_cell(again)[0] == "none"


@DB
@pytest.mark.parametrize(
    "key",
    [
        "",
        "nonsense",
        "default:shop.Product",
        "default:shop.Product:configured:nope",
        "nowhere:shop.Tag:unique:name",
    ],
)
def test_count_of_an_unknown_rule_is_404(key: str) -> None:
    with queries() as sql:
        response = client_for("viewer").get(COUNT, {"rule": key}, headers={"HX-Request": "true"})

    assert response.status_code == 404
    assert "There is no duplicate rule" in text(response)
    assert scans(sql) == []


# ---------------------------------------------------------------------------
# 4. A rule's groups
# ---------------------------------------------------------------------------


@DB
@shop_rules
def test_rule_page_lists_groups_largest_first(shop: dict[str, Product]) -> None:
    with queries() as sql:
        response = client_for("viewer").get(RULE, {"rule": ORDER_KEY})

    assert response.status_code == 200
    assert len(scans(sql)) == 1  # the count and the page in one statement
    body = text(response)
    assert "3 groups of duplicates, 7 rows involved: 4 would have to go for the rule to hold." in body
    assert "Enforcement configured Configured in INTEGRITY_DUPLICATE_RULES" in body
    apple, fig = shop["Apple"].pk, shop["Fig"].pk
    rows = group_rows(response.content)
    assert [(r.cell("key"), r.cell("num")) for r in rows] == [
        (f"product {apple} quantity 1", "3"),
        (f"product {apple} quantity 2", "2"),
        (f"product {fig} quantity 5", "2"),
    ]
    orders: dict[tuple[int, int], list[int]] = {}
    for o in Order.objects.order_by("pk"):
        orders.setdefault((o.product_id, o.quantity), []).append(o.pk)
    first = rows[0]
    assert first.cell("members") == ", ".join(str(pk) for pk in orders[(apple, 1)])
    (compare,) = first.links("Compare side by side")
    assert query_of(compare["href"]) == {"rule": ORDER_KEY, "pk": str(orders[(apple, 1)][0])}


@DB
@shop_rules
@override_settings(INTEGRITY_GROUPS_PER_PAGE=2)
def test_rule_page_paginates_with_one_scan_per_page(shop: dict[str, Product]) -> None:
    client = client_for("viewer")

    with queries() as first_sql:
        first = client.get(RULE, {"rule": ORDER_KEY})
    with queries() as second_sql:
        second = client.get(RULE, {"rule": ORDER_KEY, "grp-page": "2"})

    assert [r.attrs["data-size"] for r in group_rows(first.content)] == ["3", "2"]
    assert [r.attrs["data-size"] for r in group_rows(second.content)] == ["2"]
    assert len(scans(first_sql)) == 1
    assert len(scans(second_sql)) == 1
    # The pagination links keep the rule.
    links = {
        h.replace("&amp;", "&") for h in re.findall(r'href="(\?[^"]*grp-page=[^"]*)"', first.content.decode())
    }
    assert {query_of(h).get("rule") for h in links} == {ORDER_KEY}
    assert "2" in {query_of(h)["grp-page"] for h in links}
    assert "3 groups of duplicates" in text(second)


@DB
@shop_rules
@override_settings(INTEGRITY_GROUPS_PER_PAGE=2)
@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("abc", "Invalid page number 'abc'."),
        ("0", "Invalid page number '0'."),
        ("-1", "Invalid page number '-1'."),
        ("1.5", "Invalid page number '1.5'."),
        ("99999", "Page 99999 does not exist: this rule has 2 pages of groups."),
        ("3", "Page 3 does not exist: this rule has 2 pages of groups."),
        ("9" * 30, f"Invalid page number '{'9' * 30}'."),
    ],
)
def test_rule_page_with_a_tampered_page_number_is_404(
    page: str, message: str, shop: dict[str, Product]
) -> None:
    before = list(Order.objects.order_by("pk").values_list("pk", "product_id", "quantity"))

    response = client_for("viewer").get(RULE, {"rule": ORDER_KEY, "grp-page": page})

    assert response.status_code == 404
    assert message in text(response)
    assert group_rows(response.content) == []
    assert list(Order.objects.order_by("pk").values_list("pk", "product_id", "quantity")) == before


@DB
@shop_rules
def test_rule_page_of_a_rule_without_duplicates(shop: dict[str, Product]) -> None:
    response = client_for("viewer").get(RULE, {"rule": COUPON_KEY, "grp-page": "1"})

    assert response.status_code == 200
    assert "No duplicates: every row satisfies this rule." in text(response)
    assert group_rows(response.content) == []


@DB
def test_rule_page_of_an_enforced_rule_scans_only_on_demand() -> None:
    client = client_for("viewer")

    with queries() as sql:
        plain = client.get(RULE, {"rule": TAG_KEY})
    with queries() as verify_sql:
        verified = client.get(RULE, {"rule": TAG_KEY, "verify": "1"})

    assert plain.status_code == verified.status_code == 200
    assert scans(sql) == []
    assert "Enforced by index shop_tag_name_key: no duplicates possible." in text(plain)
    verify = re.search(
        r'<a class="button" href="([^"]+)">Verify: scan the table anyway</a>', plain.content.decode()
    )
    assert verify is not None
    assert query_of(verify[1].replace("&amp;", "&")) == {"rule": TAG_KEY, "verify": "1"}
    assert len(scans(verify_sql)) == 1
    assert "Verified: no duplicates." in text(verified)


@DB
def test_rule_page_of_a_missing_rule_says_why_and_shows_the_groups(companies: dict[str, Company]) -> None:

    response = client_for("viewer").get(RULE, {"rule": VAT_KEY})

    body = text(response)
    assert "missing Drift: the migrations say it exists, the database has no such index." in body
    assert "Declared by unique field: unique=True" in body
    assert "2 groups of duplicates, 5 rows involved: 3 would have to go" in body
    assert [(r.cell("key"), r.attrs["data-size"]) for r in group_rows(response.content)] == [
        ("vat_number GB123456789", "3"),
        ("vat_number DE811907980", "2"),
    ]


@DB
@override_settings(
    INTEGRITY_DUPLICATE_RULES=[
        {"model": "crm.Mentorship", "fields": ["mentor", "mentee"], "nulls_equal": True}
    ]
)
def test_rule_page_shows_null_keys_of_a_nulls_equal_rule() -> None:
    seed.reset()
    ann, eli = User.objects.create_user("ann"), User.objects.create_user("eli")
    Mentorship.objects.bulk_create(
        [Mentorship(mentor=None, mentee=eli, topic=t) for t in ("Career", "Testing", "Speaking")]
        + [Mentorship(mentor=ann, mentee=eli, topic="SQL")]
    )

    response = client_for("viewer").get(RULE, {"rule": "default:crm.Mentorship:configured:mentor_mentee"})

    assert "NULLs equal" in text(response)
    assert [(r.cell("key"), r.attrs["data-size"]) for r in group_rows(response.content)] == [
        (f"mentor NULL mentee {eli.pk}", "3")
    ]


@DB
@shop_rules
@override_settings(INTEGRITY_SCAN_TIMEOUT_MS=100)
def test_rule_page_that_times_out_says_so_and_offers_a_retry() -> None:
    path = url(RULE, rule=COUPON_KEY)

    with table_locked(Coupon):
        response = client_for("viewer").get(path)

    assert response.status_code == 200
    body = text(response)
    assert "The scan was stopped after 100 ms (INTEGRITY_SCAN_TIMEOUT_MS); nothing was changed." in body
    retry = re.search(r'<a class="button" href="([^"]+)">Retry the scan</a>', response.content.decode())
    assert retry is not None and retry[1].replace("&amp;", "&") == path
    assert group_rows(response.content) == []


@DB
@pytest.mark.parametrize("key", ["", "x", "default:shop.Nope:unique:name", "default:shop.Tag:unique:nope"])
def test_rule_page_of_an_unknown_rule_is_404(key: str) -> None:
    response = client_for("viewer").get(RULE, {"rule": key})

    assert response.status_code == 404
    assert f"There is no duplicate rule {key!r}." in text(response)
    assert f'href="{RULES_PAGE}"' in response.content.decode()


# ---------------------------------------------------------------------------
# 5. One group, side by side
# ---------------------------------------------------------------------------


@DB
@shop_rules
def test_group_page_shows_the_members_side_by_side(shop: dict[str, Product]) -> None:
    apple, lower, upper = shop["Apple"], shop["apple"], shop["APPLE"]

    with queries() as sql:
        response = client_for("viewer").get(GROUP, {"rule": PRODUCT_KEY, "pk": str(lower.pk)})

    assert response.status_code == 200
    assert scans(sql) == []  # placing the group among the rule's groups is the pager's own request
    body = text(response)
    assert "3 rows share the key Lower(name) = apple." in body
    assert "<title>Lower(name) = &#x27;apple&#x27; – 3 rows |" in response.content.decode()
    columns = re.findall(r'<th scope="col" class="member">\s*(?:<a [^>]*>)?#(\d+)', response.content.decode())
    assert columns == [str(apple.pk), str(lower.pk), str(upper.pk)]
    fields = field_rows(response.content)
    assert set(fields) == {"name", "price"}  # the primary key heads the columns instead
    name, price = fields["name"], fields["price"]
    assert name.cells == ["Apple", "apple", "APPLE"]
    assert "differs" in name.attrs["class"] and "key" in name.attrs["class"]
    assert name.header == "name key differs"
    assert price.cells == ["3.00", "3.00", "3.00"]
    assert "differs" not in price.attrs["class"]


@DB
@shop_rules
def test_group_page_counts_what_references_each_member(shop: dict[str, Product]) -> None:
    response = client_for("viewer").get(GROUP, {"rule": PRODUCT_KEY, "pk": str(shop["Apple"].pk)})

    refs = reference_rows(response.content)
    # Apple: 5 orders; apple: 2 tags (its own many-to-many); APPLE: nothing.
    assert refs["shop.Order.product"].cells == ["5", "0", "0"]
    assert refs["shop.Product.tags"].cells == ["0", "2", "0"]
    assert refs["total"].cells == ["5", "2", "0"]


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[USER_RULE])
@pytest.mark.parametrize(
    ("role", "codenames", "site", "linked"),
    [
        ("superuser", None, "/admin/", True),
        ("viewer", ["view_duplicaterule", "view_user"], "/admin/", True),
        ("viewer", ["view_duplicaterule"], "/admin/", False),  # may not see users
        ("superuser", None, "/second-admin/", False),  # users are not registered there
    ],
)
def test_group_page_links_each_member_to_its_change_page(
    role: str, codenames: list[str] | None, site: str, linked: bool
) -> None:
    one = User.objects.create_user("jo", "Jo@example.com")
    two = User.objects.create_user("jo2", "jo@example.com")

    response = client_for(role, codenames).get(
        f"{site}integrity/duplicaterule/group/", {"rule": USER_KEY, "pk": str(two.pk)}
    )

    assert response.status_code == 200
    hrefs = re.findall(r'<th scope="col" class="member">\s*<a href="([^"]+)">', response.content.decode())
    expected = [f"{site}auth/user/{one.pk}/change/", f"{site}auth/user/{two.pk}/change/"]
    assert hrefs == (expected if linked else [])
    assert field_rows(response.content)["email"].cells == ["Jo@example.com", "jo@example.com"]
    assert "differs" in field_rows(response.content)["username"].attrs["class"]


@DB
@shop_rules
def test_group_page_offers_the_merge_form_only_to_who_may_merge(shop: dict[str, Product]) -> None:
    params = {"rule": PRODUCT_KEY, "pk": str(shop["Pear"].pk)}
    viewer = client_for("viewer").get(GROUP, params)
    superuser = client_for("superuser").get(GROUP, params)

    assert "2 rows share the key Lower(name) = pear." in text(viewer)
    assert 'id="merge-form"' not in viewer.content.decode()
    assert 'id="merge-form"' in superuser.content.decode()


@DB
@shop_rules
@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"rule": PRODUCT_KEY}, 400, "Which row? The pk parameter is missing."),
        ({"rule": PRODUCT_KEY, "pk": ""}, 400, "Which row? The pk parameter is missing."),
        ({"rule": PRODUCT_KEY, "pk": "abc"}, 400, "'abc' is not a valid primary key of shop.Product."),
        ({"rule": PRODUCT_KEY, "pk": "1.5"}, 400, "'1.5' is not a valid primary key of shop.Product."),
        ({"rule": PRODUCT_KEY, "pk": "999999"}, 404, "shop.Product row 999999 is not in any duplicate group"),
        ({"rule": "default:shop.Nope:x:y", "pk": "1"}, 404, "There is no duplicate rule"),
        ({"pk": "1"}, 404, "There is no duplicate rule ''."),
    ],
)
def test_group_page_bad_input(
    params: dict[str, str], status: int, message: str, shop: dict[str, Product]
) -> None:
    before = list(Product.objects.order_by("pk").values_list("pk", "name"))

    response = client_for("viewer").get(GROUP, params)

    assert response.status_code == status
    assert message in text(response)
    assert field_rows(response.content) == {}
    assert list(Product.objects.order_by("pk").values_list("pk", "name")) == before


@DB
@shop_rules
def test_group_page_of_a_row_in_no_group_is_404(shop: dict[str, Product]) -> None:
    response = client_for("viewer").get(GROUP, {"rule": PRODUCT_KEY, "pk": str(shop["Fig"].pk)})

    assert response.status_code == 404
    assert f"shop.Product row {shop['Fig'].pk} is not in any duplicate group of this rule" in text(response)
    assert f'href="{RULES_PAGE}"' in response.content.decode()


# ---------------------------------------------------------------------------
# 6. Navigation: rules page → rule → group, and the second AdminSite
# ---------------------------------------------------------------------------


@DB
def test_from_the_rules_page_to_a_group(companies: dict[str, Company]) -> None:
    client = client_for("viewer")

    row = rule_rows(client.get(RULES_PAGE).content)[VAT_KEY]
    count = client.get(row.links(PLACEHOLDER)[0]["hx-get"])
    rule_href = re.search(r'<a class="dup-count found" href="([^"]+)">2 groups</a>', count.content.decode())
    assert rule_href is not None
    rule_page = client.get(rule_href[1].replace("&amp;", "&"))
    compare = group_rows(rule_page.content)[0].links("Compare side by side")[0]["href"]
    group = client.get(compare)

    assert group.status_code == 200
    assert "3 rows share the key vat_number = GB123456789." in text(group)
    fields = field_rows(group.content)
    # The second has a leading space: shown, since HTML would collapse it.
    assert fields["name"].cells == ["Acme Ltd", "␣Acme Ltd", "acme ltd"]
    assert "differs" in fields["name"].attrs["class"]
    assert "differs" not in fields["vat_number"].attrs["class"]
    # Customer.company points at Company.name (to_field): three customers of "Acme Ltd", one of "acme ltd".
    assert reference_rows(group.content)["crm.Customer.company"].cells == ["3", "0", "1"]


SECOND = "/second-admin/integrity/duplicaterule/"


@DB
@shop_rules
def test_second_site_links_stay_under_second_admin(shop: dict[str, Product]) -> None:
    client = client_for("superuser")

    page = client.get(SECOND)
    count = client.get(url(f"{SECOND}count/", rule=ORDER_KEY))
    rule = client.get(url(f"{SECOND}rule/", rule=ORDER_KEY))
    group = client.get(url(f"{SECOND}group/", rule=PRODUCT_KEY, pk=shop["Apple"].pk))
    summary = client.get(f"{SECOND}summary/")

    for response in (page, count, rule, group, summary):
        assert response.status_code == 200
        urls = re.findall(r'(?:href|hx-get)="(/[^"]*)"', response.content.decode())
        assert [u for u in urls if u.startswith("/admin/")] == []
    row = rule_rows(page.content)[ORDER_KEY]
    assert row.links(PLACEHOLDER)[0]["hx-get"] == url(f"{SECOND}count/", rule=ORDER_KEY)
    assert f'href="{url(f"{SECOND}rule/", rule=ORDER_KEY).replace("&", "&amp;")}"' in count.content.decode()
    assert group_rows(rule.content)[0].links("Compare side by side")[0]["href"].startswith(f"{SECOND}group/?")
    assert f'href="{SECOND}"' in group.content.decode()  # breadcrumbs back to the rules


@DB
def test_second_site_sends_strangers_to_its_own_login() -> None:
    response = client_for("non_staff").get(f"{SECOND}rule/")

    assert login_redirect(response, f"{SECOND}rule/", login="/second-admin/login/")


# ---------------------------------------------------------------------------
# 7. The dashboard's lazy groups card
# ---------------------------------------------------------------------------


@DB
@shop_rules
def test_summary_card_counts_the_groups_of_every_rule_not_enforced(shop: dict[str, Product]) -> None:
    client = client_for("viewer")
    counted: dict[str, tuple[str, int, int]] = {}  # key -> (state, groups, rows), as the lazy cells show them
    for key, row in rule_rows(client.get(RULES_PAGE).content).items():
        if row.attrs["data-state"] in ("missing", "invalid", "configured"):
            cell, rows = count_cell(client.get(COUNT, {"rule": key}))
            groups = 0 if cell == "none" else int(cell.split()[0])
            counted[key] = (row.attrs["data-state"], groups, int(rows["text"].replace(",", "")))
    assert counted[PRODUCT_KEY] == ("configured", 2, 5)
    assert counted[ORDER_KEY] == ("configured", 3, 7)

    with queries() as sql:
        response = client.get(SUMMARY, headers={"HX-Request": "true"})

    assert response.status_code == 200
    assert len(scans(sql)) == len(counted)  # one scan per rule not enforced, none for enforced ones
    card = re.search(
        r'<a class="integrity-card (\w+)" href="([^"]+)">\s*'
        r'<span class="integrity-card-value">(\d+)</span>\s*'
        r'<span class="integrity-card-title">Duplicate groups</span>\s*'
        r'<span class="integrity-card-detail">([^<]*)</span>',
        response.content.decode(),
    )
    assert card is not None
    declared = sum(g for state, g, _ in counted.values() if state != "configured")
    assert card[1] == ("critical" if declared else "warning")
    assert card[2].replace("&amp;", "&") == url(RULES_PAGE, enforcement="not_enforced")
    assert int(card[3]) == sum(g for _, g, _ in counted.values())
    with_groups = sum(1 for _, g, _ in counted.values() if g)
    total_rows = sum(r for _, _, r in counted.values())
    assert card[4] == f"{total_rows:,} rows in {with_groups} rules"


@DB
@override_settings(INTEGRITY_DUPLICATE_RULES=[COUPON_RULE], INTEGRITY_SCAN_TIMEOUT_MS=300)
def test_summary_card_says_which_rules_it_could_not_count() -> None:
    with table_locked(Coupon):
        response = client_for("viewer").get(SUMMARY)

    assert response.status_code == 200
    assert "1 rule not counted (timed out)" in text(response)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Acme Ltd", "Acme Ltd"),
        (" Acme Ltd", "␣Acme Ltd"),
        ("Acme Ltd  ", "Acme Ltd␣␣"),
        ("Acme  Ltd", "Acme␣␣Ltd"),
        ("Acme\tLtd\n", "Acme⇥Ltd↵"),
        ("   ", "␣␣␣"),
        ("Acme\u00a0Ltd", "Acme<U+00A0>Ltd"),  # a non-breaking space
        ("Acme\u200bLtd", "Acme<U+200B>Ltd"),  # a zero-width space
        ("\ufeffAcme", "<U+FEFF>Acme"),  # a byte order mark from a CSV import
        ("Café", "Café"),  # composed (NFC): nothing to point out
        ("Cafe\u0301", "Cafe<U+0301>"),  # decomposed: unequal to the composed one, and shown so
    ],
)
def test_whitespace_that_makes_values_differ_is_visible(value: str, shown: str) -> None:
    assert plain(value) == shown


def test_invisible_markers_are_labelled_and_the_rest_escaped() -> None:
    html = marked("<b>\u00a0x</b> ")
    assert html == (
        '&lt;b&gt;<span class="integrity-invisible" title="U+00A0 NO-BREAK SPACE">&lt;U+00A0&gt;</span>'
        'x&lt;/b&gt;<span class="integrity-invisible" title="U+0020 SPACE">␣</span>'
    )
