from django.apps import AppConfig


class ExplicitIdsConfig(AppConfig):
    name = "tests.explicit_ids"
    label = "explicit_ids"
    default_auto_field = "django.db.models.BigAutoField"
