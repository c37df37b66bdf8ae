from importlib import import_module

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("dedupe", "0002_load_conflicting")]
    operations = import_module("tests.dedupe.migrations.0003_merge_duplicates").Migration.operations
