"""The unique-rules story's last question: "my migration that adds unique fails".

Customers came from an import with emails that differ only by case; this
migration's CREATE UNIQUE INDEX on LOWER(email) fails on them until they are
merged. ``manage.py demo`` leaves it unapplied and shows the failure.
"""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0004_subscriber_email_uniq")]
    operations = [
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("email"), name="crm_customer_email_ci_uniq"
            ),
        )
    ]
