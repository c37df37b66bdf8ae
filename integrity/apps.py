from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrityConfig(AppConfig):
    name = "integrity"
    verbose_name = _("Data integrity")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrity import checks  # noqa: F401  (registers the checks)
