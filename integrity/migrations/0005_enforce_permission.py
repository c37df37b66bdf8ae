import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrity", "0004_events"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="duplicaterule",
            options={
                "default_permissions": ("view",),
                "managed": False,
                "permissions": [
                    ("merge_duplicates", "Can merge duplicate rows and undo merges"),
                    ("enforce_duplicaterule", "Can build the index that enforces a rule"),
                ],
                "verbose_name": "duplicate rule",
                "verbose_name_plural": "duplicates",
            },
        ),
        migrations.CreateModel(
            name="EnforceRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True, verbose_name="when")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated")),
                ("database", models.CharField(max_length=100, verbose_name="database")),
                ("rule", models.CharField(db_index=True, max_length=400, verbose_name="rule")),
                ("index", models.CharField(max_length=300, verbose_name="index")),
                ("sql", models.TextField(verbose_name="SQL")),
                ("status", models.CharField(default="pending", max_length=20, verbose_name="status")),
                ("step", models.CharField(blank=True, max_length=200, verbose_name="step")),
                ("attempts", models.PositiveIntegerField(default=0, verbose_name="attempts")),
                ("pid", models.IntegerField(blank=True, null=True, verbose_name="backend pid")),
                ("message", models.TextField(blank=True, verbose_name="message")),
                ("duplicates", models.BooleanField(default=False, verbose_name="duplicates found")),
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
                "verbose_name": "enforce run",
                "verbose_name_plural": "enforce runs",
                "ordering": ["-created_at", "-id"],
                "default_permissions": ("view",),
            },
        ),
    ]
