# Long operations run by task workers (integrity.jobs): their progress and outcome.


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrity", "0008_event_buckets"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("scan", "Scan a rule"),
                            ("scan_all", "Scan every unenforced rule"),
                            ("merge_all", "Merge every group"),
                            ("enforce", "Enforce a rule"),
                            ("resync_all", "Resync sequences"),
                            ("prune", "Prune old events"),
                        ],
                        db_index=True,
                        max_length=20,
                        verbose_name="kind",
                    ),
                ),
                ("what", models.CharField(max_length=500, verbose_name="what")),
                ("params", models.JSONField(default=dict, verbose_name="parameters")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "queued"),
                            ("running", "running"),
                            ("finished", "finished"),
                            ("failed", "failed"),
                            ("cancelled", "cancelled"),
                        ],
                        db_index=True,
                        default="queued",
                        max_length=20,
                        verbose_name="status",
                    ),
                ),
                ("done", models.PositiveBigIntegerField(default=0, verbose_name="done")),
                ("total", models.PositiveBigIntegerField(blank=True, null=True, verbose_name="total")),
                ("result", models.JSONField(default=dict, verbose_name="result")),
                ("error", models.TextField(blank=True, verbose_name="error")),
                ("backend", models.CharField(blank=True, max_length=100, verbose_name="task backend")),
                ("task_id", models.CharField(blank=True, max_length=200, verbose_name="task id")),
                ("cancel_requested", models.BooleanField(default=False, verbose_name="cancel requested")),
                (
                    "created_at",
                    models.DateTimeField(auto_now_add=True, db_index=True, verbose_name="created"),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True, verbose_name="started")),
                ("finished_at", models.DateTimeField(blank=True, null=True, verbose_name="finished")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="heartbeat")),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="who",
                    ),
                ),
            ],
            options={
                "verbose_name": "job",
                "verbose_name_plural": "jobs",
                "ordering": ["-created_at", "-id"],
                "default_permissions": (),
            },
        ),
    ]
