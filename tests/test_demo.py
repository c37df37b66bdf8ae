"""The demo: ``demo.seed.load()`` reproduces each story, and ``manage.py demo --no-serve`` prepares it."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count, F
from django.db.models.functions import Lower, Trim

from demo import seed, seed_crm
from demo.clinic.models import Doctor, current_locale
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
from demo.helpdesk.models import Ticket
from demo.shop.models import Product
from integrity import sequences
from integrity.sequences import SequenceInfo

pytestmark = pytest.mark.django_db(databases="__all__")

BEHIND = [
    ("shop.Product", "id"),
    ("shop.Order", "id"),
    ("metrics.Entry", "id"),
    ("helpdesk.Ticket", "number"),
]


def default_sequences() -> dict[tuple[str, str], SequenceInfo]:
    [report] = sequences.collect(["default"])
    return {(i.model, i.column): i for i in report.sequences}


def run_integrity(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("integrity", "sequences", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _drop_the_failed_index_afterwards(django_db_blocker):
    """The failed concurrent index is committed outside the tests' transactions: undo it."""
    yield
    with django_db_blocker.unblock():
        seed_crm.undo_failed_concurrent_index()


@pytest.fixture
def loaded() -> dict[tuple[str, str], SequenceInfo]:
    seed.load()
    return default_sequences()


@pytest.mark.parametrize(("model", "column"), BEHIND)
def test_stories_with_a_sequence_behind(loaded, model, column):
    info = loaded[(model, column)]
    assert info.status == "behind"
    assert info.next_value is not None and info.max_value is not None
    assert info.next_value <= info.max_value


def test_exactly_the_story_sequences_are_behind(loaded):
    assert sorted(k for k, i in loaded.items() if i.status == "behind") == sorted(BEHIND)


def test_seed_001_products_collide_on_the_next_insert(loaded):
    """What the user of the demo sees before a resync: duplicate key on insert."""
    assert (loaded[("shop.Product", "id")].next_value, loaded[("shop.Product", "id")].max_value) == (1, 8)
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        Product.objects.create(name="Speaker")


def test_import_left_orders_behind(loaded):
    info = loaded[("shop.Order", "id")]
    assert (info.next_value, info.max_value) == (1, 500)


def test_coupons_have_a_gap(loaded):
    info = loaded[("shop.Coupon", "id")]
    assert (info.status, info.next_value, info.max_value) == ("ahead", 6, 3)


def test_readings_are_close_to_int4_overflow(loaded):
    info = loaded[("metrics.Reading", "id")]
    assert info.status == "ok"
    assert info.column_type == "integer"
    assert info.capacity_level == "critical"
    assert info.capacity is not None and 0.90 <= info.capacity < 1.0


def test_ticket_numbers_are_behind_with_a_type_mismatch(loaded):
    info = loaded[("helpdesk.Ticket", "number")]
    assert info.sequence == "public.ticket_sequence"
    assert (info.column_type, info.sequence_type) == ("integer", "bigint")
    assert info.type_mismatch is True
    assert (info.next_value, info.max_value) == (1, 40)
    # The other sequences of the demo are consistent with their columns.
    assert [k for k, i in loaded.items() if i.type_mismatch] == [("helpdesk.Ticket", "number")]


def test_invoices_are_empty_and_start_at_1000(loaded):
    info = loaded[("metrics.Invoice", "id")]
    assert (info.status, info.next_value, info.max_value) == ("empty", 1000, None)


def test_two_tables_named_entry_never_mix(loaded):
    archived = loaded[("metrics.ArchivedEntry", "id")]
    entry = loaded[("metrics.Entry", "id")]
    assert (archived.table, archived.status, archived.max_value) == ("archive.entry", "ok", 3)
    assert (entry.table, entry.status, entry.max_value) == ("public.entry", "behind", 5)


def test_legacy_serial_table_is_ok(loaded):
    info = loaded[("metrics.LegacyCounter", "id")]
    assert (info.kind, info.status, info.max_value) == ("serial", "ok", 3)


