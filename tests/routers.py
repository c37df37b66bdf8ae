"""Send the ``helpdesk`` app to the ``other`` database as well; nothing to ``legacy``."""

from typing import Any


class OtherDatabaseRouter:
    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if db == "legacy":
            return False
        if db == "other":
            return app_label in {"helpdesk", "contenttypes", "auth", "integrity", "admin"}
        return None
