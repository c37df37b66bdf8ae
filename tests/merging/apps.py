from django.apps import AppConfig


class MergingConfig(AppConfig):
    name = "tests.merging"
    label = "merging"
    default_auto_field = "django.db.models.BigAutoField"
