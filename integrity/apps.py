from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrityConfig(AppConfig):
    name = "integrity"
    verbose_name = _("Data integrity")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from integrity import checks  # noqa: F401  (registers the checks)
        from integrity.events.recording import install

        # Every connection notes which database raised an IntegrityError (and,
        # while a request collects them, hands them over): see integrity.events.
        connection_created.connect(install, dispatch_uid="integrity.events.install")
