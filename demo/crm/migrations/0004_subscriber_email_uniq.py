"""Subscriber's email rule, declared in the state only.

The usual way to add a unique index to a big, busy table: tell Django about
the constraint here, and build the index by hand with
``CREATE UNIQUE INDEX CONCURRENTLY`` (which cannot run in a migration's
transaction). In the demo that build fails on duplicates (``demo.seed``) and
PostgreSQL leaves an INVALID index behind: nothing is enforced.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0003_mentorship_index_order")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="subscriber",
                    constraint=models.UniqueConstraint(fields=("email",), name="crm_subscriber_email_uniq"),
                )
            ],
            database_operations=[],
        )
    ]
