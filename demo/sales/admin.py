"""The demo's sales models in the admin: what a merge of companies carries over."""

from django.contrib import admin

from demo.sales.models import BillingProfile, Campaign, CampaignTarget, Deal, Note, Tag


@admin.register(Deal)
class DealAdmin(admin.ModelAdmin):
    list_display = ("title", "company", "amount")


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name",)


class CampaignTargetInline(admin.TabularInline):
    model = CampaignTarget
    extra = 0


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name",)
    inlines = [CampaignTargetInline]


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("text", "content_type", "object_id")


@admin.register(BillingProfile)
class BillingProfileAdmin(admin.ModelAdmin):
    list_display = ("company", "iban", "email")
