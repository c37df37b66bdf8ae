"""Scanning a rule for duplicate groups: NULL semantics, pages, totals, members, references, timeout.

To put duplicates in a table the test drops the index that enforces the rule
first (inside the test's transaction: the rollback brings it back).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.auth.models import User
from django.db import ProgrammingError, connection, connections, models
from django.test import override_settings
from django.test.utils import CaptureQueriesContext, isolate_apps

from demo.clinic.models import Doctor, current_locale
from demo.crm.models import Account, Company, Customer, Device, Membership, Mentorship
from demo.shop.models import Order, Product, Tag
from integrity import duplicates
from integrity.duplicates import Group, Reference, ScanTimedOut, group_of, references, scan, totals
from integrity.duplicates.relations import relations_to
from integrity.duplicates.rules import Rule, get_rule, rules_for
from tests.helpers import run_all as sql

pytestmark = pytest.mark.django_db(databases="__all__")

EMAIL_CI = "default:crm.Customer:crm_customer_email_ci_uniq"
NAME_CI = "default:crm.Customer:configured:customer_name_ci"
MENTORSHIP = "default:crm.Mentorship:unique_together:mentee,mentor"
MEMBERSHIP = "default:crm.Membership:crm_membership_active_code_uniq"
DEVICE = "default:crm.Device:crm_device_vendor_serial_uniq"
VAT = "default:crm.Company:unique:vat_number"
LEGACY = "default:crm.LegacyContact:unique:email"


def show_timeout(alias: str = "default") -> str:
    with connections[alias].cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def configured(model: str, fields: list[str], **options: object) -> Rule:
    """The configured rule ``model``/``fields`` (settings overridden only while it is derived)."""
    spec = {"model": model, "fields": fields, "name": "t", **options}
    with override_settings(INTEGRITY_DUPLICATE_RULES=[spec]):
        [rule] = [r for r in rules_for(["default"]) if r.name == "configured:t"]
    return rule


@pytest.fixture
def users() -> list[User]:
    return [User.objects.create(username=f"u{i}") for i in range(4)]


@pytest.fixture
def emails() -> list[Customer]:
    """Customers whose emails differ only by case; the Lower(email) index is dropped."""
    sql("DROP INDEX crm_customer_email_ci_uniq")
    return [
        Customer.objects.create(email=e, name=e)
        for e in ("ann@x", "bob@x", "ANN@x", "Ann@X", "BOB@x", "cy@x")
    ]


# --- NULL semantics, conditions, expressions ----------------------------------


def test_rows_with_a_null_key_part_are_never_duplicates_in_a_nulls_distinct_rule(users):
    sql("DROP INDEX crm_mentorship_mentor_mentee_uniq")
    u0, u1, u2, _ = users
    rows = [(u0, None)] * 3 + [(u0, u1)] * 2 + [(u1, u2)]
    made = [Mentorship.objects.create(mentee=a, mentor=b, topic="t") for a, b in rows]
    result = scan(get_rule(MENTORSHIP))
    assert result.groups == [Group((u0.pk, u1.pk), 2, [made[3].pk, made[4].pk])]
    assert (result.total_groups, result.total_rows, result.extra_rows) == (1, 2, 1)


def test_nulls_not_distinct_groups_the_nulls():
    sql("ALTER TABLE crm_device DROP CONSTRAINT crm_device_vendor_serial_uniq")
    rows = [(None, "S1")] * 3 + [("acme", "S1")] * 2 + [("acme", "S2"), (None, "S2")]
    made = [Device.objects.create(vendor=v, serial=s) for v, s in rows]
    result = scan(get_rule(DEVICE))
    assert result.groups == [
        Group((None, "S1"), 3, [d.pk for d in made[:3]]),
        Group(("acme", "S1"), 2, [d.pk for d in made[3:5]]),
    ]


def test_a_configured_rule_with_nulls_equal_groups_the_nulls(users):
    sql("DROP INDEX crm_mentorship_mentor_mentee_uniq")
    made = [Mentorship.objects.create(mentee=u, mentor=None, topic="t") for u in users[:3]]
    Mentorship.objects.create(mentee=users[0], mentor=users[1], topic="t")
    assert scan(configured("crm.Mentorship", ["mentor"], nulls_equal=True)).groups == [
        Group((None,), 3, [m.pk for m in made])
    ]
    assert scan(configured("crm.Mentorship", ["mentor"])).groups == []


def test_a_partial_rule_only_considers_rows_matching_its_condition():
    sql("DROP INDEX crm_membership_active_code_uniq")
    rows = [("A", True)] * 2 + [("A", False)] * 3 + [("B", False)] * 2 + [("C", True)]
    made = [Membership.objects.create(code=c, active=a) for c, a in rows]
    result = scan(get_rule(MEMBERSHIP))
    assert result.groups == [Group(("A",), 2, [made[0].pk, made[1].pk])]
    assert (result.total_groups, result.total_rows) == (1, 2)


def test_an_expression_rule_groups_by_the_expression(emails):
    result = scan(get_rule(EMAIL_CI))
    ann, bob = (
        [e.pk for e in emails if e.email.lower() == "ann@x"],
        [e.pk for e in emails if e.email.lower() == "bob@x"],
    )
    assert result.groups == [Group(("ann@x",), 3, ann), Group(("bob@x",), 2, bob)]


def test_a_configured_case_insensitive_trimmed_rule():
    made = [
        Customer.objects.create(email=f"{i}@x", name=n)
        for i, n in enumerate([" Ann ", "ann", "ANN  ", "Anne"])
    ]
    assert scan(get_rule(NAME_CI)).groups == [Group(("ann",), 3, [c.pk for c in made[:3]])]


def test_a_unique_field_of_an_unmanaged_table():
    sql("INSERT INTO legacy_contact (email, name) VALUES ('a@x', 'A'), ('a@x', 'B'), ('b@x', 'C')")
    [group] = scan(get_rule(LEGACY)).groups
    assert (group.key, group.size, len(group.pks)) == (("a@x",), 2, 2)


def test_every_row_counts_even_those_a_base_manager_hides():
    """clinic.Doctor's base manager shows one locale; the database's rule sees all rows."""
    made = [Doctor.everyone.create(name="Dr Ann", locale=loc) for loc in ("en", "fr")]
    Doctor.everyone.create(name="Dr Bob", locale="en")
    rule = configured("clinic.Doctor", ["name"])
    token = current_locale.set("en")
    try:
        assert scan(rule).groups == [Group(("Dr Ann",), 2, [d.pk for d in made])]
        assert group_of(rule, made[0].pk) == made
    finally:
        current_locale.reset(token)


# --- order, pages, sample, totals ------------------------------------------------


@pytest.fixture
def sized() -> dict[str, list[int]]:
    """Groups of Customer names (configured rule): d x4, c x3, a x2, b x2, and one lone e."""
    pks: dict[str, list[int]] = {}
    for name, n in [("b", 2), ("d", 4), ("a", 2), ("c", 3), ("e", 1)]:
        pks[name] = [Customer.objects.create(email=f"{name}{i}@x", name=name).pk for i in range(n)]
    return pks


def test_largest_groups_first_then_by_key(sized):
    result = scan(get_rule(NAME_CI))
    assert [(g.key, g.size) for g in result.groups] == [(("d",), 4), (("c",), 3), (("a",), 2), (("b",), 2)]
    assert [g.pks for g in result.groups] == [sized["d"], sized["c"], sized["a"], sized["b"]]
    assert (result.total_groups, result.total_rows, result.extra_rows) == (4, 11, 7)


def test_pages(sized, django_assert_num_queries):
    rule = get_rule(NAME_CI)
    page = scan(rule, limit=2, offset=1)
    assert ([g.key for g in page.groups], page.offset) == ([("c",), ("a",)], 1)
    assert (page.total_groups, page.total_rows) == (4, 11)
    assert [g.key for g in scan(rule, limit=2, offset=3).groups] == [("b",)]
    with CaptureQueriesContext(connection) as captured:
        past = scan(rule, limit=2, offset=4)  # an empty page still knows the totals: one more statement
    assert (past.groups, past.total_groups, past.total_rows) == ([], 4, 11)
    assert sum("HAVING" in q["sql"] for q in captured.captured_queries) == 2


def test_no_duplicates_no_second_statement():
    Customer.objects.create(email="a@x", name="a")
    with CaptureQueriesContext(connection) as captured:
        result = scan(get_rule(NAME_CI))
    assert (result.groups, result.total_groups, result.total_rows) == ([], 0, 0)
    assert sum("HAVING" in q["sql"] for q in captured.captured_queries) == 1


def test_page_size_comes_from_the_setting(sized):
    with override_settings(INTEGRITY_GROUPS_PER_PAGE=3):
        assert len(scan(get_rule(NAME_CI)).groups) == 3


def test_member_keys_are_capped_per_group_lowest_first():
    made = [Customer.objects.create(email=f"{i}@x", name="same").pk for i in range(12)]
    rule = get_rule(NAME_CI)
    assert scan(rule, sample=3).groups == [Group(("same",), 12, made[:3])]
    assert scan(rule).groups[0].pks == made[:10]  # INTEGRITY_GROUP_SAMPLE_SIZE's default
    with override_settings(INTEGRITY_GROUP_SAMPLE_SIZE=4):
        assert scan(rule).groups[0].pks == made[:4]


def test_totals_without_a_page(sized):
    assert totals(get_rule(NAME_CI)) == (4, 11)
    assert totals(get_rule(VAT)) == (0, 0)


# --- one statement, never a whole table ---------------------------------------------


def scan_statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "statement_timeout" not in q["sql"]]


def test_the_scan_is_one_group_by_having_statement_returning_only_the_page():
    sql("DROP INDEX crm_customer_email_ci_uniq")
    Customer.objects.bulk_create(Customer(email=f"user{i // 2}@x", name=f"n{i}") for i in range(5000))
    with CaptureQueriesContext(connection) as captured:
        result = scan(get_rule(EMAIL_CI), limit=10)
    [statement] = [s for s in scan_statements(captured) if "SAVEPOINT" not in s]
    # The grouped count, the page of groups around it, the rows of that page joined back, nothing else.
    assert statement.count("SELECT") == 4
    assert 'SELECT LOWER("crm_customer"."email") AS "k0"' in statement
    assert "GROUP BY 1 HAVING COUNT(*) > 1" in statement
    assert "COUNT(*) OVER ()" in statement and "SUM(" in statement
    assert "LIMIT 10 OFFSET 0) SELECT" in statement  # the page is cut before member keys are collected
    # NULLs are tested on the column (lower(x) is NULL exactly when x is), not by computing lower() twice.
    assert '"crm_customer"."email" IS NOT NULL' in statement
    assert (len(result.groups), result.total_groups, result.total_rows) == (10, 2500, 5000)
    assert [g.key for g in result.groups] == sorted((f"user{i}@x",) for i in range(2500))[:10]


def test_inside_a_transaction_the_scan_is_one_statement_in_a_savepoint_that_restores_the_timeout():
    Customer.objects.create(email="a@x", name="a")
    before = show_timeout()
    with CaptureQueriesContext(connection) as captured, override_settings(INTEGRITY_SCAN_TIMEOUT_MS=1234):
        scan(get_rule(NAME_CI))
    statements = [q["sql"] for q in captured.captured_queries]
    assert len(statements) == 5
    assert statements[0].startswith("SAVEPOINT")
    assert "set_config('statement_timeout', '1234ms', true)" in statements[1]
    assert "HAVING COUNT(*) > 1" in statements[2]
    assert statements[3] == f"SELECT set_config('statement_timeout', '{before}', true)"
    assert statements[4].startswith("RELEASE SAVEPOINT")
    # The caller's transaction keeps its own timeout (SET LOCAL outlives a released savepoint).
    assert show_timeout() == before


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_in_autocommit_the_scan_is_its_own_transaction_setting_the_timeout_then_scanning():
    Customer.objects.bulk_create(Customer(email=f"{i}@x", name="same") for i in range(3))
    with CaptureQueriesContext(connection) as captured:
        result = scan(get_rule(NAME_CI), timeout_ms=2500)
    statements = [q["sql"] for q in captured.captured_queries]
    assert len(statements) == 4
    assert statements[0] == "BEGIN"  # SET LOCAL needs a transaction; it ends with it
    assert "set_config('statement_timeout', '2500ms', true)" in statements[1]
    assert "HAVING COUNT(*) > 1" in statements[2]
    assert statements[3] == "COMMIT"
    assert (result.total_groups, result.total_rows) == (1, 3)
    assert show_timeout() == "0"


# --- statement timeout -----------------------------------------------------------------


@pytest.fixture
def locked() -> Iterator[None]:
    """Another connection holds ACCESS EXCLUSIVE on crm_customer (as a long ALTER TABLE would)."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute("SET lock_timeout = '10s'")
        other.execute("LOCK TABLE crm_customer IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        other.rollback()
        other.close()


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_scan_waiting_on_a_lock_times_out_and_leaves_the_connection_usable(locked):
    rule = get_rule(NAME_CI)
    with override_settings(INTEGRITY_SCAN_TIMEOUT_MS=200), pytest.raises(ScanTimedOut) as excinfo:
        scan(rule)
    assert str(excinfo.value) == NAME_CI
    assert show_timeout() == "0"
    assert User.objects.count() == 0  # the connection answers
    with pytest.raises(ScanTimedOut):
        scan(rule, timeout_ms=100)
    with pytest.raises(ScanTimedOut):
        totals(rule, timeout_ms=100)


def test_a_timeout_inside_a_transaction_rolls_back_only_the_scan(locked):
    user = User.objects.create(username="kept")
    with override_settings(INTEGRITY_SCAN_TIMEOUT_MS=200), pytest.raises(ScanTimedOut):
        scan(get_rule(NAME_CI))
    assert show_timeout() == "0"
    assert User.objects.get(pk=user.pk).username == "kept"


@isolate_apps("demo.crm")
def test_other_database_errors_are_not_timeouts():
    class Gone(models.Model):
        code = models.CharField(max_length=10)

        class Meta:
            app_label = "crm"
            db_table = "crm_gone"

    rule = Rule("default", Gone, "configured:code", "configured", fields=("code",))
    with pytest.raises(ProgrammingError):
        scan(rule)
    assert User.objects.count() == 0  # the savepoint was rolled back: the transaction goes on


# --- members of a group -----------------------------------------------------------------


def test_group_of_returns_the_members_sharing_the_key(emails):
    rule = get_rule(EMAIL_CI)
    ann = [e for e in emails if e.email.lower() == "ann@x"]
    for member in ann:
        assert group_of(rule, member.pk) == ann
    assert group_of(rule, ann[2].pk, limit=2) == ann[:2]
    lone = next(e for e in emails if e.email == "cy@x")
    assert group_of(rule, lone.pk) == []
    assert group_of(rule, 10**9) == []


def test_group_of_follows_null_semantics_and_conditions(users):
    sql("DROP INDEX crm_mentorship_mentor_mentee_uniq", "DROP INDEX crm_membership_active_code_uniq")
    nulls = [Mentorship.objects.create(mentee=users[0], mentor=None, topic="t") for _ in range(2)]
    assert group_of(get_rule(MENTORSHIP), nulls[0].pk) == []
    assert group_of(configured("crm.Mentorship", ["mentor"], nulls_equal=True), nulls[0].pk) == nulls
    active = [Membership.objects.create(code="A", active=True) for _ in range(2)]
    inactive = Membership.objects.create(code="A", active=False)
    assert group_of(get_rule(MEMBERSHIP), active[1].pk) == active
    assert group_of(get_rule(MEMBERSHIP), inactive.pk) == []


# --- what references the members ---------------------------------------------------------


def test_references_through_a_foreign_key_with_to_field():
    a, b = Company.objects.create(name="A", vat_number="1"), Company.objects.create(name="B", vat_number="1")
    for company in (a, a, b):
        Customer.objects.create(email=f"{Customer.objects.count()}@x", name="n", company=company)
    Customer.objects.create(email="none@x", name="n")
    rule = get_rule(VAT)
    members = group_of(rule, a.pk)
    assert members == [a, b]
    relations = relations_to("default", Company)  # content types looked up (and cached) here
    with CaptureQueriesContext(connection) as captured:
        found = references(rule, members)
    assert Reference("crm.Customer.company", {a.pk: 2, b.pk: 1}) in found
    assert all(not any(r.counts.values()) for r in found if r.label != "crm.Customer.company")
    assert len(captured) == len(relations)  # one query per relation


def test_references_through_one_to_one_foreign_keys_and_many_to_many(users):
    u0, u1, u2, u3 = users
    Account.objects.create(user=u0, plan="pro")
    Mentorship.objects.create(mentee=u1, mentor=u0, topic="t")
    Mentorship.objects.create(mentee=u2, mentor=u0, topic="t")
    Mentorship.objects.create(mentee=u0, mentor=u1, topic="t")
    u1.groups.add(AuthGroup.objects.create(name="staff"))
    LogEntry.objects.create(user=u1, action_flag=ADDITION, object_repr="x")
    rule = get_rule("default:auth.User:unique:username")
    relations = relations_to("default", User)
    with CaptureQueriesContext(connection) as captured:
        found = {r.label: r.counts for r in references(rule, [u0, u1, u3])}
    assert len(captured) == len(relations)  # one query per relation, generic ones too
    assert found["crm.Account.user"] == {u0.pk: 1, u1.pk: 0, u3.pk: 0}
    assert found["crm.Mentorship.mentor"] == {u0.pk: 2, u1.pk: 1, u3.pk: 0}
    assert found["crm.Mentorship.mentee"] == {u0.pk: 1, u1.pk: 1, u3.pk: 0}
    assert found["admin.LogEntry.user"] == {u0.pk: 0, u1.pk: 1, u3.pk: 0}
    assert found["auth.User.groups"] == {u0.pk: 0, u1.pk: 1, u3.pk: 0}  # the user's own many-to-many
    assert found["integrity.SequenceResync.user"] == {u0.pk: 0, u1.pk: 0, u3.pk: 0}


def test_references_through_a_reverse_many_to_many_and_the_models_own():
    tags = [Tag.objects.create(name=n) for n in ("x", "y")]
    products = [Product.objects.create(id=1000 + i, name="same") for i in range(2)]  # ids 1-8: the demo's
    products[0].tags.add(*tags)
    products[1].tags.add(tags[0])
    Order.objects.create(product=products[1])
    tag_refs = references(get_rule("default:shop.Tag:unique:name"), tags)
    assert tag_refs == [Reference("shop.Product.tags", {tags[0].pk: 2, tags[1].pk: 1})]
    product_refs = {r.label: r.counts for r in references(configured("shop.Product", ["name"]), products)}
    assert product_refs == {
        "shop.Order.product": {products[0].pk: 0, products[1].pk: 1},
        "shop.Product.tags": {products[0].pk: 2, products[1].pk: 1},
    }


@isolate_apps("demo.crm")
def test_references_count_an_explicit_through_table_once():
    class Person(models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "crm"

    class Club(models.Model):
        members = models.ManyToManyField(Person, through="ClubMember", related_name="clubs")

        class Meta:
            app_label = "crm"

    class ClubMember(models.Model):
        person = models.ForeignKey(Person, on_delete=models.CASCADE)
        club = models.ForeignKey(Club, on_delete=models.CASCADE)

        class Meta:
            app_label = "crm"

    with connection.schema_editor() as editor:
        for model in (Person, Club, ClubMember):
            editor.create_model(model)
    people = [Person.objects.create(name="same") for _ in range(2)]
    club = Club.objects.create()
    ClubMember.objects.create(person=people[0], club=club)
    ClubMember.objects.create(person=people[0], club=Club.objects.create())
    rule = Rule("default", Person, "configured:name", "configured", fields=("name",))
    assert references(rule, people) == [
        Reference("crm.ClubMember.person", {people[0].pk: 2, people[1].pk: 0})
    ]
    assert references(Rule("default", Club, "configured:id", "configured", fields=("id",)), [club]) == [
        Reference("crm.ClubMember.club", {club.pk: 1})
    ]


def test_references_skip_tables_that_do_not_live_on_the_rules_database():
    """On ``other`` only auth, admin, helpdesk... live: crm.Account (a one-to-one to User) is not there."""
    user = User.objects.db_manager("other").create(username="o")
    found = references(get_rule("other:auth.User:unique:username"), [user])
    labels = {r.label for r in found}
    assert "admin.LogEntry.user" in labels and "auth.User.groups" in labels
    assert not [label for label in labels if label.startswith(("crm.", "shop."))]


def test_scan_reads_the_rules_own_database():
    users = [User.objects.db_manager("other").create(username=f"o{i}") for i in range(2)]
    with connections["other"].cursor() as cursor:
        cursor.execute("ALTER TABLE auth_user DROP CONSTRAINT auth_user_username_key")
        cursor.execute("UPDATE auth_user SET username = 'same'")
    rule = get_rule("other:auth.User:unique:username")
    assert scan(rule).groups == [Group(("same",), 2, [u.pk for u in users])]
    assert scan(get_rule("default:auth.User:unique:username")).groups == []
    assert duplicates.totals(rule) == (1, 2)
