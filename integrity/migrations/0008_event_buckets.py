# Per-hour and per-day occurrence counts of event groups, for the charts (integrity.events.trends), and when
# ADMINS were last e-mailed about a group (integrity.events.notify).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrity", "0007_sample_locations"),
    ]

    operations = [
        migrations.AddField(
            model_name="eventgroup",
            name="notified_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="notified"),
        ),
        migrations.CreateModel(
            name="EventBucket",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(max_length=4, verbose_name="bucket")),
                ("start", models.DateTimeField(verbose_name="start")),
                ("count", models.PositiveBigIntegerField(default=0, verbose_name="count")),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="buckets",
                        to="integrity.eventgroup",
                    ),
                ),
            ],
            options={
                "verbose_name": "event count bucket",
                "verbose_name_plural": "event count buckets",
                "ordering": ["group", "kind", "start"],
                "default_permissions": (),
                "constraints": [
                    models.UniqueConstraint(
                        fields=("group", "kind", "start"), name="integrity_eventbucket_unique"
                    )
                ],
            },
        ),
    ]