def test_seed_000_doctors_are_hidden_by_the_base_manager(loaded):
    assert Doctor.everyone.count() == 3
    assert current_locale.get() == "en"
    assert sorted(d.name for d in Doctor.objects.all()) == ["Dr. Amal", "Dr. Chen"]
    hidden = Doctor.everyone.get(locale="fr")
    hidden.name = "Dr. Benoît B."
    with pytest.raises(IntegrityError, match="duplicate key"), transaction.atomic():
        hidden.save()


def test_load_twice_gives_the_same_stories(loaded):
    seed.load()
    again = default_sequences()
    assert {k: (i.status, i.next_value, i.max_value) for k, i in again.items()} == {
        k: (i.status, i.next_value, i.max_value) for k, i in loaded.items()
    }
    assert Product.objects.count() == 8
    assert Ticket.objects.count() == 40


def test_the_command_finds_the_stories_and_fix_repairs_them(loaded):
    code, out = run_integrity("--json", "--database", "default")
    assert code == 1
    payload: list[dict[str, Any]] = json.loads(out)
    assert sorted((r["model"], r["column"]) for r in payload if r["status"] == "behind") == sorted(BEHIND)

    code, out = run_integrity("--fix")
    assert code == 0
    for model, column in BEHIND:
        assert f"fixed default:{model}.{column} " in out
    after = default_sequences()
    for key in BEHIND:
        info = after[key]
        assert info.status == "ok", key
        assert info.next_value == loaded[key].max_value + 1
    coupon = after[("shop.Coupon", "id")]
    assert (coupon.status, coupon.next_value) == ("ahead", 6)
    assert all(i.status != "behind" for r in sequences.collect() for i in r.sequences)
    assert run_integrity()[0] == 0
    # And the inserts of each story work again.
    assert Product.objects.create(name="Speaker").pk == 9
    # The column's DEFAULT nextval('ticket_sequence') numbers new tickets.
    ticket = Ticket.objects.create(subject="Scanner")
    ticket.refresh_from_db()
    assert ticket.number == 41


def test_demo_command_prepares_everything_twice():
    for _ in range(2):
        out = io.StringIO()
        call_command("demo", "--no-serve", stdout=out)
        text = out.getvalue()
        assert "Admin login:  username 'admin'  password 'admin'" in text
        assert "http://" not in text  # --no-serve: nothing is served, so no address is printed
        assert Product.objects.count() == 8
        assert default_sequences()[("shop.Product", "id")].status == "behind"
    user = get_user_model().objects.get(username="admin")
    assert user.is_staff and user.is_superuser and user.check_password("admin")


def test_demo_command_with_no_serve_prints_no_address(client):
    out = io.StringIO()
    call_command("demo", "0.0.0.0:9001", "--no-serve", stdout=out)
    assert "0.0.0.0:9001" not in out.getvalue() and "http://" not in out.getvalue()
    assert client.login(username="admin", password="admin")
    response = client.get("/admin/integrity/sequence/")
    assert response.status_code == 200
    # The page the command points to shows the seeded stories to the admin it created.
    for model, column in BEHIND:
        row = re.search(rf'<tr[^>]*id="seq-default-{model.replace(".", "-")}-{column}"[^>]*>', response.text)
        assert row and 'data-status="behind"' in row.group(0), model


# Uniqueness rules in every state the database can be in. --------------------


def crm_indexes() -> dict[str, tuple[bool, bool, str]]:
    """Index name -> (unique, valid, definition) for the crm tables, from the catalog."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, x.indisunique, x.indisvalid, pg_get_indexdef(x.indexrelid)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname LIKE 'crm\\_%%' OR t.relname = 'legacy_contact'
            """
        )
        return {name: (unique, valid, definition) for name, unique, valid, definition in cursor.fetchall()}


def unique_indexes_on(table: str) -> list[str]:
    """The definitions of the valid unique indexes of a table, primary key excluded."""
    return sorted(
        d
        for n, (u, v, d) in crm_indexes().items()
        if u and v and f" ON public.{table} " in d and "(id)" not in d
    )


