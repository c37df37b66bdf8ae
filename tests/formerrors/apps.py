from django.apps import AppConfig


class FormErrorsConfig(AppConfig):
    name = "tests.formerrors"
    label = "formerrors"
    default_auto_field = "django.db.models.BigAutoField"
