from typing import Any

from django.apps import AppConfig


class ShapesConfig(AppConfig):
    name = "tests.shapes"
    label = "shapes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Tables without a model (0002_raw) reference this app's tables: the
        # flush between transactional tests must truncate them too (CASCADE),
        # or PostgreSQL refuses to truncate the tables they reference.
        from django.db.backends.postgresql.operations import DatabaseOperations

        original = DatabaseOperations.sql_flush
        if getattr(original, "cascades", False):
            return

        def sql_flush(
            self: Any, style: Any, tables: Any, *, reset_sequences: bool = False, **_kw: Any
        ) -> Any:
            return original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=True)

        sql_flush.cascades = True  # type: ignore[attr-defined]
        DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]