def groups(queryset: Any, key: Any) -> list[int]:
    """Sizes of the groups of rows sharing ``key`` (an expression), largest first."""
    rows = (
        queryset.annotate(k=F(key) if isinstance(key, str) else key)
        .values("k")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    return sorted((r["n"] for r in rows), reverse=True)


@pytest.fixture
def seeded() -> None:
    """The demo data (without the sequence report of ``loaded``)."""
    seed.load()


@pytest.fixture
def without_email_rule() -> None:
    """The test database has every migration; take crm back to before its Lower(email) rule."""
    call_command("migrate", "crm", seed_crm.CRM_BEFORE_EMAIL_RULE, verbosity=0)
    seed.load()


def applied_crm_migrations() -> set[str]:
    return {name for app, name in MigrationRecorder(connection).applied_migrations() if app == "crm"}


def test_company_name_is_enforced_and_vat_number_drifted(seeded):
    assert unique_indexes_on("crm_company") == [
        "CREATE UNIQUE INDEX crm_company_name_key ON public.crm_company USING btree (name)"
    ]
    # The column keeps Django's non-unique pattern index: no uniqueness from it.
    like = [d for d in crm_indexes().values() if "vat_number varchar_pattern_ops" in d[2]]
    assert [(u, v) for u, v, _ in like] == [(False, True)]
    assert groups(Company.objects.exclude(vat_number=None), "vat_number") == [3, 2]
    assert Company.objects.filter(vat_number=None).count() == 2
    with pytest.raises(IntegrityError, match="crm_company_name_key"), transaction.atomic():
        Company.objects.create(name="Acme Ltd")


def test_company_names_differ_only_by_case_and_spaces(seeded):
    # The exact-match rule lets one company in under three spellings.
    assert groups(Company.objects.all(), Lower(Trim("name"))) == [3]
    assert sorted(Company.objects.filter(vat_number="GB123456789").values_list("name", flat=True)) == [
        " Acme Ltd",
        "Acme Ltd",
        "acme ltd",
    ]
    # Customers point at companies by name (to_field), spaces and case included.
    assert Customer.objects.filter(company__name=" Acme Ltd").count() >= 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'crm_customer'::regclass AND contype = 'f'"
        )
        [(fk,)] = cursor.fetchall()
    assert fk.startswith("FOREIGN KEY (company_id) REFERENCES crm_company(name)")


def test_customer_email_rule_applied_skips_the_case_variants(seeded):
    """In the test database migration 0005 is applied: the import skips what it rejects."""
    assert unique_indexes_on("crm_customer") == [
        "CREATE UNIQUE INDEX crm_customer_email_ci_uniq ON public.crm_customer USING btree (lower((email)::text))"
    ]
    assert groups(Customer.objects.all(), Lower("email")) == []
    assert Customer.objects.count() == len(seed_crm.REIMPORTED) + len(seed_crm.PEOPLE) - 6


def test_customer_emails_differ_only_by_case_without_the_rule(without_email_rule):
    assert seed_crm.CRM_EMAIL_RULE not in applied_crm_migrations()
    assert unique_indexes_on("crm_customer") == []
    assert Customer.objects.count() == len(seed_crm.PEOPLE) + len(seed_crm.REIMPORTED)
    assert groups(Customer.objects.all(), Lower("email")) == [3, 2, 2, 2, 2]
    assert sorted(
        Customer.objects.filter(email__iexact="ann@example.com").values_list("email", flat=True)
    ) == [
        "ANN@EXAMPLE.COM",
        "Ann@example.com",
        "ann@example.com",
    ]
    # Exact emails are all different: only the case-insensitive rule sees them.
    assert groups(Customer.objects.all(), "email") == []


