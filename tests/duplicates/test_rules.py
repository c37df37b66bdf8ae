"""Rules derived from ``_meta`` and from ``INTEGRITY_DUPLICATE_RULES``; router-aware; ``get_rule``."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower, Trim
from django.test import override_settings
from django.test.utils import isolate_apps

from demo.crm.models import Account, Company, Customer, Device, LegacyContact, Membership, Mentorship
from demo.shop.models import Product
from integrity.duplicates.rules import (
    CONFIGURED,
    CONSTRAINT,
    FIELD,
    TOGETHER,
    Rule,
    RuleNotFound,
    describe,
    describe_q,
    get_rule,
    rules_for,
    rules_for_alias,
)

OTHER_APPS = {"helpdesk", "contenttypes", "auth", "integrity", "admin"}


def only(model: type[models.Model], alias: str = "default") -> list[Rule]:
    return rules_for_alias(alias, [model])


def one(model: type[models.Model], alias: str = "default") -> Rule:
    [rule] = only(model, alias)
    return rule


def test_unique_field_that_a_foreign_key_targets_says_so():
    name, vat = only(Company)
    assert (name.kind, name.fields, name.columns, name.name) == (FIELD, ("name",), ("name",), "unique:name")
    assert name.key == "default:crm.Company:unique:name"
    assert name.source == "unique=True (to_field target of crm.Customer.company)"
    assert (name.description, name.condition, name.expressions, name.nulls_distinct) == (
        "name",
        None,
        (),
        True,
    )
    assert (vat.fields, vat.source) == (("vat_number",), "unique=True")


def test_one_to_one_field_is_a_unique_field_on_its_column():
    rule = one(Account)
    assert (rule.kind, rule.fields, rule.columns, rule.source) == (
        FIELD,
        ("user",),
        ("user_id",),
        "OneToOneField",
    )
    assert rule.description == "user"


@isolate_apps("demo.crm")
def test_one_to_one_and_foreign_key_with_to_field_name_every_referrer():
    class Box(models.Model):
        code = models.CharField(max_length=10, unique=True)

        class Meta:
            app_label = "crm"

    class Lid(models.Model):
        box = models.OneToOneField(Box, to_field="code", on_delete=models.CASCADE)

        class Meta:
            app_label = "crm"

    class Label(models.Model):
        box = models.ForeignKey(Box, to_field="code", on_delete=models.CASCADE)
        other = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="+")

        class Meta:
            app_label = "crm"

    [code] = only(Box)
    assert code.source == "unique=True (to_field target of crm.Lid.box, crm.Label.box)"
    [lid] = only(Lid)
    assert (lid.fields, lid.source) == (("box",), "OneToOneField")
    assert only(Label) == []


def test_unique_together_keeps_the_declared_field_order():
    rule = one(Mentorship)
    assert (rule.kind, rule.name, rule.fields) == (
        TOGETHER,
        "unique_together:mentee,mentor",
        ("mentee", "mentor"),
    )
    assert rule.columns == ("mentee_id", "mentor_id")
    assert (rule.description, rule.source) == ("mentee, mentor", "unique_together")
    assert rule.key == "default:crm.Mentorship:unique_together:mentee,mentor"


def test_unique_constraint_with_a_condition():
    rule = one(Membership)
    assert (rule.kind, rule.name, rule.fields) == (CONSTRAINT, "crm_membership_active_code_uniq", ("code",))
    assert rule.condition == Q(active=True)
    assert (rule.condition_text, rule.description) == ("active=True", "code")
    assert rule.constraint is Membership._meta.constraints[0]
    assert rule.source == "UniqueConstraint 'crm_membership_active_code_uniq'"
    assert not rule.is_expression


def test_unique_constraint_on_an_expression_groups_by_the_expression():
    [rule] = [r for r in only(Customer) if r.kind == CONSTRAINT]
    assert (rule.fields, rule.is_expression, rule.description) == ((), True, "Lower(email)")
    assert rule.expressions == (Lower("email"),)
    assert rule.key_expressions == [Lower("email")]


def test_unique_constraint_with_nulls_not_distinct():
    rule = one(Device)
    assert (rule.fields, rule.nulls_distinct) == (("vendor", "serial"), False)
    assert rule.key_expressions == [F("vendor"), F("serial")]


@isolate_apps("demo.crm")
def test_include_and_deferrable_do_not_change_the_rule():
    class Ledger(models.Model):
        code = models.CharField(max_length=10)
        note = models.CharField(max_length=10)
        year = models.IntegerField()

        class Meta:
            app_label = "crm"
            constraints = [
                models.UniqueConstraint(fields=["code"], include=["note"], name="ledger_code_incl"),
                models.UniqueConstraint(
                    fields=["year", "code"], deferrable=models.Deferrable.DEFERRED, name="ledger_year_code"
                ),
            ]

    included, deferred = only(Ledger)
    assert (included.fields, included.condition, included.expressions) == (("code",), None, ())
    assert (deferred.fields, deferred.condition, deferred.nulls_distinct) == (("year", "code"), None, True)


def test_models_without_rules_primary_keys_and_auto_created_tables_have_none():
    assert only(Product) == []
    labels = {r.label for r in rules_for(["default"])}
    assert "shop.Product_tags" not in labels  # its (product, tag) unique_together is Django's own
    assert all(r.fields != ("id",) for r in rules_for())


def test_rules_follow_the_router():
    default = {r.label for r in rules_for(["default"])}
    other = {r.label for r in rules_for(["other"])}
    assert {"crm.Customer", "crm.Company", "shop.Tag", "helpdesk.Ticket", "auth.User"} <= default
    assert {"helpdesk.Ticket", "auth.User", "auth.Group", "contenttypes.ContentType"} <= other
    assert {label.split(".")[0] for label in other} <= OTHER_APPS
    assert rules_for(["legacy"]) == []
    both = rules_for()
    assert {r.database for r in both} == {"default", "other"}
    assert len(both) == len(rules_for(["default"])) + len(rules_for(["other"]))


def test_models_limit_the_rules_on_every_alias():
    from demo.helpdesk.models import Ticket

    found = rules_for(models=[Ticket, Customer])
    assert sorted(r.key for r in found) == [
        "default:crm.Customer:configured:customer_name_ci",
        "default:crm.Customer:crm_customer_email_ci_uniq",
        "default:helpdesk.Ticket:unique:number",
        "other:helpdesk.Ticket:unique:number",
    ]


def test_demo_setting_adds_a_configured_rule():
    [rule] = [r for r in only(Customer) if r.kind == CONFIGURED]
    assert (rule.name, rule.fields, rule.nulls_distinct) == ("configured:customer_name_ci", ("name",), True)
    assert rule.expressions == (Lower(Trim(F("name"))),)
    assert rule.description == "Lower(Trim(name))"
    assert rule.source == "INTEGRITY_DUPLICATE_RULES (case-insensitive, trimmed)"


@pytest.mark.parametrize(
    ("options", "description", "source"),
    [
        ({}, "name, price", "INTEGRITY_DUPLICATE_RULES"),
        (
            {"case_insensitive": True},
            "Lower(name), Lower(price)",
            "INTEGRITY_DUPLICATE_RULES (case-insensitive)",
        ),
        ({"trim": True}, "Trim(name), Trim(price)", "INTEGRITY_DUPLICATE_RULES (trimmed)"),
        ({"trim": False, "case_insensitive": False}, "name, price", "INTEGRITY_DUPLICATE_RULES"),
    ],
)
def test_configured_options(options, description, source):
    spec = {"model": "shop.product", "fields": ["name", "price"], **options}
    with override_settings(INTEGRITY_DUPLICATE_RULES=[spec]):
        rule = one(Product)
    assert (rule.kind, rule.name, rule.fields) == (CONFIGURED, "configured:name_price", ("name", "price"))
    assert (rule.description, rule.source, rule.nulls_distinct) == (description, source, True)
    assert rule.is_expression == (description != "name, price")
    assert rule.key == "default:shop.Product:configured:name_price"


def test_configured_nulls_equal():
    spec = {"model": "crm.Mentorship", "fields": ["mentor"], "nulls_equal": True, "name": "one_per_mentor"}
    with override_settings(INTEGRITY_DUPLICATE_RULES=[spec]):
        [rule] = [r for r in only(Mentorship) if r.kind == CONFIGURED]
    assert (rule.key, rule.nulls_distinct) == ("default:crm.Mentorship:configured:one_per_mentor", False)


def test_configured_rules_only_on_the_aliases_the_model_lives_on():
    specs = [
        {"model": "helpdesk.Ticket", "fields": ["subject"]},
        {"model": "crm.Customer", "fields": ["email"]},
    ]
    with override_settings(INTEGRITY_DUPLICATE_RULES=specs):
        configured = sorted(r.key for r in rules_for() if r.kind == CONFIGURED)
    assert configured == [
        "default:crm.Customer:configured:email",
        "default:helpdesk.Ticket:configured:subject",
        "other:helpdesk.Ticket:configured:subject",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fields": ["name"]}, "needs 'model' and a non-empty list of 'fields'"),
        ({"model": "crm.Customer"}, "needs 'model' and a non-empty list of 'fields'"),
        ({"model": "crm.Customer", "fields": []}, "needs 'model' and a non-empty list of 'fields'"),
        ({"model": "crm.Customer", "fields": "name"}, "needs 'model' and a non-empty list of 'fields'"),
        ("crm.Customer.name", "needs 'model' and a non-empty list of 'fields'"),
        ({"model": "crm.Customer", "fields": ["nmae"]}, "crm.Customer has no field 'nmae'"),
        ({"model": "crm.Custmer", "fields": ["name"]}, "unknown model 'crm.Custmer'"),
        (
            {"model": "crm.Customer", "fields": ["name"], "case_insenstive": True},
            "unknown key(s) case_insenstive",
        ),
    ],
)
def test_bad_configuration_is_an_error_not_a_silent_no_op(spec, message):
    with override_settings(INTEGRITY_DUPLICATE_RULES=[spec]), pytest.raises(ImproperlyConfigured) as excinfo:
        rules_for()
    assert message in str(excinfo.value)


def test_get_rule_finds_every_rule_by_its_key():
    for rule in rules_for():
        found = get_rule(rule.key)
        assert (found.database, found.model, found.name, found.kind) == (
            rule.database,
            rule.model,
            rule.name,
            rule.kind,
        )


@pytest.mark.parametrize(
    "key",
    [
        "",
        "default",
        "default:crm.Customer",
        "default:crm.Customer:",
        ":crm.Customer:crm_customer_email_ci_uniq",
        "nope:crm.Customer:crm_customer_email_ci_uniq",
        "default:crm.Nope:crm_customer_email_ci_uniq",
        "default:crm.Customer:nope",
        "default:crm.Customer:unique:email",
        "other:crm.Customer:crm_customer_email_ci_uniq",  # crm does not live on "other"
        "legacy:auth.User:unique:username",
    ],
)
def test_get_rule_refuses_unknown_keys(key):
    with pytest.raises(RuleNotFound):
        get_rule(key)


def test_rules_of_an_unmanaged_model_are_derived_too():
    rule = one(LegacyContact)
    assert (rule.key, rule.fields) == ("default:crm.LegacyContact:unique:email", ("email",))


def test_readable_forms_of_expressions_and_conditions():
    assert describe(Lower(Trim("name"))) == "Lower(Trim(name))"
    assert describe(F("email")) == "email"
    assert describe_q(Q(active=True) & ~Q(code="x")) == "active=True AND (NOT (code='x'))"
    assert describe_q(Q(a=1) | Q(b__gt=2)) == "a=1 OR b__gt=2"
