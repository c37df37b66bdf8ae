"""The ticket story's fix: ticket numbers from a database sequence, not MAX + 1."""

import django.db.models.expressions
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("helpdesk", "0001_initial")]
    operations = [
        migrations.RunSQL(
            "CREATE SEQUENCE ticket_sequence OWNED BY helpdesk_ticket.number",
            "DROP SEQUENCE ticket_sequence",
        ),
        migrations.AlterField(
            model_name="ticket",
            name="number",
            field=models.IntegerField(
                blank=True,
                db_default=django.db.models.expressions.Func(
                    django.db.models.expressions.Value("ticket_sequence"), function="nextval"
                ),
                null=True,
                unique=True,
            ),
        ),
    ]
