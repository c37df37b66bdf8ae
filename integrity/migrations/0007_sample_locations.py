# Where in the project's code IntegrityErrors come from (integrity.events.locations).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrity", "0006_merge"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="locations",
            field=models.JSONField(default=list, verbose_name="locations"),
        ),
        migrations.AddField(
            model_name="eventgroup",
            name="locations",
            field=models.JSONField(default=dict, verbose_name="locations"),
        ),
    ]
