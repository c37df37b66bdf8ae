import django.db.models.functions.text
from django.db import migrations

import integrity.operations


class Migration(migrations.Migration):
    dependencies = [("dedupe", "0002_load_duplicates")]
    operations = [
        integrity.operations.MergeDuplicates(
            "dedupe.Customer", expressions=[django.db.models.functions.text.Lower("email")], survivor="oldest"
        ),
    ]