def test_the_email_rule_migration_fails_on_the_duplicates(without_email_rule):
    error = seed_crm.apply_email_rule()
    assert error is not None
    assert error.startswith('could not create unique index "crm_customer_email_ci_uniq"')
    assert "is duplicated" in error
    assert seed_crm.CRM_EMAIL_RULE not in applied_crm_migrations()
    assert "crm_customer_email_ci_uniq" not in crm_indexes()
    assert Customer.objects.count() == len(seed_crm.PEOPLE) + len(seed_crm.REIMPORTED)


def test_the_email_rule_migration_applies_once_the_duplicates_are_gone(without_email_rule):
    first: dict[str, int] = {}
    for pk, email in Customer.objects.order_by("pk").values_list("pk", "email"):
        first.setdefault(email.lower(), pk)
    Customer.objects.exclude(pk__in=first.values()).delete()
    assert seed_crm.apply_email_rule() is None
    assert seed_crm.CRM_EMAIL_RULE in applied_crm_migrations()
    assert crm_indexes()["crm_customer_email_ci_uniq"][:2] == (True, True)


def test_customer_names_differ_by_case_and_spaces_under_the_configured_rule(seeded):
    assert settings.INTEGRITY_DUPLICATE_RULES == [
        {
            "model": "crm.Customer",
            "fields": ["name"],
            "case_insensitive": True,
            "trim": True,
            "name": "customer_name_ci",
        }
    ]
    # With migration 0005 applied only the people with other emails are left: Maria Garcia, Liam Smith.
    assert groups(Customer.objects.all(), Lower(Trim("name"))) == [3, 2]
    # As written, only the two Maria Garcias are equal: the configured rule finds more.
    assert groups(Customer.objects.all(), "name") == [2]


def test_customer_names_group_of_three_without_the_email_rule(without_email_rule):
    # And the case variants of the second import: Ann Lee (3), Ben, Chloe, Dev, Hooli Sales.
    assert groups(Customer.objects.all(), Lower(Trim("name"))) == [3, 3, 2, 2, 2, 2, 2]


def test_mentorship_is_enforced_by_an_index_in_the_other_column_order(seeded):
    assert unique_indexes_on("crm_mentorship") == [
        "CREATE UNIQUE INDEX crm_mentorship_mentor_mentee_uniq ON public.crm_mentorship"
        " USING btree (mentor_id, mentee_id)"
    ]
    assert Mentorship._meta.unique_together == (("mentee", "mentor"),)
    first = Mentorship.objects.exclude(mentor=None).first()
    assert first is not None
    with pytest.raises(IntegrityError, match="crm_mentorship_mentor_mentee_uniq"), transaction.atomic():
        Mentorship.objects.create(mentor=first.mentor, mentee=first.mentee, topic="again")


def test_mentorships_without_a_mentor_are_not_duplicates(seeded):
    """Three requests of one mentee with a NULL mentor: NULLs are distinct in the index."""
    waiting = Mentorship.objects.filter(mentor=None)
    assert waiting.count() == 3
    assert waiting.values("mentee").distinct().count() == 1
    # A plain GROUP BY puts NULLs together: a naive scan would report a group of 3;
    # without the rows that have a NULL in the key, as the index sees them, none.
    naive = Mentorship.objects.values("mentee", "mentor").annotate(n=Count("pk")).filter(n__gt=1)
    assert [(r["mentor"], r["n"]) for r in naive] == [(None, 3)]
    assert not naive.exclude(mentor=None).exists()
    # And the database agrees that they are not duplicates: a fourth one goes in.
    Mentorship.objects.create(mentor=None, mentee=waiting[0].mentee, topic="Open source")
    assert waiting.count() == 4


def test_account_user_is_one_to_one(seeded):
    assert unique_indexes_on("crm_account") == [
        "CREATE UNIQUE INDEX crm_account_user_id_key ON public.crm_account USING btree (user_id)"
    ]
    account = Account.objects.select_related("user").first()
    assert account is not None and Account.objects.count() == 3
    with pytest.raises(IntegrityError, match="crm_account_user_id_key"), transaction.atomic():
        Account.objects.create(user=account.user, plan="free")


