"""``python manage.py demo``: migrate, load the broken demo data, serve the admin.

crm's last migration (a case-insensitive unique email) is left unapplied: the
command shows it failing on the loaded duplicates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from demo import seed, seed_crm
from demo.violations import story
from integrity.models import Event, EventGroup, MergeRecord, SequenceResync

FILTERING_MANAGER_CHECK = "integrity.W001"

USERNAME = "admin"
PASSWORD = "admin"
PRODUCT_MIGRATION = "0002_initial_products"


def start_worker() -> subprocess.Popen[bytes]:
    """The task worker of the demo's jobs (django-tasks-db), a process beside the web server."""
    command = [
        sys.executable,
        "manage.py",
        "db_worker",
        "--no-reload",
        "--no-startup-delay",
        "--interval",
        "0.5",
    ]
    return subprocess.Popen(command, cwd=settings.BASE_DIR, env=os.environ.copy())


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop the worker with the server: a job it is running ends its current unit, then it exits."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def replay_product_migration() -> None:
    """Unapply shop's data migration on a database an earlier demo left, so that this run's migrate applies it.

    It writes products with explicit ids: on every run, as on a fresh database,
    ``migrate`` then warns that it left shop.Product's sequence behind.
    """
    if ("shop", PRODUCT_MIGRATION) in MigrationRecorder(connection).applied_migrations():
        call_command("migrate", "shop", "0001", interactive=False, verbosity=0)


def reset_logs() -> None:
    """Empty the app's logs, so that a rerun starts the story over: resyncs, merges, IntegrityErrors."""
    for model in (SequenceResync, MergeRecord, Event, EventGroup):
        model._default_manager.all().delete()


def embedded_stop_command() -> str | None:
    """How to stop the embedded PostgreSQL the demo runs on; None on a ``DATABASE_URL`` server."""
    if os.environ.get("DATABASE_URL"):
        return None
    from demo import embedded

    return embedded.stop_command()


class Command(BaseCommand):
    help = (
        "Start the embedded PostgreSQL, load broken demo data (real IntegrityError stories), serve the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", default=os.environ.get("DEMO_ADDRPORT", "127.0.0.1:8000"))
        parser.add_argument("--no-serve", action="store_true", help="Prepare the data, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        replay_product_migration()
        seed_crm.migrate_before_email_rule()
        seed.load()
        reset_logs()
        email_rule_error = seed_crm.apply_email_rule()
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=USERNAME, defaults={"email": "admin@example.com"})
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        story.tell(user)
        addrport = options["addrport"]
        host, _, port = addrport.rpartition(":")
        self.stdout.write(
            self.style.SUCCESS(
                "Demo data loaded: sequences behind, a gap, near overflow, empty tables; duplicates."
            )
        )
        migration = f"crm.{seed_crm.CRM_EMAIL_RULE}"
        if email_rule_error:
            self.stdout.write(
                f"As when a unique rule is added over old duplicates: migration {migration} fails on them; "
                "see /admin/integrity/ (duplicates)"
            )
            self.stdout.write("  " + "\n  ".join(email_rule_error.splitlines()))
        else:
            self.stdout.write(self.style.WARNING(f"Migration {migration} applied: no duplicates to show."))
        self.stdout.write(
            f"The system check warning {FILTERING_MANAGER_CHECK} (clinic.Doctor) is part of the story, on purpose: "
            "its base manager hides the doctors of other locales, so saving a hidden one inserts an id that exists."
        )
        self.stdout.write(
            "IntegrityError events: an overdrawn account that was resolved and occurred again (regressed), "
            "and new members' ids colliding until their sequence was resynced (no occurrence since)."
        )
        self.stdout.write(f"Admin login:  username {USERNAME!r}  password {PASSWORD!r}")
        self.stdout.write(
            "Rerunning this command resets the demo data and the logs (sequence resyncs, merges, IntegrityErrors)."
        )
        stop = embedded_stop_command()
        if stop:
            self.stdout.write(f"The embedded PostgreSQL keeps running for the next run; to stop it:  {stop}")
        if options["no_serve"]:
            return
        base = f"http://{host or '127.0.0.1'}:{port or addrport}"
        self.stdout.write(f"Open:         {base}/admin/integrity/")
        self.stdout.write(
            f"Violations:   {base}/demo/violations/  (pages that raise IntegrityErrors: events)"
        )
        self.stdout.write(
            "Worker:       python manage.py db_worker  (scans and merge-alls run as jobs on it)"
        )
        worker = start_worker()
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            stop_worker(worker)
