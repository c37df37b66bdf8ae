from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "demo.helpdesk"
    label = "helpdesk"
    default_auto_field = "django.db.models.BigAutoField"
