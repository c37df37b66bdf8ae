"""Demo data that reproduces real IntegrityError stories, reloaded on every ``manage.py demo``.

Each function leaves one table in the state a real project ends up in:
sequences behind their data (a data migration and a ``bulk_create`` import
with explicit ids, MAX + 1 ticket numbers), a gap, an int4 key close to
overflow, empty tables, and the same table name in two schemas; and
duplicates under uniqueness rules in every state the database can be in.
"""

from __future__ import annotations

from django.db import connection, transaction

from demo import seed_crm, seed_sales
from demo.clinic.models import Doctor
from demo.helpdesk.models import Ticket
from demo.metrics.models import ArchivedEntry, Entry, LegacyCounter, Reading
from demo.shop.models import Coupon, Order, Product, Tag

DEMO_TABLES = [
    "shop_order",
    "shop_product_tags",
    "shop_product",
    "shop_tag",
    "shop_coupon",
    "helpdesk_comment",
    "helpdesk_ticket",
    "metrics_reading",
    "legacy_counter",
    "entry",
    '"archive"."entry"',
    "metrics_invoice",
    "clinic_doctor",
    "crm_customer",
    "crm_company",
    "crm_mentorship",
    "crm_account",
    "crm_membership",
    "crm_device",
    "legacy_contact",
    *seed_sales.TABLES,
    # Not crm_subscriber: subscribers_with_failed_concurrent_index() empties it on
    # its own connection, which a lock taken here would block.
]
PRODUCTS = ["Keyboard", "Mouse", "Monitor", "Dock", "Headset", "Webcam", "Cable", "Stand"]


def reset() -> None:
    """Empty the demo tables and restart their sequences."""
    tables = ", ".join(t if t.startswith('"') else connection.ops.quote_name(t) for t in DEMO_TABLES)
    with connection.cursor() as cursor:
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: rows inserted
        # earlier in the same transaction (a second load() in one atomic block,
        # as in tests) leave pending checks, and TRUNCATE refuses to run then.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute("ALTER SEQUENCE ticket_sequence RESTART")


def products_from_data_migration() -> None:
    """A data migration with explicit ids: shop.0002 writes products 1..8 with explicit ids; the sequence stays at 1."""
    Product.objects.bulk_create(Product(id=i, name=n, price=10 * i) for i, n in enumerate(PRODUCTS, 1))
    tags = [Tag.objects.create(name=n) for n in ("office", "audio", "video")]
    Product.objects.get(id=5).tags.add(tags[1])
    Product.objects.get(id=6).tags.add(tags[2])


def orders_from_import() -> None:
    """An import keeps the old system's ids with ``bulk_create``: the sequence is behind."""
    Order.objects.bulk_create(
        Order(id=i, product_id=1 + i % len(PRODUCTS), quantity=1 + i % 3) for i in range(1, 501)
    )


def coupons_with_gap() -> None:
    """The newest coupons were deleted: the sequence is ahead of the data (harmless)."""
    for code in ("WELCOME", "SPRING", "SUMMER", "AUTUMN", "WINTER"):
        Coupon.objects.create(code=code)
    Coupon.objects.filter(code__in=("AUTUMN", "WINTER")).delete()


def tickets_numbered_max_plus_one() -> None:
    """Ticket numbers were MAX + 1 in Python; ``ticket_sequence`` never moved."""
    for n in range(1, 41):
        Ticket.objects.create(number=n, subject=f"Printer on floor {n % 7} is jammed")


def readings_near_overflow() -> None:
    """An int4 key far along: ~91% of 2,147,483,647 is used (critical)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('metrics_reading', 'id'), 1950000000)")
    Reading.objects.bulk_create(Reading(value=v / 10) for v in range(25))


def legacy_and_schemas() -> None:
    """A serial column made by hand (ok), and two tables named ``entry``.

    ``public.entry`` got rows restored with explicit ids (behind);
    ``archive.entry`` was filled normally (ok): the two must never mix.
    """
    for name in ("visits", "downloads", "signups"):
        LegacyCounter.objects.create(name=name)
    Entry.objects.bulk_create(Entry(id=i, note=f"restored {i}") for i in range(1, 6))
    for i in range(3):
        ArchivedEntry.objects.create(note=f"archived {i}")


def doctors_with_locale_manager() -> None:
    """A hidden row: Doctor's base manager filters by locale (see the W001 check)."""
    Doctor.everyone.bulk_create(
        [
            Doctor(name="Dr. Amal", locale="en"),
            Doctor(name="Dr. Benoît", locale="fr"),
            Doctor(name="Dr. Chen"),
        ]
    )


def load() -> None:
    """Reset and reload every story: one transaction, then the failed concurrent index.

    ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction, so that story
    uses a connection of its own, after the others (see
    :func:`demo.seed_crm.subscribers_with_failed_concurrent_index`).
    """
    with transaction.atomic():
        reset()
        products_from_data_migration()
        orders_from_import()
        coupons_with_gap()
        tickets_numbered_max_plus_one()
        readings_near_overflow()
        legacy_and_schemas()
        doctors_with_locale_manager()
        seed_crm.duplicates()
        seed_sales.load()
    seed_crm.subscribers_with_failed_concurrent_index()
