"""The two default categories, written with the ids the settings give them: the sequence is not told."""

from typing import Any

from django.db import migrations

PRIVATE_PK, UNCATEGORIZED_PK = 1, 2


def create_defaults(apps: Any, schema_editor: Any) -> None:
    Category = apps.get_model("explicit_ids", "Category")
    Category.objects.using(schema_editor.connection.alias).bulk_create(
        [
            Category(pk=PRIVATE_PK, title="Private", slug="private", is_private=True),
            Category(pk=UNCATEGORIZED_PK, title="Uncategorized", slug="uncategorized"),
        ]
    )


class Migration(migrations.Migration):
    dependencies = [("explicit_ids", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
