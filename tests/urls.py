"""The demo's URLs plus a second AdminSite instance at /second-admin/ and the field_errors sign-up view."""

from django.contrib import admin
from django.urls import path

from demo.urls import urlpatterns as demo_urlpatterns
from integrity.admin import (
    DuplicateRuleAdmin,
    EventGroupAdmin,
    MergeRecordAdmin,
    SequenceAdmin,
    SequenceResyncAdmin,
)
from integrity.models import DuplicateRule, EventGroup, MergeRecord, Sequence, SequenceResync
from tests.formerrors.views import signup

second_site = admin.AdminSite(name="second")
second_site.register(Sequence, SequenceAdmin)
second_site.register(SequenceResync, SequenceResyncAdmin)
second_site.register(DuplicateRule, DuplicateRuleAdmin)
second_site.register(MergeRecord, MergeRecordAdmin)
second_site.register(EventGroup, EventGroupAdmin)

urlpatterns = [
    *demo_urlpatterns,
    path("second-admin/", second_site.urls),
    path("formerrors/signup/", signup),  # field_errors in a view (tests.events.test_field_errors)
]
