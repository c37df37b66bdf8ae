"""The unique-rules stories: uniqueness rules in every enforcement state, and the duplicates behind them.

Loaded by :func:`demo.seed.load`; the demo command also uses the migration
helpers to leave the ``Lower(email)`` rule unapplied, as in the story's
"my migration that adds unique fails".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections
from django.db.backends.utils import CursorWrapper

from demo.crm.models import (
    Account,
    Company,
    Customer,
    Device,
    LegacyContact,
    Membership,
    Mentorship,
    Subscriber,
)

# Uniqueness rules and duplicates. ---------------------------------------------

CRM_EMAIL_RULE = "0005_customer_email_ci"
CRM_BEFORE_EMAIL_RULE = "0004_subscriber_email_uniq"
SUBSCRIBER_INDEX = "crm_subscriber_email_uniq"
MENTORING_USERS = ["ann.lee", "ben.okafor", "chloe.martin", "dev.patel", "eli.novak"]

# Company names are unique as written (enforced), so one company imported three
# times under spellings that differ by case and whitespace gets in three
# times, with the same VAT number: vat_number's unique constraint was dropped.
COMPANIES = [
    ("Acme Ltd", "GB123456789"),
    (" Acme Ltd", "GB123456789"),
    ("acme ltd", "GB123456789"),
    ("Globex GmbH", "DE811907980"),
    ("Globex", "DE811907980"),
    ("Initech", "FR40303265045"),
    ("Umbrella Corp", None),
    ("Hooli", None),
    ("Stark Industries", "US-0001112"),
]
PEOPLE = [
    "Maria Garcia", "Liam Smith", "Noah Jones", "Olivia Brown", "Emma Wilson", "Lucas Taylor",
    "Mia Davies", "Sofia Rossi", "Yuki Tanaka", "Omar Haddad", "Priya Shah", "Lena Vogel",
    "Tom Becker", "Ines Costa", "Jonas Berg", "Sara Lind", "Marek Kowalski", "Aiko Mori",
    "Hugo Martin", "Chloe Dubois", "Ravi Kumar", "Zoe Clark", "Felix Wagner", "Nina Petrova",
    "Diego Lopez", "Hana Kim", "Oscar Nilsson", "Lea Moreau", "Ivan Horvat", "Grace Okoye",
]  # fmt: skip
# The second import of the same CRM export: emails that differ only by case
# (the Lower(email) rule of migration 0005) and names that differ only by case
# or surrounding spaces (the configured rule customer_name_ci).
REIMPORTED = [
    ("Ann@example.com", "Ann Lee", "Acme Ltd"),
    ("ann@example.com", "ann lee", " Acme Ltd"),
    ("ANN@EXAMPLE.COM", " Ann Lee ", "acme ltd"),
    ("Ben.Okafor@example.com", "Ben Okafor", "Globex"),
    ("ben.okafor@example.com", "BEN OKAFOR", "Globex GmbH"),
    ("Chloe.Martin@example.com", "Chloe Martin", "Initech"),
    ("chloe.martin@Example.com", "chloe martin", "Initech"),
    ("dev@example.com", "Dev Patel", None),
    ("Dev@Example.com", "Dev Patel ", None),
    ("sales@hooli.example", "Hooli Sales", "Hooli"),
    ("Sales@Hooli.example", "hooli sales", "Hooli"),
    # Same names (give or take case and spaces), other emails: people to review.
    ("maria.garcia@umbrella.example", "Maria Garcia", "Umbrella Corp"),
    ("m.garcia@stark.example", "maria garcia ", "Stark Industries"),
    ("liam@acme.example", " Liam Smith", "Acme Ltd"),
]
SUBSCRIBERS = [
    *["news@example.com"] * 4,
    *["ann@example.com"] * 2,
    *["hello@globex.example"] * 2,
    *["Hello@globex.example"],  # not a duplicate: the planned index is case-sensitive
    *[f"reader{i}@example.com" for i in range(1, 13)],
]
LEGACY_CONTACTS = [
    ("old.crm@example.com", "Old CRM"),
    ("old.crm@example.com", "Old CRM (copy)"),
    ("old.crm@example.com", "Old CRM (copy 2)"),
    ("info@initech.example", "Initech"),
    ("info@initech.example", "Initech Info"),
    *[(f"contact{i}@example.com", f"Contact {i}") for i in range(1, 11)],
]


def duplicates() -> None:
    """An import gone wrong, under every kind of uniqueness rule.

    The rows of each model are what the database lets in given what it really
    enforces: duplicates where a rule is dropped (Company.vat_number), not yet
    applied (Customer's Lower(email), migration 0005) or never indexed
    (LegacyContact.email); and rows that look alike but are no duplicates under
    the rule's NULL and condition semantics (Mentorship, Membership, Device).
    """
    companies_and_customers()
    mentorships_and_accounts()
    memberships_and_devices()
    LegacyContact.objects.bulk_create(LegacyContact(email=e, name=n) for e, n in LEGACY_CONTACTS)


def companies_and_customers() -> None:
    """Companies imported under three spellings; customers imported twice."""
    Company.objects.bulk_create(Company(name=n, vat_number=v) for n, v in COMPANIES)
    names = [n for n, _ in COMPANIES]
    rows = [
        Customer(email=f"{p.lower().replace(' ', '.')}@example.com", name=p, company_id=names[i % len(names)])
        for i, p in enumerate(PEOPLE)
    ]
    rows += [Customer(email=e, name=n, company_id=c) for e, n, c in REIMPORTED]
    # Like the import did: with migration 0005 applied (as in the test database)
    # the case variants are skipped; without it they all go in.
    Customer.objects.bulk_create(rows, ignore_conflicts=True)


def mentorships_and_accounts() -> None:
    """A mentee with three open requests and no mentor yet: NULLs are distinct."""
    user_model = get_user_model()
    ann, ben, chloe, dev, eli = (user_model.objects.get_or_create(username=n)[0] for n in MENTORING_USERS)
    Mentorship.objects.bulk_create(
        [
            Mentorship(mentor=ann, mentee=ben, topic="Code review"),
            Mentorship(mentor=ann, mentee=chloe, topic="SQL"),
            Mentorship(mentor=ben, mentee=dev, topic="Django admin"),
            Mentorship(mentor=None, mentee=eli, topic="Career"),
            Mentorship(mentor=None, mentee=eli, topic="Testing"),
            Mentorship(mentor=None, mentee=eli, topic="Public speaking"),
        ]
    )
    Account.objects.bulk_create(
        [Account(user=ann, plan="team"), Account(user=ben, plan="free"), Account(user=chloe, plan="pro")]
    )


def memberships_and_devices() -> None:
    """A code reused by expired memberships (partial rule); devices of no known vendor."""
    Membership.objects.bulk_create(
        [
            Membership(code="GOLD-001", active=False),
            Membership(code="GOLD-001", active=False),
            Membership(code="GOLD-001", active=True),
            Membership(code="SILVER-002", active=True),
            Membership(code="BRONZE-003", active=False),
            Membership(code="BRONZE-003", active=True),
        ]
    )
    Device.objects.bulk_create(
        [
            Device(vendor="Lenovo", serial="SN-100"),
            Device(vendor="Dell", serial="SN-100"),
            Device(vendor="Lenovo", serial="SN-101"),
            Device(vendor=None, serial="SN-200"),
            Device(vendor=None, serial="SN-201"),
        ]
    )


@contextmanager
def _autocommit_cursor(using: str) -> Iterator[CursorWrapper]:
    """A cursor on a connection of its own, in autocommit mode, outside any transaction.

    Its changes are committed at once, also when the caller is inside a
    transaction (a test's). A lock that transaction holds on the same table
    would make it wait forever: the lock timeout turns that into an error.
    """
    side = connections.create_connection(using)
    try:
        with side.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
            yield cursor
    finally:
        side.close()


def subscribers_with_failed_concurrent_index(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """A newsletter form without a uniqueness check, then a failed concurrent index build.

    ``CREATE UNIQUE INDEX CONCURRENTLY`` fails on the duplicate emails and
    PostgreSQL leaves an INVALID index of that name behind, which enforces
    nothing. It cannot run in a transaction: see :func:`_autocommit_cursor`.
    Returns the database's error; None when the table and the invalid index
    are already as this leaves them (rebuilding them needs a lock that a
    transaction which merely read the table, as a test's may have, holds).
    """
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    index = connection.ops.quote_name(SUBSCRIBER_INDEX)
    with _autocommit_cursor(using) as cursor:
        cursor.execute(f"SELECT email FROM {table} ORDER BY id")  # noqa: S608
        rows = [email for (email,) in cursor.fetchall()]
        cursor.execute(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [SUBSCRIBER_INDEX]
        )
        if rows == SUBSCRIBERS and cursor.fetchone() == (True,):
            return None
        cursor.execute(f"DROP INDEX IF EXISTS {index}")
        _empty_subscribers(cursor)
        cursor.executemany(f"INSERT INTO {table} (email) VALUES (%s)", [[e] for e in SUBSCRIBERS])  # noqa: S608
        try:
            cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON {table} (email)")
        except IntegrityError as exc:
            return str(exc)
    raise AssertionError(f"{SUBSCRIBER_INDEX} was built: the subscribers have no duplicates")


def undo_failed_concurrent_index(using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop the invalid index and the subscribers, committed at once (as the story made them)."""
    with _autocommit_cursor(using) as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {connection.ops.quote_name(SUBSCRIBER_INDEX)}")
        _empty_subscribers(cursor)


def _empty_subscribers(cursor: CursorWrapper) -> None:
    # DELETE, not TRUNCATE: it does not wait for transactions that only read the table.
    table = Subscriber._meta.db_table
    cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")  # noqa: S608
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false)", [table])


def migrate_before_email_rule() -> None:
    """Migrate everything, then take crm back to just before its Lower(email) rule.

    A database left by an earlier demo still holds the customers on which
    migration 0005 fails, so they go first (:func:`load` brings them back).
    """
    if Customer._meta.db_table in connection.introspection.table_names():
        Customer.objects.all().delete()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("migrate", "crm", CRM_BEFORE_EMAIL_RULE, interactive=False, verbosity=0)


def apply_email_rule() -> str | None:
    """Try to apply migration crm.0005 on the loaded data.

    Returns the database's error (duplicates block it, as in the story), or
    None when the migration applied.
    """
    deferred = connection.in_atomic_block
    if deferred:
        # Rows inserted earlier in the same transaction (a test's) leave deferred
        # foreign key checks pending, and CREATE INDEX refuses to run then.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    try:
        call_command("migrate", "crm", CRM_EMAIL_RULE, interactive=False, verbosity=0)
    except IntegrityError as exc:
        return str(exc)
    finally:
        if deferred:
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    return None
