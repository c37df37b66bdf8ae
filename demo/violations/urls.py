from django.urls import path

from demo.violations import views

app_name = "violations"
urlpatterns = [
    path("", views.index, name="index"),
    path("sequence/", views.sequence_behind, name="sequence"),
    path("hidden-row/", views.hidden_row, name="hidden-row"),
    path("ticket-race/", views.ticket_race, name="ticket-race"),
    path("unique/", views.unique, name="unique"),
    path("handled/", views.handled, name="handled"),
    path("foreign-key/", views.foreign_key, name="foreign-key"),
    path("not-null/", views.not_null, name="not-null"),
    path("check/", views.check, name="check"),
    path("exclusion/", views.exclusion, name="exclusion"),
    path("nested/", views.nested, name="nested"),
    path("async/", views.async_unique, name="async"),
    path("sequence-max/", views.sequence_max, name="sequence-max"),
    path("sign-up-form/", views.sign_up_form, name="sign-up-form"),
]