def test_membership_code_is_unique_among_active_ones_only(seeded):
    assert unique_indexes_on("crm_membership") == [
        "CREATE UNIQUE INDEX crm_membership_active_code_uniq ON public.crm_membership"
        " USING btree (code) WHERE active"
    ]
    gold = Membership.objects.filter(code="GOLD-001")
    assert sorted(gold.values_list("active", flat=True)) == [False, False, True]
    assert groups(Membership.objects.all(), "code") == [3, 2]
    assert groups(Membership.objects.filter(active=True), "code") == []
    Membership.objects.create(code="GOLD-001", active=False)
    with pytest.raises(IntegrityError, match="crm_membership_active_code_uniq"), transaction.atomic():
        Membership.objects.create(code="GOLD-001", active=True)


def test_device_vendor_and_serial_treat_nulls_as_equal(seeded):
    assert unique_indexes_on("crm_device") == [
        "CREATE UNIQUE INDEX crm_device_vendor_serial_uniq ON public.crm_device"
        " USING btree (vendor, serial) NULLS NOT DISTINCT"
    ]
    assert Device.objects.filter(vendor=None).count() == 2
    Device.objects.create(vendor="HP", serial="SN-200")
    with pytest.raises(IntegrityError, match="crm_device_vendor_serial_uniq"), transaction.atomic():
        Device.objects.create(vendor=None, serial="SN-200")


def test_subscribers_after_a_failed_concurrent_index(seeded):
    """The index of that name exists, but PostgreSQL marks it invalid: nothing is enforced."""
    assert crm_indexes()[seed_crm.SUBSCRIBER_INDEX] == (
        True,
        False,
        "CREATE UNIQUE INDEX crm_subscriber_email_uniq ON public.crm_subscriber USING btree (email)",
    )
    assert unique_indexes_on("crm_subscriber") == []
    assert groups(Subscriber.objects.all(), "email") == [4, 2, 2]
    Subscriber.objects.create(email="news@example.com")
    assert Subscriber.objects.filter(email="news@example.com").count() == 5


def test_the_concurrent_index_fails_again_after_an_undo():
    seed_crm.undo_failed_concurrent_index()
    assert seed_crm.SUBSCRIBER_INDEX not in crm_indexes()
    # Read: the rebuild must not wait for this transaction's lock on the table.
    assert Subscriber.objects.count() == 0
    error = seed_crm.subscribers_with_failed_concurrent_index()
    assert error is not None
    assert error.startswith('could not create unique index "crm_subscriber_email_uniq"')
    assert "DETAIL:  Key (email)=(" in error
    assert crm_indexes()[seed_crm.SUBSCRIBER_INDEX][:2] == (True, False)
    assert list(Subscriber.objects.order_by("pk").values_list("pk", "email")) == list(
        enumerate(seed_crm.SUBSCRIBERS, 1)
    )


def test_the_failed_index_is_left_as_it_is_when_already_in_place(seeded):
    """A second load after a read of the table (as a report does) must not wait for that read's lock."""
    assert Subscriber.objects.count() == len(seed_crm.SUBSCRIBERS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid FROM pg_index WHERE indexrelid = %s::regclass", [seed_crm.SUBSCRIBER_INDEX]
        )
        before = cursor.fetchone()
        assert seed_crm.subscribers_with_failed_concurrent_index() is None
        seed.load()
        cursor.execute(
            "SELECT indexrelid FROM pg_index WHERE indexrelid = %s::regclass", [seed_crm.SUBSCRIBER_INDEX]
        )
        assert cursor.fetchone() == before


def test_legacy_contacts_have_no_unique_index(seeded):
    assert LegacyContact._meta.managed is False
    assert LegacyContact._meta.get_field("email").unique is True
    assert [d for u, _, d in crm_indexes().values() if " public.legacy_contact " in d and u] == [
        "CREATE UNIQUE INDEX legacy_contact_pkey ON public.legacy_contact USING btree (id)"
    ]
    assert groups(LegacyContact.objects.all(), "email") == [3, 2]


