"""What a company's duplicates drag along: every kind of reference a merge has to carry over.

The crm app's companies were imported under several spellings (the unique-rules story);
sales work piled up on each spelling before anyone noticed. Merging them is
only safe if every one of these references moves to the company that stays.
"""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from demo.crm.models import Company


class Deal(models.Model):
    """A plain foreign key."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="deals")
    title = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    def __str__(self) -> str:
        return self.title


class Tag(models.Model):
    """An auto-created many-to-many table (``sales_tag_companies``)."""

    name = models.CharField(max_length=50, unique=True)
    companies = models.ManyToManyField(Company, blank=True, related_name="tags")

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    """A many-to-many through a model with data of its own."""

    name = models.CharField(max_length=100)
    companies = models.ManyToManyField(Company, through="CampaignTarget", related_name="campaigns")

    def __str__(self) -> str:
        return self.name


class CampaignTarget(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE)
    company = models.ForeignKey(Company, on_delete=models.CASCADE)
    status = models.CharField(max_length=20, default="planned")

    class Meta:
        unique_together = [("campaign", "company")]

    def __str__(self) -> str:
        return f"{self.campaign_id} → {self.company_id}: {self.status}"


class Note(models.Model):
    """A generic foreign key: no database constraint ties it to the company."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.text


class BillingProfile(models.Model):
    """A one-to-one: a company has one billing profile, so two spellings' profiles conflict."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="billing")
    iban = models.CharField(max_length=34)
    email = models.EmailField()

    def __str__(self) -> str:
        return self.iban
