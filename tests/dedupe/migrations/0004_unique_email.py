import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dedupe", "0003_merge_duplicates")]
    operations = [
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("email"), name="dedupe_customer_email_ci"
            ),
        ),
    ]
