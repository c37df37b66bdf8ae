"""Parsing IntegrityErrors: real violations of every kind on PostgreSQL and SQLite, MySQL from its texts.

Every PostgreSQL and SQLite error here is provoked for real (demo and merging
models, or tables made with SQL inside the test's transaction) and caught in
``transaction.atomic()`` so that the test's transaction survives. There is no
MySQL server here: its errors are exceptions built with the ``args`` MySQLdb
gives them (code, message), wrapped the way Django wraps them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from demo.crm.models import Customer, Device, Mentorship
from demo.metrics.models import ArchivedEntry, Entry
from demo.shop.models import Order as ShopOrder
from demo.shop.models import Product, Tag
from integrity.events.violations import (
    CHECK,
    EXCLUSION,
    FOREIGN_KEY,
    NOT_NULL,
    UNIQUE,
    UNKNOWN,
    Violation,
    parse,
    resolve,
)
from tests.merging.models import Order, Person

pytestmark = pytest.mark.django_db(databases=["default", "legacy"])

TAG_NAME = "default:shop.Tag:unique:name"
EMAIL_CI = "default:crm.Customer:crm_customer_email_ci_uniq"
MENTORSHIP = "default:crm.Mentorship:unique_together:mentee,mentor"
DEVICE = "default:crm.Device:crm_device_vendor_serial_uniq"
ORDER_TO_PERSON = ("merging_order", "merging_person")  # table, referenced table
ORDER_MODEL = ("merging.Order", ("person",))  # model, fields


def provoke(action: Callable[[], Any], using: str = "default") -> IntegrityError:
    """The IntegrityError ``action`` raises, its savepoint rolled back."""
    with pytest.raises(IntegrityError) as info, transaction.atomic(using=using):
        action()
    return info.value


def sql(statement: str, params: tuple[Any, ...] = (), using: str = "default") -> Callable[[], None]:
    def run() -> None:
        with connections[using].cursor() as cursor:
            cursor.execute(statement, params)

    return run


def parsed(action: Callable[[], Any], using: str = "default") -> Violation:
    error = provoke(action, using)
    with CaptureQueriesContext(connections[using]) as queries:
        violation = parse(error, using)
    assert not queries.captured_queries, "parse() must never touch the database"
    return violation


# PostgreSQL: unique ------------------------------------------------------------------------------


def test_primary_key() -> None:
    tag = Tag.objects.create(name="a")
    v = parsed(lambda: Tag(id=tag.id, name="b").save(force_insert=True))
    assert (v.kind, v.sqlstate, v.vendor) == (UNIQUE, "23505", "postgresql")
    assert (v.constraint, v.schema, v.table) == ("shop_tag_pkey", "public", "shop_tag")
    assert (v.columns, v.values, v.model, v.fields) == (("id",), (str(tag.id),), "shop.Tag", ("id",))
    assert v.primary_key and v.rule is None
    assert v.message == 'duplicate key value violates unique constraint "shop_tag_pkey"'
    assert v.detail == f"Key (id)=({tag.id}) already exists."


def test_unique_field_with_commas_quotes_and_parentheses() -> None:
    name = """O'Hara, "the (first)", 1)=(2"""
    Tag.objects.create(name=name)
    v = parsed(lambda: Tag.objects.create(name=name))
    assert (v.kind, v.table, v.columns, v.values) == (UNIQUE, "shop_tag", ("name",), (name,))
    assert (v.model, v.fields, v.rule, v.primary_key) == ("shop.Tag", ("name",), TAG_NAME, False)


def test_the_text_null_is_not_sql_null() -> None:
    Tag.objects.create(name="null")
    assert parsed(lambda: Tag.objects.create(name="null")).values == ("null",)


def test_unique_together_enforced_by_an_index_in_the_other_column_order() -> None:
    mentor, mentee = User.objects.create(username="mentor"), User.objects.create(username="mentee")
    Mentorship.objects.create(mentor=mentor, mentee=mentee, topic="a")
    v = parsed(lambda: Mentorship.objects.create(mentor=mentor, mentee=mentee, topic="b"))
    assert v.constraint == "crm_mentorship_mentor_mentee_uniq"
    assert v.columns == ("mentor_id", "mentee_id")
    assert v.values == (str(mentor.id), str(mentee.id))
    assert (v.model, v.fields, v.rule) == ("crm.Mentorship", ("mentor", "mentee"), MENTORSHIP)


