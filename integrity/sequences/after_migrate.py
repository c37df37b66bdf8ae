"""After ``migrate``: the sequences of the apps just migrated, checked at once.

A data migration that writes rows with explicit ids leaves the table's
sequence where it was: the next insert collides with row 1, and every test
that creates a row fails, days before anyone opens an admin page. Django
sends ``post_migrate`` once per installed app, with the run's ``plan``; the
check runs once per run and database, on the last app's signal (after every
other app's migrations and handlers), with the sequences status query: two
statements whatever the number of models. ``flush`` sends the signal too,
without a plan: nothing was migrated, nothing is checked.

``INTEGRITY_AFTER_MIGRATE`` says what a sequence behind its data leads to:
``"warn"`` (stderr and the ``integrity.migrate`` logger), ``"fix"`` (resync
forward, as the admin does, locked and recorded), ``"error"`` (``CommandError``:
``migrate`` exits non-zero and a test database is not built) or ``"off"``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core.management.base import CommandError, OutputWrapper
from django.core.management.color import color_style
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router, transaction
from django.db.migrations import Migration, RunPython, RunSQL
from django.db.models import Model

from integrity.conf import AFTER_MIGRATE_CHOICES, settings
from integrity.sequences.service import (
    BEHIND,
    ResyncRefused,
    SequenceInfo,
    SequenceNotFound,
    collect_alias,
    for_connection,
    resync,
)

WARN, FIX, ERROR, OFF = "warn", "fix", "error", "off"
MODES = AFTER_MIGRATE_CHOICES  # (WARN, FIX, ERROR, OFF)
logger = logging.getLogger("integrity.migrate")

Plan = Sequence[tuple[Migration, bool]]


def _last_app() -> AppConfig | None:
    """The app whose ``post_migrate`` Django sends last (it sends one per app that has a models module)."""
    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    return with_models[-1] if with_models else None


def on_post_migrate(
    sender: Any, app_config: AppConfig, using: str = DEFAULT_DB_ALIAS, plan: Plan | None = None, **kwargs: Any
) -> None:
    """The ``post_migrate`` receiver: on the last app's signal of a ``migrate`` that applied something, check."""
    if not plan or app_config is not _last_app() or settings.AFTER_MIGRATE == OFF:
        return
    check(using, plan, settings.AFTER_MIGRATE, verbosity=int(kwargs.get("verbosity", 1)))


def migrated_models(alias: str, plan: Plan) -> list[type[Model]]:
    """The installed models (M2M tables included) of every app with a migration in ``plan``, living on ``alias``."""
    labels = dict.fromkeys(migration.app_label for migration, _backwards in plan)
    models: list[type[Model]] = []
    for label in labels:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        models += [
            m
            for m in config.get_models(include_auto_created=True)
            if router.allow_migrate_model(alias, m) and not m._meta.proxy and not m._meta.swapped
        ]
    return models


def _writes_rows(migration: Migration) -> bool:
    return any(isinstance(op, RunPython | RunSQL) for op in migration.operations)


def likely_causes(app_label: str, plan: Plan) -> list[str]:
    """The app's migrations in this run, those that run code or SQL (which can write explicit ids) if any."""
    mine = [(m, back) for m, back in plan if m.app_label == app_label]
    writing = [(m, back) for m, back in mine if _writes_rows(m)] or mine
    return [f"{m.app_label}.{m.name}" + (" (unapplied)" if back else "") for m, back in writing]


def describe(info: SequenceInfo, plan: Plan) -> str:
    """One behind sequence: its name, the column's MAX, the next value and the likely cause."""
    causes = likely_causes(info.app_label, plan)
    cause = (
        f"; migrations of {info.app_label} in this run: {', '.join(causes)} (the likely cause: rows written "
        "with explicit ids leave the sequence where it was)"
        if causes
        else ""
    )
    return (
        f"sequence {info.sequence} of {info.model}.{info.column} is behind its data after migrate "
        f"on database {info.database!r}: MAX({info.column}) is {info.max_value}, next value {info.next_value}; "
        f'the next insert fails with "duplicate key value violates unique constraint"{cause}.'
    )


HINT = (
    "Add integrity.operations.ResyncSequences after the migration's RunPython, or set "
    'INTEGRITY_AFTER_MIGRATE = "fix" to resync at migrate time, or resync it at /admin/integrity/sequence/.'
)
FIXED_HINT = (
    "Add integrity.operations.ResyncSequences after the migration's RunPython: every install needs it."
)


def _bounded_collect(alias: str, models: Iterable[type[Model]]) -> list[SequenceInfo]:
    """The status query under the app's lock and statement timeouts: ``migrate`` never waits unbounded here."""
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
            [f"{settings.LOCK_TIMEOUT_MS:d}ms", f"{settings.SCAN_TIMEOUT_MS:d}ms"],
        )
        return collect_alias(alias, models).sequences


def recordable() -> str | None:
    """Why a resync could not be recorded (integrity's own tables not migrated), or None."""
    from integrity.models import SequenceResync

    alias = router.db_for_write(SequenceResync)
    if SequenceResync._meta.db_table in connections[alias].introspection.table_names():
        return None
    return f"integrity's migrations are not applied on database {alias!r}, so a resync could not be recorded"


def _fix(info: SequenceInfo) -> str:
    why = recordable()
    if why is not None:
        return f"not resynced: {why}."
    try:
        result = resync(info.database, info.model, info.column)
    except (ResyncRefused, SequenceNotFound) as exc:
        return f"not resynced: {exc}"
    return f"resynced forward: next value {result.value_before} → {result.value_after} (recorded)."


def check(alias: str, plan: Plan, mode: str, *, verbosity: int = 1) -> list[str]:
    """Check the sequences of the apps in ``plan`` on ``alias``; report (and, per ``mode``, fix or fail).

    Returns the messages written. Raises ``CommandError`` in ``"error"`` mode
    when a sequence is behind.
    """
    if for_connection(connections[alias]) is None:
        return []
    models = migrated_models(alias, plan)
    if not models:
        return []
    try:
        infos = _bounded_collect(alias, models)
    except DatabaseError as exc:
        message = f"integrity: the sequences could not be checked after migrate on {alias!r}: {exc}".strip()
        _write([message], logging.WARNING)
        return [message]
    behind = [i for i in infos if i.status == BEHIND]
    if not behind:
        if verbosity >= 2:
            sys.stdout.write(
                f"integrity: {len(infos)} sequences checked after migrate on {alias!r}: none behind.\n"
            )
        return []
    messages = [f"integrity: {describe(info, plan)}" for info in behind]
    if mode == ERROR:
        if logger.hasHandlers():
            logger.error("%s", "\n".join(messages))
        raise CommandError("\n".join([*messages, HINT]))
    if mode == FIX:
        messages = [f"{m} {_fix(info)}" for m, info in zip(messages, behind, strict=True)]
    _write([*messages, FIXED_HINT if mode == FIX else HINT], logging.WARNING)
    return messages


def _write(lines: list[str], level: int) -> None:
    """To stderr whatever the verbosity (the test runner migrates at verbosity 0), and to the project's log.

    Without a handler for ``integrity.migrate``, Python's last-resort handler
    would print each line on stderr a second time: the log gets them only
    when logging is configured.
    """
    out = OutputWrapper(sys.stderr)
    out.style_func = color_style().WARNING
    logged = logger.hasHandlers()
    for line in lines:
        out.write(line)
        if logged:
            logger.log(level, "%s", line)
