"""The demo's crm models in the admin, so that merged rows can be opened (the merge log links them)."""

from django.contrib import admin

from demo.crm.models import Company, Customer


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("name", "vat_number")
    search_fields = ("name", "vat_number")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "company")
    search_fields = ("email", "name")
