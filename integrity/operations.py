"""Migration operations for reusable apps: resync sequences, merge duplicates before a unique rule.

A reusable app's maintainers cannot open an admin page on every install; they
ship migrations::

    from integrity.operations import MergeDuplicates, ResyncSequences

    operations = [
        migrations.RunPython(load_default_categories),  # writes explicit ids
        ResyncSequences("blog"),
        MergeDuplicates("blog.Author", expressions=[Lower("email")], survivor="oldest"),
        migrations.AddConstraint("author", UniqueConstraint(Lower("email"), name="author_email_ci")),
    ]

Both run the engine the admin runs (the same locked, forward-only resync;
the same merge with references re-pointed, conflicts collapsed, every merge
in the merge log), and both record what they did. Reversing either is a no-op:
a merge is undone from its merge log record, not by unapplying a migration.
The migration must depend on integrity's migrations, which create the logs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState, StateApps
from django.db.models import Model, Q

from integrity.merge.bulk import POLICIES


def _say(*lines: str) -> None:
    """What an operation did, on the ``migrate`` output: lines of their own under its "Applying …" line."""
    sys.stdout.write("\n" + "".join(f"    {line}\n" for line in lines))
    sys.stdout.flush()


@contextmanager
def _kept_timeouts(schema_editor: BaseDatabaseSchemaEditor) -> Iterator[None]:
    """The engine sets its lock and statement timeouts for the rest of the transaction: put the migration's back."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
        lock, statement = cursor.fetchone()
    try:
        yield
    finally:
        if not schema_editor.connection.needs_rollback:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                    [lock, statement],
                )


class _DataOperation(Operation):
    """Changes rows only, never the state; its reverse is a no-op (see each subclass for why).

    Not elidable: a squash keeps it, since the migrations before it still write
    what it corrects. The engine's lock and statement timeouts last only for
    the operation, not for the rest of the migration's transaction.
    """

    reversible = True
    reduces_to_sql = False

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        return None

    def run(self, alias: str, apps: StateApps) -> list[str]:
        """Do the work on ``alias``, with ``apps`` the migration state after it; the lines ``migrate`` prints."""
        raise NotImplementedError

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        with _kept_timeouts(schema_editor):
            lines = self.run(schema_editor.connection.alias, to_state.apps)
        if lines:
            _say(*lines)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        return None


class ResyncSequences(_DataOperation):
    """Move the sequences of an app's models (or of the models named) just past their column's MAX.

    For after a ``RunPython`` that writes rows with explicit ids. Forward only:
    a sequence ahead of its data is left as it is. Each change is locked and
    recorded as the admin's resync is. Reverse is a no-op: a sequence is never
    moved back, that would hand out ids rows already hold.
    """

    def __init__(self, app_label_or_models: str | Sequence[str]) -> None:
        self.app_label_or_models = app_label_or_models

    @property
    def targets(self) -> list[str]:
        value = self.app_label_or_models
        return [value] if isinstance(value, str) else list(value)

    def _models(self, apps: StateApps) -> list[type[Model]]:
        found: list[type[Model]] = []
        for target in self.targets:
            try:
                if "." in target:
                    found.append(apps.get_model(target))
                else:
                    found += list(apps.get_app_config(target).get_models(include_auto_created=True))
            except LookupError as exc:
                raise CommandError(
                    f"ResyncSequences: {target!r} is neither an app label nor app_label.Model here."
                ) from exc
        return found

    def run(self, alias: str, apps: StateApps) -> list[str]:
        from integrity.sequences.after_migrate import recordable
        from integrity.sequences.service import BEHIND, ResyncRefused, SequenceNotFound, collect_alias, resync

        models = [m for m in self._models(apps) if self.allow_migrate_model(alias, m)]
        behind = [i for i in collect_alias(alias, models).sequences if i.status == BEHIND]
        if behind and (why := recordable()) is not None:
            raise CommandError(f"ResyncSequences: {why}; add a dependency on ('integrity', '0001_initial').")
        done = []
        for info in behind:
            try:
                result = resync(alias, info.model, info.column)
            except (ResyncRefused, SequenceNotFound) as exc:
                raise CommandError(f"ResyncSequences: {info.sequence} could not be resynced: {exc}") from exc
            after = f"next value {result.value_before} → {result.value_after} (recorded)"
            done.append(f"ResyncSequences: {info.sequence} {after}")
        return done or [f"ResyncSequences: no sequence of {', '.join(self.targets)} is behind its data."]

    def describe(self) -> str:
        return f"Resync the sequences of {', '.join(self.targets)} (forward only)"

    @property
    def migration_name_fragment(self) -> str:
        return "resync_" + "_".join(t.replace(".", "_").lower() for t in self.targets)


class MergeDuplicates(_DataOperation):
    """Merge every group of duplicate rows of a model, before the constraint that would fail on them.

    ``fields`` or ``expressions`` is the key (as the ``UniqueConstraint`` that
    follows declares it, ``condition`` and ``nulls_distinct`` included);
    ``survivor`` picks the row each group keeps: ``"oldest"``, ``"newest"``
    (``Meta.get_latest_by``, else the primary key) or ``"most-referenced"``.
    Every reference is re-pointed to it, child rows identical but for their
    key collapse, and each merge is a merge log record that can be undone.
    A group that needs a human choice fails the migration, listing every
    such group, and nothing is merged. Reverse is a no-op: merges are undone one
    by one from the merge log, where every row they removed is kept.
    """

    def __init__(
        self,
        model: str,
        fields: Sequence[str] = (),
        expressions: Sequence[Any] = (),
        survivor: str = "oldest",
        condition: Q | None = None,
        nulls_distinct: bool = True,
        name: str | None = None,
    ) -> None:
        if bool(fields) == bool(expressions):
            raise ValueError("MergeDuplicates needs fields=[…] or expressions=[…], not both.")
        if survivor not in POLICIES:
            raise ValueError(
                f"MergeDuplicates: survivor must be one of {', '.join(POLICIES)}, not {survivor!r}."
            )
        if "." not in model:
            raise ValueError(f"MergeDuplicates: model must be 'app_label.Model', not {model!r}.")
        self.model = model
        self.fields = list(fields)
        self.expressions = list(expressions)
        self.survivor = survivor
        self.condition = condition
        self.nulls_distinct = nulls_distinct
        self.name = name

    def run(self, alias: str, apps: StateApps) -> list[str]:
        from integrity.merge import migration
        from integrity.merge.plan import MergeRefused

        try:
            historical = apps.get_model(self.model)
        except LookupError as exc:
            raise CommandError(
                f"MergeDuplicates: there is no model {self.model} at this point of the migrations."
            ) from exc
        if not self.allow_migrate_model(alias, historical):
            return []
        try:
            rule = migration.build_rule(
                alias,
                historical,
                fields=self.fields,
                expressions=self.expressions,
                condition=self.condition,
                nulls_distinct=self.nulls_distinct,
                name=self.name,
            )
            result = migration.merge_everything(rule, self.survivor)
        except MergeRefused as exc:
            raise CommandError(f"MergeDuplicates {self.model}: {exc}") from exc
        return [f"MergeDuplicates: {migration.summary(rule, self.survivor, result)}"]

    def describe(self) -> str:
        from integrity.duplicates.rules import describe

        key = ", ".join(describe(e) for e in self.expressions) if self.expressions else ", ".join(self.fields)
        return f"Merge duplicate {self.model} rows by {key} (survivor: {self.survivor})"

    @property
    def migration_name_fragment(self) -> str:
        return "merge_duplicates_" + self.model.replace(".", "_").lower()