def test_load_twice_gives_the_same_duplicates(without_email_rule):
    def counts() -> list[Any]:
        return [
            groups(Customer.objects.all(), Lower("email")),
            groups(Company.objects.exclude(vat_number=None), "vat_number"),
            groups(LegacyContact.objects.all(), "email"),
            Mentorship.objects.count(),
            Membership.objects.count(),
            Device.objects.count(),
            Account.objects.count(),
        ]

    before = counts()
    seed.load()
    assert counts() == before
    assert groups(Subscriber.objects.all(), "email") == [4, 2, 2]
    assert crm_indexes()[seed_crm.SUBSCRIBER_INDEX][:2] == (True, False)


def test_demo_command_leaves_the_email_rule_unapplied_and_says_why():
    for _ in range(2):
        out = io.StringIO()
        call_command("demo", "--no-serve", stdout=out)
        text = out.getvalue()
        assert (
            "As when a unique rule is added over old duplicates: migration crm.0005_customer_email_ci fails on"
            " them; see /admin/integrity/ (duplicates)"
        ) in text
        assert not re.search(r"\bseeds?\b", text, re.IGNORECASE)  # the stories in words, never by number
        assert 'could not create unique index "crm_customer_email_ci_uniq"' in text
        assert seed_crm.CRM_EMAIL_RULE not in applied_crm_migrations()
        assert seed_crm.CRM_BEFORE_EMAIL_RULE in applied_crm_migrations()
        assert "crm_customer_email_ci_uniq" not in crm_indexes()
        assert groups(Customer.objects.all(), Lower("email")) == [3, 2, 2, 2, 2]
        assert crm_indexes()[seed_crm.SUBSCRIBER_INDEX][:2] == (True, False)


def test_integrity_duplicates_on_the_demo_reports_every_story_and_exits_1(without_email_rule):
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "integrity", "duplicates", "--json", "--database", "default", stdout=out, stderr=io.StringIO()
        )
    assert exit_info.value.code == 1
    found = {(r["model"], r["description"]): r for r in json.loads(out.getvalue())}
    expected = {
        ("crm.Company", "vat_number"): ("missing", "Drift"),
        ("crm.Customer", "Lower(email)"): ("missing", "crm.0005_customer_email_ci"),
        ("crm.LegacyContact", "email"): ("missing", "managed = False"),
        ("crm.Subscriber", "email"): ("invalid", "invalid"),
        ("crm.Customer", "Lower(Trim(name))"): ("configured", "INTEGRITY_DUPLICATE_RULES"),
    }
    for key, (state, reason) in expected.items():
        rule = found[key]
        assert rule["enforcement"] == state, key
        assert reason in rule["reason"], key
        assert rule["groups"] >= 1 and rule["sample"], key
    largest = found[("crm.Customer", "Lower(email)")]["sample"][0]
    assert (largest["key"], largest["size"], len(largest["pks"])) == (["ann@example.com"], 3, 3)
    for key in [("crm.Company", "name"), ("crm.Mentorship", "mentee, mentor"), ("crm.Account", "user")]:
        assert found[key]["enforcement"] == "enforced" and found[key]["groups"] is None, key


def test_a_tag_name_rule_dropped_by_hand_is_clean_and_ready_to_enforce(seeded):
    from django.test import Client

    from demo.sales.models import Tag
    from integrity.duplicates import enforcement
    from integrity.duplicates.rules import get_rule

    rule = get_rule("default:sales.Tag:unique:name")
    state = enforcement.classify([rule])[rule.key]
    assert state.state == enforcement.MISSING
    assert unique_indexes_on("sales_tag") == []
    assert Tag.objects.count() == Tag.objects.values("name").distinct().count()  # no duplicates

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password="x"))
    page = client.get("/admin/integrity/duplicaterule/rule/", {"rule": rule.key})
    assert page.status_code == 200
    assert 'id="enforce-ready"' in page.content.decode()
    assert "ready to enforce" in page.content.decode()