def test_expression_unique_constraint() -> None:
    Customer.objects.create(email="Ann@Example.com", name="Ann")
    v = parsed(lambda: Customer.objects.create(email="ann@example.COM", name="Ann again"))
    assert (v.constraint, v.table, v.model) == ("crm_customer_email_ci_uniq", "crm_customer", "crm.Customer")
    assert v.columns == ("lower(email::text)",) and v.values == ("ann@example.com",)
    assert v.fields == () and v.rule == EMAIL_CI


def test_nulls_not_distinct_and_a_value_holding_a_comma() -> None:
    Device.objects.create(vendor=None, serial="S1")
    v = parsed(lambda: Device.objects.create(vendor=None, serial="S1"))
    assert (v.columns, v.values, v.rule) == (("vendor", "serial"), (None, "S1"), DEVICE)
    assert v.fields == ("vendor", "serial")
    Device.objects.create(vendor="Acme, Inc.", serial="S2")
    v = parsed(lambda: Device.objects.create(vendor="Acme, Inc.", serial="S2"))
    # Three pieces for two columns: which value holds the comma is not knowable.
    assert (v.columns, v.values, v.rule) == (("vendor", "serial"), ("Acme, Inc., S2",), DEVICE)


def test_auto_created_many_to_many_table() -> None:
    product, tag = Product.objects.create(id=100001, name="p"), Tag.objects.create(name="t")  # explicit ids
    through = Product.tags.through
    through.objects.create(product=product, tag=tag)
    v = parsed(lambda: through.objects.create(product=product, tag=tag))
    assert (v.table, v.model, v.fields) == ("shop_product_tags", "shop.Product_tags", ("product", "tag"))
    assert v.values == (str(product.id), str(tag.id)) and not v.primary_key
    assert v.rule is None  # integrity.duplicates.rules has no rule for auto-created tables


def test_schema_qualified_tables_of_the_same_name() -> None:
    archived, plain = ArchivedEntry.objects.create(note="a"), Entry.objects.create(note="a")
    v = parsed(lambda: ArchivedEntry(id=archived.id, note="b").save(force_insert=True))
    assert (v.schema, v.table, v.constraint) == ("archive", "entry", "entry_pkey")
    assert (v.model, v.fields, v.primary_key) == ("metrics.ArchivedEntry", ("id",), True)
    v = parsed(lambda: Entry(id=plain.id, note="b").save(force_insert=True))
    assert (v.schema, v.table, v.model) == ("public", "entry", "metrics.Entry")


def test_quoted_column_names() -> None:
    odd = '"Odd, ""Name"""'
    sql(f"CREATE TABLE parse_odd ({odd} text, b text, CONSTRAINT parse_odd_pair UNIQUE ({odd}, b))")()
    sql("INSERT INTO parse_odd VALUES ('x', 'y')")()
    v = parsed(sql("INSERT INTO parse_odd VALUES ('x', 'y')"))
    assert (v.constraint, v.columns, v.values) == ("parse_odd_pair", ('Odd, "Name"', "b"), ("x", "y"))
    assert v.model is None and v.fields == ()


# PostgreSQL: foreign key -------------------------------------------------------------------------


def test_foreign_key_immediate() -> None:
    def insert() -> None:
        sql("SET CONSTRAINTS ALL IMMEDIATE")()
        Order.objects.create(person_id=999999)

    v = parsed(insert)
    assert (v.kind, v.sqlstate, v.table, v.referenced_table) == (FOREIGN_KEY, "23503", *ORDER_TO_PERSON)
    assert (v.columns, v.values, v.model, v.fields) == (("person_id",), ("999999",), *ORDER_MODEL)
    assert v.constraint and v.constraint.startswith("merging_order_person_id_") and v.rule is None


def test_foreign_key_deferred_until_check_constraints() -> None:
    def insert() -> None:
        Order.objects.create(person_id=888888)  # Django's foreign keys are INITIALLY DEFERRED
        connection.check_constraints()

    v = parsed(insert)
    assert (v.kind, v.table, v.referenced_table, v.values) == (FOREIGN_KEY, *ORDER_TO_PERSON, ("888888",))


