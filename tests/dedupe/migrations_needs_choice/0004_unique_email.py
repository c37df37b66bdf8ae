from importlib import import_module

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dedupe", "0003_merge_duplicates")]
    operations = import_module("tests.dedupe.migrations.0004_unique_email").Migration.operations
