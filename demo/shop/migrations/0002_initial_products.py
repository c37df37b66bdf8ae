"""The explicit-ids story: a data migration that writes rows with explicit ids.

PostgreSQL's sequence is not told about ids written explicitly, so it stays
at 1 and the next ``Product.objects.create()`` collides with row 1.
"""

from django.db import migrations

PRODUCTS = ["Keyboard", "Mouse", "Monitor", "Dock", "Headset", "Webcam", "Cable", "Stand"]


def load(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for pk, name in enumerate(PRODUCTS, start=1):
        Product.objects.using(schema_editor.connection.alias).create(id=pk, name=name, price=10 * pk)


def unload(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    Product.objects.using(schema_editor.connection.alias).filter(id__lte=len(PRODUCTS)).delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