def test_foreign_key_deferred_until_commit() -> None:
    """A connection of its own commits for real: the violation comes from COMMIT itself."""
    side = connections.create_connection("default")
    assert side.settings_dict["NAME"] == connection.settings_dict["NAME"]
    try:
        side.set_autocommit(False)
        with side.cursor() as cursor:
            cursor.execute("INSERT INTO merging_order (person_id, total) VALUES (777777, 0)")
        with pytest.raises(IntegrityError) as info:
            side.commit()
    finally:
        side.close()
    assert isinstance(info.value.__cause__, psycopg.errors.ForeignKeyViolation)
    v = parse(info.value)
    assert (v.kind, v.table, v.referenced_table, v.values) == (FOREIGN_KEY, *ORDER_TO_PERSON, ("777777",))
    assert (v.columns, v.model, v.fields) == (("person_id",), *ORDER_MODEL)


def test_delete_of_a_row_still_referenced() -> None:
    person = Person.objects.create(email="p@example.com")
    Order.objects.create(person=person)

    def delete() -> None:
        sql("SET CONSTRAINTS ALL IMMEDIATE")()
        sql("DELETE FROM merging_person WHERE id = %s", (person.id,))()

    v = parsed(delete)
    assert v.message.startswith('update or delete on table "merging_person" violates foreign key constraint')
    # The key is the deleted row's: table, columns and model are the referenced side.
    assert (v.table, v.referenced_table) == ("merging_person", "merging_order")
    assert (v.columns, v.values) == (("id",), (str(person.id),))
    assert (v.model, v.fields, v.primary_key) == ("merging.Person", ("id",), False)


# PostgreSQL: not null, check, exclusion ---------------------------------------------------------


def test_not_null() -> None:
    v = parsed(sql("INSERT INTO shop_tag (name) VALUES (NULL)"))
    assert (v.kind, v.sqlstate, v.constraint, v.table) == (NOT_NULL, "23502", None, "shop_tag")
    assert (v.columns, v.values, v.model, v.fields) == (("name",), (None,), "shop.Tag", ("name",))
    assert v.detail and v.detail.startswith("Failing row contains (")


def test_check() -> None:
    product = Product.objects.create(id=100001, name="p")  # an explicit id: the sequence lags
    v = parsed(lambda: ShopOrder.objects.create(product=product, quantity=-1))  # PositiveIntegerField
    assert (v.kind, v.sqlstate, v.constraint) == (CHECK, "23514", "shop_order_quantity_check")
    assert (v.table, v.model, v.columns, v.values) == ("shop_order", "shop.Order", (), ())
    assert v.detail and v.detail.startswith("Failing row contains (") and v.rule is None


def test_exclusion() -> None:
    sql("CREATE TABLE parse_booking (during int4range, EXCLUDE USING gist (during WITH &&))")()
    sql("INSERT INTO parse_booking (during) VALUES ('[1,5)')")()
    v = parsed(sql("INSERT INTO parse_booking (during) VALUES ('[3,8)')"))
    assert (v.kind, v.sqlstate, v.constraint) == (EXCLUSION, "23P01", "parse_booking_during_excl")
    assert (v.table, v.columns, v.values) == ("parse_booking", ("during",), ("[3,8)",))
    assert v.detail == "Key (during)=([3,8)) conflicts with existing key (during)=([1,5))."


def test_driver_exception_and_text_alone() -> None:
    Tag.objects.create(name="x, y")
    error = provoke(lambda: Tag.objects.create(name="x, y"))
    assert parse(error.__cause__ or error) == parse(error)
    # The text alone: the primary message of a unique violation names no table, so no model either.
    from_text = parse(IntegrityError(str(error.__cause__)))
    assert (from_text.kind, from_text.sqlstate, from_text.constraint) == (UNIQUE, None, "shop_tag_name_key")
    assert (from_text.columns, from_text.values) == (("name",), ("x, y",))
    assert from_text.table is None and from_text.model is None


def psycopg2_error(schema: str = "public") -> IntegrityError:
    """What Django raises over psycopg2 (not installed here): the same ``diag`` names, ``pgcode``."""

    class Diag:
        sqlstate = column_name = None
        constraint_name, schema_name, table_name = "shop_tag_name_key", schema, "shop_tag"
        message_primary = 'duplicate key value violates unique constraint "shop_tag_name_key"'
        message_detail = "Key (name)=(a) already exists."

    class Psycopg2Error(Exception):
        pgcode, diag = "23505", Diag()

    error = IntegrityError("wrapped")
    error.__cause__ = Psycopg2Error("duplicate key value ...")
    return error


