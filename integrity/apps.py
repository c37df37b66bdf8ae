from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrityConfig(AppConfig):
    name = "integrity"
    verbose_name = _("Data integrity")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from integrity import checks  # noqa: F401  (registers the checks)
        from integrity.events.fixes import on_fix_applied
        from integrity.events.notify import email_admins
        from integrity.events.recording import install
        from integrity.sequences.after_migrate import on_post_migrate
        from integrity.signals import event_group_alert, fix_applied

        # Every connection notes which database raised an IntegrityError (and,
        # while a request collects them, hands them over): see integrity.events.
        connection_created.connect(install, dispatch_uid="integrity.events.install")
        # A resync or a merge made through the app is recorded on the event groups it answers.
        fix_applied.connect(on_fix_applied, dispatch_uid="integrity.events.fixes")
        # A new or regressed group: e-mail ADMINS when INTEGRITY_NOTIFY_EMAIL is on.
        event_group_alert.connect(email_admins, dispatch_uid="integrity.events.notify")
        # After migrate (and so when a test database is built): sequences the run left behind their data.
        post_migrate.connect(on_post_migrate, dispatch_uid="integrity.after_migrate")
