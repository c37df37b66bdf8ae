"""Sales work piled up on each spelling of a duplicated company (the unique-rules story, continued).

Loaded by :func:`demo.seed.load` after the crm stories. Merging the three
spellings of Acme Ltd (their VAT number is the same) must carry over deals, a
tag, campaign targets, notes and a billing profile; two spellings have a
billing profile each, which a company may only have one of: the merge asks
which to keep.

The tags' unique name constraint was dropped by hand at some point (drift),
but every tag name is still different: that rule is clean, ready to be
enforced again from the admin (Enforce).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from demo.crm.models import Company
from demo.sales.models import BillingProfile, Campaign, CampaignTarget, Deal, Note, Tag

TABLES = [
    "sales_deal",
    "sales_tag_companies",
    "sales_tag",
    "sales_campaigntarget",
    "sales_campaign",
    "sales_note",
    "sales_billingprofile",
]
DEALS = [
    ("Acme Ltd", "Support renewal 2027", "12000.00"),
    ("Acme Ltd", "Extra seats", "3400.00"),
    (" Acme Ltd", "Onboarding workshop", "1800.00"),
    ("acme ltd", "Hardware refresh", "45000.00"),
    ("acme ltd", "Training days", "2500.00"),
    ("Globex GmbH", "Pilot project", "9000.00"),
    ("Globex", "Pilot project (follow-up)", "4000.00"),
]
TAGS = {"enterprise": ["Acme Ltd", "acme ltd"], "eu": [" Acme Ltd"], "partner": ["Globex", "Initech"]}
CAMPAIGNS = {
    # The same target under two spellings, identical: collapsed by a merge.
    "Spring launch": [("Acme Ltd", "sent"), ("acme ltd", "sent"), ("Initech", "sent")],
    "Webinar": [(" Acme Ltd", "planned")],
}
NOTES = [
    (" Acme Ltd", "Called about the renewal; wants one invoice for all sites."),
    ("acme ltd", "Probably the same company as Acme Ltd?"),
    ("Globex", "VAT number checked."),
]
BILLING = [
    ("Acme Ltd", "GB29NWBK60161331926819", "billing@acme.example"),
    (" Acme Ltd", "GB94BARC10201530093459", "accounts.payable@acme.example"),
    ("Globex GmbH", "DE89370400440532013000", "rechnung@globex.example"),
]


# The constraint Django created for Tag.name (unique=True), dropped by hand.
TAG_NAME_CONSTRAINT = """
SELECT c.conname FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ALL (c.conkey)
WHERE c.conrelid = %s::regclass AND c.contype = 'u' AND a.attname = 'name'
"""


def drop_tag_name_constraint() -> None:
    """Drift without duplicates: ``sales.Tag.name`` is declared unique, the database no longer enforces it."""
    from integrity.db import quote, quote_table

    table = Tag._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(TAG_NAME_CONSTRAINT, [quote_table(table)])
        for (name,) in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {quote_table(table)} DROP CONSTRAINT {quote(name)}")


def load() -> None:
    """Deals, tags, campaign targets, notes and billing profiles on the companies of :mod:`demo.seed_crm`."""
    companies = {c.name: c for c in Company.objects.all()}
    Deal.objects.bulk_create(Deal(company=companies[c], title=t, amount=Decimal(a)) for c, t, a in DEALS)
    for name, owners in TAGS.items():
        Tag.objects.create(name=name).companies.set([companies[c] for c in owners])
    for name, targets in CAMPAIGNS.items():
        campaign = Campaign.objects.create(name=name)
        CampaignTarget.objects.bulk_create(
            CampaignTarget(campaign=campaign, company=companies[c], status=s) for c, s in targets
        )
    Note.objects.bulk_create(Note(subject=companies[c], text=t) for c, t in NOTES)
    BillingProfile.objects.bulk_create(
        BillingProfile(company=companies[c], iban=i, email=e) for c, i, e in BILLING
    )
    drop_tag_name_constraint()