def test_psycopg2_alike_errors_by_their_attributes() -> None:
    v = parse(psycopg2_error())
    assert (v.kind, v.sqlstate, v.constraint) == (UNIQUE, "23505", "shop_tag_name_key")
    assert (v.values, v.model, v.rule) == (("a",), "shop.Tag", TAG_NAME)


def test_unqualified_tables_are_those_on_the_search_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse(psycopg2_error("tenant")).model is None
    options = {"options": "-c search_path=tenant,public"}
    monkeypatch.setitem(
        connection.settings_dict, "OPTIONS", {**connection.settings_dict["OPTIONS"], **options}
    )
    assert parse(psycopg2_error("tenant")).model == "shop.Tag"


# Never a query on a failed transaction; resolve() when the catalogs know more ------------------


def test_inside_a_failed_transaction_nothing_is_queried() -> None:
    Tag.objects.create(name="dup")
    with transaction.atomic():
        # No savepoint of its own: the whole transaction fails.
        with pytest.raises(IntegrityError) as info, connection.cursor() as cursor:
            cursor.execute("INSERT INTO shop_tag (name) VALUES ('dup')")
        with CaptureQueriesContext(connection) as queries:
            v = parse(info.value)
            assert resolve(v) is v
        transaction.set_rollback(True)
    assert not queries.captured_queries
    assert (v.rule, v.model) == (TAG_NAME, "shop.Tag")


def test_resolve_finds_the_rule_of_an_index_renamed_by_hand() -> None:
    sql("ALTER INDEX crm_customer_email_ci_uniq RENAME TO customers_lower_email_by_hand")()
    Customer.objects.create(email="bob@example.com", name="Bob")
    v = parsed(lambda: Customer.objects.create(email="BOB@example.com", name="Bob"))
    assert (v.constraint, v.model, v.rule) == ("customers_lower_email_by_hand", "crm.Customer", None)
    assert resolve(v).rule == EMAIL_CI
    not_unique = parsed(sql("INSERT INTO shop_tag (name) VALUES (NULL)"))
    assert resolve(not_unique) is not_unique


def test_unknown() -> None:
    v = parse(IntegrityError("something else"))
    assert (v.kind, v.vendor, v.table, v.message) == (UNKNOWN, "postgresql", None, "something else")


# SQLite ------------------------------------------------------------------------------------------

LEGACY_TABLES = [
    "CREATE TABLE legacy_parent (id integer PRIMARY KEY)",
    "CREATE TABLE legacy_item (id integer PRIMARY KEY, code text NOT NULL, a text, b text,"
    " qty integer CONSTRAINT legacy_item_qty_positive CHECK (qty > 0),"
    " parent_id integer REFERENCES legacy_parent (id), UNIQUE (a, b))",
    "CREATE UNIQUE INDEX legacy_item_code_lower ON legacy_item (lower(code))",
    "INSERT INTO legacy_item (id, code, a, b, qty) VALUES (1, 'x', 'a', 'b', 1)",
]


@pytest.mark.parametrize(
    ("values", "kind", "table", "columns", "constraint", "primary_key"),
    [
        ("(1, 'y', 'a', 'c', 1, NULL)", UNIQUE, "legacy_item", ("id",), None, True),
        ("(2, 'y', 'a', 'b', 1, NULL)", UNIQUE, "legacy_item", ("a", "b"), None, False),
        ("(2, 'X', 'q', 'c', 1, NULL)", UNIQUE, None, (), "legacy_item_code_lower", False),
        ("(2, NULL, 'q', 'c', 1, NULL)", NOT_NULL, "legacy_item", ("code",), None, False),
        ("(2, 'y', 'q', 'c', 0, NULL)", CHECK, None, (), "legacy_item_qty_positive", False),
        ("(2, 'y', 'q', 'c', 1, 9)", FOREIGN_KEY, None, (), None, False),
    ],
)
def test_sqlite(values, kind, table, columns, constraint, primary_key) -> None:
    for statement in LEGACY_TABLES:
        sql(statement, using="legacy")()
    v = parsed(sql(f"INSERT INTO legacy_item VALUES {values}", using="legacy"), using="legacy")
    assert (v.kind, v.sqlstate, v.vendor, v.schema) == (kind, None, "sqlite", None)
    assert (v.table, v.columns, v.constraint, v.primary_key) == (table, columns, constraint, primary_key)
    assert v.values == ((None,) if kind == NOT_NULL else ())
    assert v.model is None  # nothing lives on "legacy"


