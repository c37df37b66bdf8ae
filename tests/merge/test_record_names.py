"""A merge record names its rule as a person knows it, linked to the rule's page; never by its key."""

from __future__ import annotations

import re

import pytest

from integrity.models import MergeRecord
from tests.helpers import VAT_KEY, client_for, text

pytestmark = pytest.mark.django_db(databases="__all__")

RECORDS = "/admin/integrity/mergerecord/"


def record_of(rule: str, model: str) -> MergeRecord:
    return MergeRecord.objects.create(database="default", model=model, rule=rule, survivor="1", removed=["2"])


def test_the_record_names_its_rule_and_links_to_its_page() -> None:
    record = record_of(VAT_KEY, "crm.Company")

    page = client_for("superuser").get(f"{RECORDS}{record.pk}/change/")

    link = re.search(r'<a href="([^"]+)" id="merge-rule-link">([^<]+)</a>', page.content.decode())
    assert link is not None
    assert link.group(2) == "crm.Company: vat_number"
    assert (
        link.group(1)
        == "/admin/integrity/duplicaterule/rule/?rule=default%3Acrm.Company%3Aunique%3Avat_number"
    )
    assert VAT_KEY not in text(page)


def test_a_rule_the_models_do_not_declare_is_named_in_words() -> None:
    key = "default:crm.Customer:migration:Lower(email)"  # a data migration's MergeDuplicates
    record = record_of(key, "crm.Customer")

    page = client_for("superuser").get(f"{RECORDS}{record.pk}/change/")

    assert "crm.Customer: Lower(email) (not a rule the models declare now)" in text(page)
    assert key not in text(page) and 'id="merge-rule-link"' not in page.content.decode()
