from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/integrity/")),
    path("admin/", admin.site.urls),
    # Pages that raise real IntegrityErrors, for the events page to show.
    path("demo/violations/", include("demo.violations.urls")),
]