# MySQL, from exceptions built like MySQLdb's (no server here) ----------------------------------

MySQLdbIntegrityError = type("IntegrityError", (Exception,), {"__module__": "MySQLdb._exceptions"})
FK_FAILS = "a foreign key constraint fails"
FK_CLAUSE = (
    "(`integrity`.`merging_order`, CONSTRAINT `merging_order_person_id_5f2a9c1e_fk_merging_person_id`"
    " FOREIGN KEY (`person_id`) REFERENCES `merging_person` (`id`))"
)


def mysql(code: int, message: str) -> IntegrityError:
    """What Django raises: its IntegrityError with the driver's args, ``from`` the driver's."""
    driver = MySQLdbIntegrityError(code, message)
    error = IntegrityError(*driver.args)
    error.__cause__ = driver
    return error


def test_mysql_duplicate_entry() -> None:
    v = parse(mysql(1062, "Duplicate entry 'Ann, O'Hara-1' for key 'shop_tag.name'"))
    assert (v.kind, v.sqlstate, v.vendor, v.constraint) == (UNIQUE, None, "mysql", "name")
    assert (v.table, v.values, v.model, v.rule) == ("shop_tag", ("Ann, O'Hara-1",), "shop.Tag", TAG_NAME)
    assert (v.columns, v.fields) == (("name",), ("name",))
    v = parse(mysql(1062, "Duplicate entry '5' for key 'shop_tag.PRIMARY'"))
    assert (v.constraint, v.primary_key, v.columns, v.values) == ("PRIMARY", True, ("id",), ("5",))
    v = parse(mysql(1062, "Duplicate entry '3-5' for key 'crm_mentorship_mentee_id_mentor_id_0e4f5c2d_uniq'"))
    # Before MySQL 8.0.19 the key is not prefixed with its table; "3-5" is two values joined by "-".
    assert (v.table, v.values, v.model, v.rule) == (None, ("3-5",), None, None)


def test_mysql_foreign_keys() -> None:
    v = parse(mysql(1452, f"Cannot add or update a child row: {FK_FAILS} {FK_CLAUSE}"))
    assert (v.kind, v.schema, v.table, v.referenced_table) == (FOREIGN_KEY, "integrity", *ORDER_TO_PERSON)
    assert (v.columns, v.model, v.fields) == (("person_id",), *ORDER_MODEL)
    assert v.constraint == "merging_order_person_id_5f2a9c1e_fk_merging_person_id" and v.values == ()
    v = parse(mysql(1451, f"Cannot delete or update a parent row: {FK_FAILS} {FK_CLAUSE}"))
    assert (v.table, v.columns, v.model) == ("merging_person", ("id",), "merging.Person")
    assert v.referenced_table == "merging_order"
    v = parse(mysql(1452, f"Cannot add or update a child row: {FK_FAILS}"))  # older servers say no more
    assert (v.kind, v.table, v.constraint) == (FOREIGN_KEY, None, None)


def test_mysql_not_null_and_checks() -> None:
    v = parse(mysql(1048, "Column 'name' cannot be null"))
    assert (v.kind, v.columns, v.values, v.table) == (NOT_NULL, ("name",), (None,), None)
    v = parse(mysql(3819, "Check constraint 'shop_order_quantity' is violated."))
    assert (v.kind, v.constraint, v.table) == (CHECK, "shop_order_quantity", None)
    v = parse(mysql(4025, "CONSTRAINT `shop_order_quantity` failed for `integrity`.`shop_order`"))  # MariaDB
    assert (v.kind, v.constraint, v.schema) == (CHECK, "shop_order_quantity", "integrity")
    assert (v.table, v.model) == ("shop_order", "shop.Order")


def test_mysql_from_text_only() -> None:
    text = IntegrityError(str((1062, "Duplicate entry 'a' for key 'shop_tag.name'")))
    assert (parse(text).vendor, parse(text).constraint, parse(text).rule) == ("mysql", "name", TAG_NAME)
    bare = parse(IntegrityError("Column 'code' cannot be null"))
    assert (bare.vendor, bare.kind, bare.columns) == ("mysql", NOT_NULL, ("code",))
